import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/** What `/healthz` answers: healthy, or not with the reason. */
export type HealthStatus = { ok: true } | { ok: false; reason: string };

export interface ServeMetricsOptions {
  /** TCP port; 0 picks a free one (see {@link MetricsEndpoint.port}). */
  port: number;
  /** Interface to listen on. Default `127.0.0.1` (set `0.0.0.0` for Prometheus outside the host or pod). */
  host?: string;
  /** The metrics served at `/metrics`. */
  registry: Registry;
  /** Asked on each `/healthz`: 200 `{"status":"ok"}` when ok, else 503 with the reason. Default: always ok. */
  health?: () => HealthStatus | Promise<HealthStatus>;
}

/** A listening metrics endpoint. */
export interface MetricsEndpoint {
  /** The port listened on (the one chosen when `port` was 0). */
  readonly port: number;
  /** `http://host:port`. */
  readonly url: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) and `GET /healthz` over node:http; anything else is 404.
 * Resolves once listening; rejects when the port cannot be bound.
 */
export async function serveMetrics(options: ServeMetricsOptions): Promise<MetricsEndpoint> {
  const host = options.host ?? "127.0.0.1";
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const send = (status: number, type: string, body: string): void => {
      response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      response.end(request.method === "HEAD" ? undefined : body);
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      send(405, "text/plain; charset=utf-8", "method not allowed\n");
      return;
    }
    const answer = async (): Promise<void> => {
      if (path === "/metrics") {
        send(200, options.registry.contentType, await options.registry.metrics());
      } else if (path === "/healthz") {
        const health = (await options.health?.()) ?? { ok: true };
        send(
          health.ok ? 200 : 503,
          "application/json",
          JSON.stringify(health.ok ? { status: "ok" } : { status: "unavailable", reason: health.reason }),
        );
      } else {
        send(404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n");
      }
    };
    answer().catch((error: unknown) => {
      if (response.headersSent) response.destroy();
      else
        send(500, "text/plain; charset=utf-8", `${error instanceof Error ? error.message : String(error)}\n`);
    });
  });
  server.listen(options.port, host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([error]: unknown[]) => {
      throw error;
    }),
  ]);
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
