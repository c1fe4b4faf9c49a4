import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";

export type Role = "worker" | "discoverer";

/** One process of the fleet, as spawned: a kill or a crash ends it, and its slot gets a new one. */
export class FleetProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Set before the driver signals it, so that its exit is not counted as unplanned. */
  expectedExit = false;
  paused = false;
  #running = true;

  constructor(name: string, bin: string, args: string[], env: Record<string, string>, logDir: string) {
    this.name = name;
    this.logFile = join(logDir, `${name}.log`);
    const log = createWriteStream(this.logFile);
    this.child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.pipe(log, { end: false });
    this.child.stderr?.pipe(log, { end: false });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.#running = false;
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.#running;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.#running) this.child.kill(signal);
  }
}

/** A slot of the fleet: the role it plays and the process now playing it (a new one after each kill). */
export interface Slot {
  /** `w0`, `w1`, …, `discoverer`. */
  label: string;
  role: Role;
  generation: number;
  process: FleetProcess | undefined;
}

export interface FleetOptions {
  /** `apps/cli/bin/lakeferry.js`. */
  bin: string;
  workers: number;
  /** Environment of every process (connections, schema, prefix, knobs). */
  env: Record<string, string>;
  logDir: string;
  log: (line: string) => void;
}

/**
 * The discoverer and N workers as real processes, supervised as Kubernetes would: a process that exits
 * without the driver asking is counted as unplanned and started again a second later.
 */
export class Fleet {
  readonly slots: Slot[];
  /** Exits the driver did not cause: name, code or signal, log file. */
  readonly unplannedExits: string[] = [];
  readonly #options: FleetOptions;
  #stopping = false;

  constructor(options: FleetOptions) {
    this.#options = options;
    this.slots = [
      { label: "discoverer", role: "discoverer", generation: 0, process: undefined },
      ...Array.from({ length: options.workers }, (_, i) => ({
        label: `w${i}`,
        role: "worker" as const,
        generation: 0,
        process: undefined,
      })),
    ];
  }

  get workers(): Slot[] {
    return this.slots.filter((slot) => slot.role === "worker");
  }

  get discoverer(): Slot {
    return this.slots[0] as Slot;
  }

  /** Processes running now. */
  get running(): number {
    return this.slots.filter((slot) => slot.process?.running).length;
  }

  startAll(): void {
    for (const slot of this.slots) this.spawn(slot);
  }

  /** Starts a new process in `slot` (its worker id names the slot and the generation). */
  spawn(slot: Slot): FleetProcess {
    slot.generation += 1;
    const name = `${slot.label}-g${slot.generation}`;
    const env = {
      ...this.#options.env,
      ...(slot.role === "worker" ? { LAKEFERRY_WORKER_ID: `chaos-${name}` } : {}),
    };
    const child = new FleetProcess(name, this.#options.bin, [slot.role], env, this.#options.logDir);
    slot.process = child;
    void child.exited.then(({ code, signal }) => {
      if (child.expectedExit || this.#stopping) return;
      this.unplannedExits.push(
        `${name} exited by itself (${signal ?? `code ${code}`}); log ${child.logFile}`,
      );
      this.#options.log(`${name} exited by itself (${signal ?? `code ${code}`}); starting it again`);
      setTimeout(() => {
        if (!this.#stopping && slot.process === child) this.spawn(slot);
      }, 1_000);
    });
    return child;
  }

  /** SIGKILL of the slot's process; resolves once it is gone. */
  async kill(slot: Slot): Promise<FleetProcess | undefined> {
    const victim = slot.process;
    if (!victim?.running) return undefined;
    victim.expectedExit = true;
    victim.signal("SIGKILL");
    await victim.exited;
    return victim;
  }

  /** SIGSTOP: the process holds its leases, connections and batches but does nothing. */
  pause(slot: Slot): FleetProcess | undefined {
    const victim = slot.process;
    if (!victim?.running) return undefined;
    victim.paused = true;
    victim.signal("SIGSTOP");
    return victim;
  }

  resume(victim: FleetProcess): void {
    victim.signal("SIGCONT");
    victim.paused = false;
  }

  /** Every slot has a running, unpaused process. */
  ensureAll(): void {
    for (const slot of this.slots) {
      if (slot.process?.paused) this.resume(slot.process);
      if (!slot.process?.running) this.spawn(slot);
    }
  }

  /** SIGTERM to every process; SIGKILL to those still running after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    const running = this.slots.flatMap((slot) => (slot.process?.running ? [slot.process] : []));
    for (const child of running) {
      child.expectedExit = true;
      if (child.paused) this.resume(child);
      child.signal("SIGTERM");
    }
    const timer = setTimeout(() => running.forEach((child) => child.signal("SIGKILL")), timeoutMs);
    await Promise.all(running.map((child) => child.exited));
    clearTimeout(timer);
  }
}
