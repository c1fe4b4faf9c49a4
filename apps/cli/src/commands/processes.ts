// Each command imports its own app: a worker does not load the discoverer's modules, nor the reverse.

/** `lakeferry worker`: an ingest worker in this process, until SIGTERM/SIGINT (see @lakeferry/worker-app). */
export async function workerCommand(
  env: Record<string, string | undefined>,
  options: { concurrency?: number },
): Promise<void> {
  const { runWorker } = await import("@lakeferry/worker-app");
  await runWorker({
    env,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
  });
}

/** `lakeferry discoverer`: a scheduled-discovery process, until SIGTERM/SIGINT. */
export async function discovererCommand(env: Record<string, string | undefined>): Promise<void> {
  const { runDiscoverer } = await import("@lakeferry/discoverer-app");
  await runDiscoverer({ env });
}

/** `lakeferry api`: the HTTP API and Bull Board in this process, until SIGTERM/SIGINT (see @lakeferry/api). */
export async function apiCommand(
  env: Record<string, string | undefined>,
  options: { host?: string; port?: number; insecureNoAuth?: boolean },
): Promise<void> {
  const { runApi } = await import("@lakeferry/api");
  await runApi({
    env,
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
    insecureNoAuth: options.insecureNoAuth === true,
    onListening: (url) => {
      process.stdout.write(`lakeferry api listening on ${url} (Bull Board: ${url}/admin/queues)\n`);
    },
  });
}
