/**
 * docker-compose.yml, checked without a Docker engine: every lakeferry service runs a `lakeferry` command
 * through the image's entrypoint, its environment passes that process's own settings check, and the ports
 * it publishes or exposes are the ones it listens on.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadApiKeys, parseApiConfig } from "@lakeferry/api";
import { parseDiscovererConfig } from "@lakeferry/discoverer-app";
import { parseWorkerConfig } from "@lakeferry/worker-app";
import { createProgram } from "../src/program.ts";
import { parseCliConfig } from "../src/config.ts";
import { ROOT } from "./support.ts";

interface ComposeService {
  build?: string;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
}

/** The compose file's services, YAML merge keys (`<<: *lakeferry-env`) applied. */
async function composeServices(): Promise<Record<string, ComposeService>> {
  const text = await readFile(join(ROOT, "docker-compose.yml"), "utf8");
  return (parse(text, { merge: true }) as { services: Record<string, ComposeService> }).services;
}

/**
 * `${NAME:-default}` and `${NAME:?message}` replaced as Compose does, from `shell` (an unset `:?` variable
 * fails, as `docker compose up` does).
 */
function interpolate(env: Record<string, string>, shell: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([key, value]) => [
      key,
      String(value).replace(/\$\{(\w+):([-?])([^}]*)\}/g, (_, name: string, kind: string, text: string) => {
        if (shell[name]) return shell[name];
        if (kind === "?") throw new Error(`${name}: ${text}`);
        return text;
      }),
    ]),
  );
}

/** What the README's walk-through exports before `docker compose up`. */
const SHELL = { REDIS_PASSWORD: "0123456789abcdef" };

describe("docker-compose.yml", () => {
  it("runs each lakeferry service as a lakeferry command of the image (ENTRYPOINT the built CLI)", async () => {
    const dockerfile = await readFile(join(ROOT, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(
      /^ENTRYPOINT \["node", "--enable-source-maps", "apps\/cli\/dist\/main\.js"\]$/m,
    );
    // The deps stage installs from the manifests alone: npm ci needs every workspace's package.json.
    const workspaces = [
      ...(await readdir(join(ROOT, "packages"))).map((name) => `packages/${name}`),
      ...(await readdir(join(ROOT, "apps"))).map((name) => `apps/${name}`),
    ];
    for (const workspace of workspaces) {
      expect(dockerfile, workspace).toContain(`COPY ${workspace}/package.json ${workspace}/\n`);
    }
    const commands = new Set(createProgram({}).commands.map((command) => command.name()));
    const services = await composeServices();
    const built = Object.entries(services).filter(([, service]) => service.build === ".");
    expect(built.map(([name]) => name).sort()).toEqual(["api", "cli", "discoverer", "migrate", "worker"]);
    for (const [name, service] of built) {
      if (service.command !== undefined) expect(commands, name).toContain(service.command[0]);
    }
  });

  it("gives the worker and the discoverer a metrics endpoint every container can reach, on the port exposed", async () => {
    const { worker, discoverer } = await composeServices();
    const workerConfig = parseWorkerConfig(interpolate(worker!.environment!, SHELL));
    expect(workerConfig.metrics).toEqual({ port: 9464, host: "0.0.0.0" });
    expect(worker!.expose).toEqual([String(workerConfig.metrics!.port)]);
    const discovererConfig = parseDiscovererConfig(interpolate(discoverer!.environment!, SHELL));
    expect(discovererConfig.metrics).toEqual({ port: 9464, host: "0.0.0.0" });
    expect(discoverer!.expose).toEqual([String(discovererConfig.metrics!.port)]);
  });

  it("serves the API on every interface, publishes its port, and takes its keys from LAKEFERRY_API_KEYS", async () => {
    const { api, migrate, cli } = await composeServices();
    expect(api!.command).toEqual(["api"]);
    const keys = "reader:r-token,producer:p-token,operator:o-token";
    const config = parseApiConfig(interpolate(api!.environment!, { ...SHELL, LAKEFERRY_API_KEYS: keys }));
    expect(config).toMatchObject({ host: "0.0.0.0", port: 8080, keys });
    expect(api!.ports).toEqual([`${config.port}:${config.port}`]);
    expect((await loadApiKeys(config)).size).toBe(3);
    // Unset in the shell: the API refuses to start, naming the variable.
    const unset = parseApiConfig(interpolate(api!.environment!, SHELL));
    await expect(loadApiKeys(unset)).rejects.toThrow(/LAKEFERRY_API_KEYS: no API key is set/);
    // The one-shot services share the connections.
    expect(parseCliConfig(interpolate(migrate!.environment!, SHELL))).toMatchObject({
      databaseUrl: config.databaseUrl,
    });
    expect(parseCliConfig(interpolate(cli!.environment!, SHELL))).toMatchObject({
      redisUrl: config.redisUrl,
    });
  });

  it("runs Redis as BullMQ asks (AOF, noeviction) behind the password every lakeferry service's REDIS_URL carries", async () => {
    const services = await composeServices();
    const redis = services.redis as ComposeService & { command: string[] };
    const server = redis.command.join(" ");
    expect(server).toMatch(/--appendonly yes/);
    expect(server).toMatch(/--maxmemory-policy noeviction/);
    expect(server).toMatch(/--requirepass "\$\$REDIS_PASSWORD"/);
    expect(interpolate(redis.environment!, SHELL).REDIS_PASSWORD).toBe(SHELL.REDIS_PASSWORD);
    for (const name of ["api", "cli", "discoverer", "migrate", "worker"]) {
      const url = new URL(interpolate(services[name]!.environment!, SHELL).REDIS_URL!);
      expect([url.host, url.password], name).toEqual(["redis:6379", SHELL.REDIS_PASSWORD]);
    }
    // Without the password, Compose refuses to start rather than run an open Redis.
    expect(() => interpolate(redis.environment!, {})).toThrow(/REDIS_PASSWORD: set REDIS_PASSWORD/);
  });
});
