/**
 * Starting the API (issue 10): keys from LAKEFERRY_API_KEYS / LAKEFERRY_API_KEYS_FILE, a one-line error
 * naming the bad entry or line (never its token), no start without keys unless --insecure-no-auth (which
 * says so), and `lakeferry api` as a process that stops cleanly on SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createDatabase, migrate } from "@lakeferry/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeys, loadApiKeys, parseApiConfig, runApi } from "../src/index.ts";
import { serviceEnv } from "./support.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const MAIN = join(ROOT, "apps/cli/src/main.ts");

describe("API keys", () => {
  it("reads role:token entries and lines, and tells each token's role", () => {
    const keys = ApiKeys.parse({
      keys: " reader:r-token , operator:o:token:with:colons,",
      file: { path: "/keys", text: "# the producers\n\nproducer:p-token\r\nreader:r-token\n" },
    });
    expect(keys.size).toBe(3);
    expect(keys.roleOf("r-token")).toBe("reader");
    expect(keys.roleOf("o:token:with:colons")).toBe("operator");
    expect(keys.roleOf("p-token")).toBe("producer");
    expect(keys.roleOf("r-toke")).toBeUndefined();
    expect(keys.roleOf("")).toBeUndefined();
  });

  it("refuses a bad entry or line with one message naming it, never its token", () => {
    const secret = "s3cr3t-value";
    const cases: [Parameters<typeof ApiKeys.parse>[0], RegExp][] = [
      [{ keys: `reader:a,${secret}` }, /^LAKEFERRY_API_KEYS: entry 2: expected role:token/],
      [{ keys: `admin:${secret}` }, /^LAKEFERRY_API_KEYS: entry 1: unknown role/],
      [{ keys: `${secret}:reader` }, /^LAKEFERRY_API_KEYS: entry 1: unknown role/],
      [{ keys: "reader:" }, /^LAKEFERRY_API_KEYS: entry 1: empty token/],
      [
        { file: { path: "/etc/keys", text: `reader:a\n\noperator ${secret}\n` } },
        /^LAKEFERRY_API_KEYS_FILE: \/etc\/keys line 3: /,
      ],
      [
        { file: { path: "/k", text: `reader:${secret}\noperator:${secret}` } },
        /^LAKEFERRY_API_KEYS_FILE: \/k line 2: .*role reader already/,
      ],
      [{ keys: `reader:two ${secret}` }, /entry 1: the token contains white space/],
    ];
    for (const [sources, message] of cases) {
      let error: unknown;
      try {
        ApiKeys.parse(sources);
      } catch (caught) {
        error = caught;
      }
      expect(error, JSON.stringify(sources)).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain(secret);
      expect((error as Error).message).not.toContain("\n");
    }
  });

  it("refuses to start without any key, and reads the keys file", async () => {
    await expect(loadApiKeys({ keys: undefined, keysFile: undefined })).rejects.toThrow(
      /LAKEFERRY_API_KEYS: no API key is set.*--insecure-no-auth/,
    );
    await expect(loadApiKeys({ keys: " , ", keysFile: undefined })).rejects.toThrow(/no API key is set/);
    await expect(loadApiKeys({ keys: undefined, keysFile: "/nonexistent/keys" })).rejects.toThrow(
      /LAKEFERRY_API_KEYS_FILE: cannot read \/nonexistent\/keys: no such file/,
    );
  });

  it("reads host and port with their defaults, and names a bad variable", () => {
    const env = { DATABASE_URL: "postgresql://h/db", REDIS_URL: "redis://h", SPARK_REMOTE: "sc://h" };
    expect(parseApiConfig(env)).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      keys: undefined,
      logLevel: "info",
    });
    expect(parseApiConfig({ ...env, LAKEFERRY_API_HOST: "0.0.0.0", LAKEFERRY_API_PORT: "0" })).toMatchObject({
      host: "0.0.0.0",
      port: 0,
    });
    expect(() => parseApiConfig({ ...env, LAKEFERRY_API_PORT: "99999" })).toThrow(
      /LAKEFERRY_API_PORT must be a port/,
    );
    expect(() => parseApiConfig({ ...env, SPARK_REMOTE: "" })).toThrow(/SPARK_REMOTE is not set/);
  });
});

/** `lakeferry ARGS…` from the sources; resolves when it prints that it listens, or exits. */
function startCli(args: string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolveExit) => child.on("exit", (code) => resolveExit(code)));
  const listening = new Promise<string | undefined>((resolveUrl) => {
    child.stdout!.on("data", () => {
      const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url) resolveUrl(url);
    });
    void exited.then(() => resolveUrl(undefined));
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  void exited.then(() => clearTimeout(timer));
  return { child, exited, listening, output: () => ({ stdout, stderr }) };
}

describe("lakeferry api", () => {
  let env: Record<string, string>;
  let dir: string;
  const schema = `api_process_${randomBytes(4).toString("hex")}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lakeferry-api-process-"));
    const db = createDatabase({ connectionString: serviceEnv("DATABASE_URL"), schema, maxConnections: 1 });
    await migrate(db);
    await db.close();
    env = {
      ...(process.env as Record<string, string>),
      DATABASE_URL: serviceEnv("DATABASE_URL"),
      REDIS_URL: serviceEnv("REDIS_URL"),
      SPARK_REMOTE: serviceEnv("SPARK_REMOTE"),
      LAKEFERRY_DB_SCHEMA: schema,
      LAKEFERRY_QUEUE_PREFIX: `api-process-${schema}`,
      LAKEFERRY_LOG_LEVEL: "warn",
    };
    delete env.LAKEFERRY_API_KEYS;
    delete env.LAKEFERRY_API_KEYS_FILE;
  });

  afterAll(async () => {
    const db = createDatabase({ connectionString: serviceEnv("DATABASE_URL"), schema, maxConnections: 1 });
    await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses to start without keys, or with a bad keys file, naming what to fix", async () => {
    await expect(runApi({ env, port: 0 })).rejects.toThrow(/^LAKEFERRY_API_KEYS: no API key is set/);
    const file = join(dir, "keys");
    await writeFile(file, "operator:fine-token\nreaders:leaked-token\n");
    const refused = runApi({ env: { ...env, LAKEFERRY_API_KEYS_FILE: file }, port: 0 });
    await expect(refused).rejects.toThrow(
      `LAKEFERRY_API_KEYS_FILE: ${file} line 2: unknown role before the colon; expected role:token with role reader, producer, operator`,
    );
    await expect(refused).rejects.not.toThrow(/leaked-token/);
  });

  it("serves with keys until SIGTERM; --insecure-no-auth serves without a key and says so", async () => {
    const token = `op-${randomBytes(8).toString("hex")}`;
    const keyed = startCli(["api", "--port", "0"], { ...env, LAKEFERRY_API_KEYS: `operator:${token}` });
    const open = startCli(["api", "--port", "0", "--insecure-no-auth"], env);
    try {
      const [keyedUrl, openUrl] = await Promise.all([keyed.listening, open.listening]);
      expect(keyedUrl, keyed.output().stderr).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(keyed.output().stdout).toContain(`Bull Board: ${keyedUrl}/admin/queues`);
      expect((await fetch(`${keyedUrl}/api/v1/ingestions`)).status).toBe(401);
      const ok = await fetch(`${keyedUrl}/api/v1/ingestions`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(ok.status).toBe(200);

      expect(openUrl, open.output().stderr).toBeDefined();
      expect(open.output().stderr).toMatch(
        /WARNING: --insecure-no-auth: every request is served as operator/,
      );
      expect((await fetch(`${openUrl}/api/v1/ingestions`)).status).toBe(200);

      keyed.child.kill("SIGTERM");
      open.child.kill("SIGTERM");
      expect(await keyed.exited).toBe(0);
      expect(await open.exited).toBe(0);
      expect(keyed.output().stderr).not.toContain(token);
    } finally {
      keyed.child.kill("SIGKILL");
      open.child.kill("SIGKILL");
    }
  });
});
