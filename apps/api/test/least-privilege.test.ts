/**
 * Least privilege through the HTTP API (issue 12): `PUT /api/v1/ingestions/{name}` refuses what
 * `lakeferry ingestion apply` refuses under the API's own access policy, and a submitted path that leads out
 * of the source through a symbolic link is refused, against the real Postgres and Redis.
 */
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, ingestionSpec, landFiles, startApi, TOKENS, type ApiSandbox } from "./support.ts";

interface Problem {
  status: number;
  field?: string;
  detail: string;
}

describe("the API keeps to its access policy", () => {
  let box: ApiSandbox;
  let passed = false;
  const name = "guarded";
  const put = (body: unknown) =>
    call<Problem>(box, "PUT", `/api/v1/ingestions/${name}`, { token: TOKENS.operator, body });

  beforeAll(async () => {
    // A root no sandbox lies in: the sandbox's own source is outside it.
    box = await startApi("privilege", {
      env: {
        ...process.env,
        LAKEFERRY_LOCAL_ROOTS: "/nonexistent-root",
        LAKEFERRY_ALLOWED_ENDPOINTS: "minio.internal",
      },
    });
  });
  afterAll(async () => {
    await box?.close(passed);
  });

  it("refuses at apply a source outside the roots, forbidden credential references and Spark settings (400)", async () => {
    const refusals: [Record<string, unknown>, string, RegExp][] = [
      [
        {},
        "source",
        /outside the folders local sources may read \(LAKEFERRY_LOCAL_ROOTS=\/nonexistent-root\)/,
      ],
      [
        {
          source: "s3://landing/in/",
          credentials: { accessKeyId: { env: "REDIS_URL" }, secretAccessKey: { env: "ORDERS_SECRET" } },
        },
        "credentials.accessKeyId",
        /REDIS_URL, one of lakeferry's own settings/,
      ],
      [
        { source: "s3://landing/in/", credentials: { endpoint: "http://collector.example:9000" } },
        "credentials.endpoint",
        /collector\.example, which LAKEFERRY_ALLOWED_ENDPOINTS does not list \(minio\.internal\)/,
      ],
      [
        { options: { "spark.sql.files.maxPartitionBytes": "1" } },
        "options.spark.sql.files.maxPartitionBytes",
        /Spark server/,
      ],
    ];
    for (const [extra, field, detail] of refusals) {
      const answer = await put(ingestionSpec(box, name, extra));
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.field).toBe(field);
      expect(answer.body.detail).toMatch(detail);
    }
    const allowed = await put(
      ingestionSpec(box, name, {
        source: "s3://landing/in/",
        credentials: { endpoint: "http://minio.internal:9000" },
      }),
    );
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(201);
    passed = true;
  });
});

describe("a submitted path that leaves the source through a link", () => {
  let box: ApiSandbox;
  let passed = false;
  const name = "linked";

  beforeAll(async () => {
    box = await startApi("links");
    const applied = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
      token: TOKENS.operator,
      body: ingestionSpec(box, name),
    });
    expect(applied.status, applied.text).toBe(201);
  });
  afterAll(async () => {
    await box?.close(passed);
  });

  it("is refused with the link's target named; the file inside is accepted", async () => {
    await landFiles(box, ["inside.json"]);
    await mkdir(join(box.dir, "private"));
    await writeFile(join(box.dir, "private", "keys.json"), '{"id": 1, "name": "not for the lake"}\n');
    await symlink(join(box.dir, "private", "keys.json"), join(box.source, "keys.json"));
    const answer = await call<{
      accepted: number;
      refused: number;
      results: { path: string; status: string; reason?: string }[];
    }>(box, "POST", `/api/v1/ingestions/${name}/files`, {
      token: TOKENS.producer,
      body: { files: [{ path: "inside.json" }, { path: "keys.json" }] },
    });
    expect(answer.status, answer.text).toBe(202);
    expect(answer.body).toMatchObject({ accepted: 1, refused: 1 });
    const refused = answer.body.results.find((r) => r.path === "keys.json");
    expect(refused?.status).toBe("refused");
    expect(refused?.reason).toMatch(/a symbolic link to .*private\/keys\.json, outside the source folder/);
    passed = true;
  });
});
