/**
 * `npm run demo` with its API's port taken: it stops before starting anything, saying how to pick another
 * port (LAKEFERRY_DEMO_API_PORT) or find who holds it.
 */
import { spawn } from "node:child_process";
import { createServer, type AddressInfo, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT } from "./support.ts";

let holder: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => (holder ? holder.close(resolve) : resolve(undefined)));
  holder = undefined;
});

/** `bash scripts/demo.sh` with `env` added; its exit code and output. */
function demo(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(ROOT, "scripts/demo.sh")], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("npm run demo", () => {
  it("refuses a taken API port at once, in two lines, having started nothing", async () => {
    const server = (holder = createServer());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;

    const result = await demo({ LAKEFERRY_DEMO_API_PORT: String(port) });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    // Only the two lines: the services were not even checked (services.sh reports each one on stderr).
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines, result.stderr).toHaveLength(2);
    expect(lines[0]).toContain(`port ${port} on 127.0.0.1 is taken`);
    expect(lines[0]).toContain("nothing was started");
    expect(lines[1]).toContain("LAKEFERRY_DEMO_API_PORT=");
    expect(lines[1]).toContain(`sport = :${port}`);
  });

  it("refuses a LAKEFERRY_DEMO_API_PORT that is not a port number", async () => {
    const result = await demo({ LAKEFERRY_DEMO_API_PORT: "80a" });
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd()).toMatch(
      /^demo: LAKEFERRY_DEMO_API_PORT=80a is not a port number \(1-65535\)/,
    );
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});
