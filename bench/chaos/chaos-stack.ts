import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { FaultProxy } from "@lakeferry/fault-proxy";
import type { StackOptions } from "./chaos-options.ts";

const run = promisify(execFile);
const PG = "lakeferry:lakeferry";

/**
 * The chaos run's own Postgres, Redis and Spark Connect server (started with `scripts/services.sh` under
 * their own folder and ports, so restarting or flushing them disturbs no other test), and the two fault
 * proxies the fleet reaches Postgres and Spark through. The driver itself connects directly.
 */
export class ChaosStack {
  readonly sparkProxy: FaultProxy;
  readonly pgProxy: FaultProxy;
  readonly #options: StackOptions;
  readonly #script: string;

  constructor(options: StackOptions, root: string) {
    this.#options = options;
    this.#script = join(root, "scripts/services.sh");
    this.sparkProxy = new FaultProxy({ target: { host: "127.0.0.1", port: options.sparkPort } });
    this.pgProxy = new FaultProxy({ target: { host: "127.0.0.1", port: options.pgPort } });
  }

  /** Connections for the driver: straight to the services. */
  get direct(): { databaseUrl: string; redisUrl: string; sparkRemote: string } {
    const o = this.#options;
    return {
      databaseUrl: `postgresql://${PG}@127.0.0.1:${o.pgPort}/lakeferry`,
      redisUrl: `redis://127.0.0.1:${o.redisPort}`,
      sparkRemote: `sc://127.0.0.1:${o.sparkPort}`,
    };
  }

  /** Connections for the fleet: Postgres and Spark through the fault proxies, Redis straight. */
  get proxied(): { databaseUrl: string; redisUrl: string; sparkRemote: string } {
    return {
      databaseUrl: `postgresql://${PG}@${this.pgProxy.address}/lakeferry`,
      redisUrl: this.direct.redisUrl,
      sparkRemote: `sc://${this.sparkProxy.address}`,
    };
  }

  /** Starts what is not running (Spark last: its Iceberg catalog lives in this Postgres) and the proxies. */
  async up(): Promise<void> {
    await this.#services("up", "postgres", "redis", "spark");
    await this.sparkProxy.start();
    await this.pgProxy.start();
  }

  /** A crash of the Spark server (SIGKILL of its JVM), `downMs` of nothing, then a fresh start. */
  async restartSpark(downMs: number): Promise<void> {
    const pidFile = join(this.#options.dir, this.#options.sparkName, "spark.pid");
    const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await sleep(downMs);
    await this.#services("up", "spark");
  }

  /** A Postgres restart: a fast shutdown (sessions end with 57P01), `downMs` down, then a start. */
  async restartPostgres(downMs: number): Promise<void> {
    await this.#services("down", "postgres");
    await sleep(downMs);
    await this.#services("up", "postgres");
  }

  /** FLUSHALL on this run's own Redis: every key of every queue, schedules and epoch marker included. */
  async flushRedis(): Promise<void> {
    await run("redis-cli", ["-h", "127.0.0.1", "-p", String(this.#options.redisPort), "FLUSHALL"]);
  }

  /** Ends every injected fault: proxies pass traffic untouched, every service answers. */
  async heal(): Promise<void> {
    for (const proxy of [this.sparkProxy, this.pgProxy]) {
      proxy.blackhole(false);
      proxy.setLatency(0);
      proxy.refuse(false);
    }
    await this.#services("up", "postgres", "redis", "spark");
  }

  /** Closes the proxies and, unless `keepServices`, stops the services (their data stays in `dir`). */
  async close(keepServices: boolean): Promise<void> {
    await this.sparkProxy.close();
    await this.pgProxy.close();
    if (!keepServices) await this.#services("down", "spark", "redis", "postgres").catch(() => undefined);
  }

  /** The environment that makes `scripts/services.sh` act on this stack (for a person inspecting it too). */
  get servicesEnv(): Record<string, string> {
    const o = this.#options;
    return {
      LAKEFERRY_SERVICES_DIR: o.dir,
      LAKEFERRY_WAREHOUSE: join(o.dir, "warehouse"),
      LAKEFERRY_PG_PORT: String(o.pgPort),
      LAKEFERRY_REDIS_PORT: String(o.redisPort),
      LAKEFERRY_SPARK_PORT: String(o.sparkPort),
      LAKEFERRY_SPARK_NAME: o.sparkName,
      LAKEFERRY_SPARK_MEMORY: o.sparkMemory,
    };
  }

  async #services(action: "up" | "down", ...services: string[]): Promise<void> {
    try {
      await run("bash", [this.#script, action, ...services], {
        env: { ...process.env, ...this.servicesEnv },
        timeout: 300_000,
      });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? "";
      throw new Error(`scripts/services.sh ${action} ${services.join(" ")} failed: ${stderr.trim()}`, {
        cause: error,
      });
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
