// The image's HEALTHCHECK: asks the running lakeferry process for its /healthz. Which endpoint depends on the
// command the container runs (PID 1's arguments): the API answers on LAKEFERRY_API_PORT (default 8080), a
// worker or discoverer on LAKEFERRY_METRICS_PORT when it is set. A one-shot command (migrate, apply, …), or a
// worker without a metrics port, has nothing to ask and passes. Exit 0 healthy, 1 not (Docker's contract).
import { readFileSync } from "node:fs";

const args = readFileSync("/proc/1/cmdline", "utf8").split("\0");
const command = args.find((arg) => ["api", "worker", "discoverer"].includes(arg));

/** Where to connect for an address the process listens on: a wildcard is reached on the loopback. */
const reachable = (host) => (!host || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host);

let url;
if (command === "api") {
  url = `http://${reachable(process.env.LAKEFERRY_API_HOST)}:${process.env.LAKEFERRY_API_PORT || 8080}/healthz`;
} else if (command !== undefined && process.env.LAKEFERRY_METRICS_PORT) {
  url = `http://${reachable(process.env.LAKEFERRY_METRICS_HOST)}:${process.env.LAKEFERRY_METRICS_PORT}/healthz`;
}
if (url === undefined) process.exit(0);

try {
  const response = await fetch(url, { signal: AbortSignal.timeout(4_000) });
  if (!response.ok) {
    console.error(`healthcheck: ${url} answered ${response.status}: ${await response.text()}`);
    process.exit(1);
  }
} catch (error) {
  console.error(
    `healthcheck: ${url} did not answer: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
}
