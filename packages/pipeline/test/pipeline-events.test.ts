import { describe, expect, it } from "vitest";
import { PipelineEvents, type BreakerChangedEvent } from "../src/index.ts";

describe("PipelineEvents", () => {
  it("calls each listener of an event with its payload until it is removed", () => {
    const events = new PipelineEvents();
    const seen: BreakerChangedEvent[] = [];
    const other: unknown[] = [];
    const off = events.on("breaker:changed", (event) => seen.push(event));
    events.on("spark:error", (event) => other.push(event));
    const open = { state: "open", outage: "spark", pauseMs: 1_000 } as const;
    events.emit("breaker:changed", open);
    off();
    events.emit("breaker:changed", { state: "closed", outage: "none", pauseMs: 0 });
    expect(seen).toEqual([open]);
    expect(other).toEqual([]);
  });

  it("keeps a throwing listener from reaching the emitter or the other listeners", () => {
    const failures: [unknown, string][] = [];
    const events = new PipelineEvents({ onListenerError: (error, name) => failures.push([error, name]) });
    const boom = new Error("listener bug");
    const seen: number[] = [];
    events.on("discovery:finished", () => {
      throw boom;
    });
    events.on("discovery:finished", (event) => seen.push(event.runId));
    const event = { ingestion: "o", runId: 7, durationSeconds: 1, objectsListed: 0, registered: 0 };
    expect(() => events.emit("discovery:finished", event)).not.toThrow();
    expect(seen).toEqual([7]);
    expect(failures).toEqual([[boom, "discovery:finished"]]);
  });
});
