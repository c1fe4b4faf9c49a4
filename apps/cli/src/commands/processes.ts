import { runDiscoverer } from "@lakeferry/discoverer-app";
import { runWorker } from "@lakeferry/worker-app";

/** `lakeferry worker`: an ingest worker in this process, until SIGTERM/SIGINT (see @lakeferry/worker-app). */
export async function workerCommand(
  env: Record<string, string | undefined>,
  options: { concurrency?: number },
): Promise<void> {
  await runWorker({
    env,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
  });
}

/** `lakeferry discoverer`: a scheduled-discovery process, until SIGTERM/SIGINT. */
export async function discovererCommand(env: Record<string, string | undefined>): Promise<void> {
  await runDiscoverer({ env });
}
