export { runDiscoverer, type RunDiscovererOptions } from "./run-discoverer.ts";
export { parseDiscovererConfig, DiscovererEnv, type DiscovererConfig } from "./config.ts";
