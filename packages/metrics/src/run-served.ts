import { stopOnSignals, type Stoppable } from "@lakeferry/app-kit";
import { MetricsServer, type MetricsServerOptions } from "./metrics-server.ts";
import type { HealthStatus } from "./serve-metrics.ts";

/** A long-lived process part (a worker or discoverer runtime). */
export interface Startable extends Stoppable {
  start(): Promise<void>;
}

export interface RunServedOptions extends Omit<MetricsServerOptions, "port" | "host" | "health"> {
  /** Where `/metrics` and `/healthz` are served; undefined serves none. */
  metrics: { port: number; host?: string } | undefined;
  /** How long SIGTERM lets the runtime finish its work, in ms. */
  shutdownTimeoutMs: number;
}

/**
 * Starts `runtime` with its metrics endpoint beside it and stops both on SIGTERM/SIGINT: the endpoint opens
 * first (a port that cannot be opened stops the process before it takes any work), `/healthz` says
 * `starting` until the runtime is up and `stopping` once a signal came, and the endpoint closes after the
 * runtime. Resolves once the runtime is started, with `stopped`, which resolves once it is stopped.
 */
export async function runServed(
  runtime: Startable,
  options: RunServedOptions,
): Promise<{ stopped: Promise<void> }> {
  const { metrics: endpoint, shutdownTimeoutMs, ...connections } = options;
  let health: HealthStatus = { ok: false, reason: "starting" };
  const metrics = endpoint
    ? new MetricsServer({ ...connections, ...endpoint, health: () => health })
    : undefined;
  await metrics?.start();
  const stopped = stopOnSignals(
    {
      close: async (closeOptions) => {
        health = { ok: false, reason: "stopping" };
        await runtime.close(closeOptions);
        await metrics?.close();
      },
    },
    { timeoutMs: shutdownTimeoutMs, logger: options.logger },
  );
  try {
    await runtime.start();
  } catch (error) {
    await metrics?.close();
    throw error;
  }
  health = { ok: true };
  return { stopped };
}
