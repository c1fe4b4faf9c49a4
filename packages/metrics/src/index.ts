export { attachPipelineMetrics } from "./pipeline-metrics.ts";
export { registerBacklogMetrics, type BacklogMetricsOptions } from "./backlog-metrics.ts";
export {
  serveMetrics,
  type HealthStatus,
  type MetricsEndpoint,
  type ServeMetricsOptions,
} from "./serve-metrics.ts";
export { MetricsServer, MetricsListenError, type MetricsServerOptions } from "./metrics-server.ts";
export { runServed, type RunServedOptions, type Startable } from "./run-served.ts";
export { collectDefaultMetrics, Registry } from "prom-client";
