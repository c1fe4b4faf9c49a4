import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { serveMetrics, type HealthStatus } from "../src/index.ts";
import { parsePrometheusText, sampleValue } from "./prometheus-text.ts";

describe("serveMetrics", () => {
  it("serves /metrics as Prometheus text and /healthz as the health check says", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "lakeferry_test_total", help: "t", registers: [registry] });
    let health: HealthStatus = { ok: true };
    const endpoint = await serveMetrics({ port: 0, registry, health: () => health });
    try {
      expect(endpoint.url).toBe(`http://127.0.0.1:${endpoint.port}`);
      counter.inc(3);
      const metrics = await fetch(`${endpoint.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get("content-type")).toContain("text/plain; version=0.0.4");
      expect(sampleValue(parsePrometheusText(await metrics.text()), "lakeferry_test_total")).toBe(3);

      const ok = await fetch(`${endpoint.url}/healthz`);
      expect([ok.status, await ok.json()]).toEqual([200, { status: "ok" }]);
      health = { ok: false, reason: "stopping" };
      const down = await fetch(`${endpoint.url}/healthz`);
      expect([down.status, await down.json()]).toEqual([503, { status: "unavailable", reason: "stopping" }]);

      expect((await fetch(`${endpoint.url}/nope`)).status).toBe(404);
      expect((await fetch(`${endpoint.url}/metrics`, { method: "POST" })).status).toBe(405);
    } finally {
      await endpoint.close();
    }
    await expect(fetch(`${endpoint.url}/metrics`)).rejects.toThrow();
  });

  it("refuses a port already in use", async () => {
    const registry = new Registry();
    const first = await serveMetrics({ port: 0, registry });
    try {
      await expect(serveMetrics({ port: first.port, registry })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});
