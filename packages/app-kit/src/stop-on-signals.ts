import type { Logger } from "@lakeferry/core";

/** Something long-lived that stops cleanly within a deadline. */
export interface Stoppable {
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * How long after its own deadline a stopping process exits regardless (ms): a process's whole shutdown takes
 * at most LAKEFERRY_SHUTDOWN_TIMEOUT_MS plus this, which Kubernetes' grace period and Compose's
 * stop_grace_period must cover.
 */
export const EXIT_AFTER_DEADLINE_MS = 5_000;

/**
 * Resolves once `service` has been stopped by SIGTERM or SIGINT. The first signal asks the service to
 * close within `timeoutMs`; if it has not finished EXIT_AFTER_DEADLINE_MS (5 s) after that, or a second
 * signal arrives, the process exits with code 1 (Kubernetes would SIGKILL it soon anyway; exiting first
 * keeps the log honest).
 */
export function stopOnSignals(
  service: Stoppable,
  options: { timeoutMs: number; logger: Logger },
): Promise<void> {
  const { timeoutMs, logger } = options;
  return new Promise<void>((resolve, reject) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        logger.flush();
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, timeoutMs }, "stopping: no new jobs, finishing in-flight work");
      const hardStop = setTimeout(() => {
        logger.error({ timeoutMs }, "did not stop within the deadline: exiting");
        logger.flush();
        process.exit(1);
      }, timeoutMs + EXIT_AFTER_DEADLINE_MS);
      hardStop.unref();
      service.close({ timeoutMs }).then(
        () => {
          clearTimeout(hardStop);
          process.off("SIGTERM", onSignal);
          process.off("SIGINT", onSignal);
          logger.info("stopped");
          resolve();
        },
        (error: unknown) => {
          clearTimeout(hardStop);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
