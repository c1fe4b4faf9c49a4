import { readFile } from "node:fs/promises";
import { createLogger, errorMessage, InvalidInputError } from "@lakeferry/core";
import { stopOnSignals } from "@lakeferry/app-kit";
import { ApiKeys } from "./auth.ts";
import { parseApiConfig, type ApiConfig } from "./config.ts";
import { createApiServer } from "./server.ts";

export interface RunApiOptions {
  /** The environment to read settings from (the entry point passes `process.env`). */
  env: Record<string, string | undefined>;
  /** Overrides LAKEFERRY_API_HOST. */
  host?: string;
  /** Overrides LAKEFERRY_API_PORT. */
  port?: number;
  /** Serve every request as operator, without a key (a warning is printed). */
  insecureNoAuth?: boolean;
  /** Called once listening, with the URL (the CLI prints it). */
  onListening?: (url: string) => void;
}

/**
 * The API's keys from LAKEFERRY_API_KEYS and LAKEFERRY_API_KEYS_FILE.
 * @throws InvalidInputError when the file cannot be read, an entry is malformed, or there is no key.
 */
export async function loadApiKeys(config: Pick<ApiConfig, "keys" | "keysFile">): Promise<ApiKeys> {
  let file: { path: string; text: string } | undefined;
  if (config.keysFile !== undefined) {
    try {
      file = { path: config.keysFile, text: await readFile(config.keysFile, "utf8") };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason = code === "ENOENT" ? "no such file" : errorMessage(error);
      throw new InvalidInputError("LAKEFERRY_API_KEYS_FILE", `cannot read ${config.keysFile}: ${reason}`);
    }
  }
  const keys = ApiKeys.parse({
    ...(config.keys !== undefined ? { keys: config.keys } : {}),
    ...(file ? { file } : {}),
  });
  if (keys.size === 0) {
    throw new InvalidInputError(
      "LAKEFERRY_API_KEYS",
      "no API key is set: set LAKEFERRY_API_KEYS=role:token[,…] or LAKEFERRY_API_KEYS_FILE (roles reader, " +
        "producer, operator), or start with --insecure-no-auth on a trusted machine",
    );
  }
  return keys;
}

/**
 * Runs the API until SIGTERM/SIGINT: parses the environment, loads the keys (refusing to start without any
 * unless `insecureNoAuth`), listens, and closes cleanly. Resolves once stopped.
 */
export async function runApi(options: RunApiOptions): Promise<void> {
  const config = parseApiConfig(options.env);
  const host = options.host ?? config.host;
  const port = options.port ?? config.port;
  const logger = createLogger({ name: "api", level: config.logLevel });
  const keys = options.insecureNoAuth ? "insecure" : await loadApiKeys(config);
  if (keys === "insecure") {
    process.stderr.write(
      `lakeferry api: WARNING: --insecure-no-auth: every request is served as operator, without a key. ` +
        `Use it only on a trusted machine (listening on ${host}).\n`,
    );
    logger.warn({ host }, "authentication is off (--insecure-no-auth)");
  }
  const server = createApiServer({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    sparkRemote: config.sparkRemote,
    dbSchema: config.dbSchema,
    maxConnections: config.dbPoolMax,
    queuePrefix: config.queuePrefix,
    keys,
    logger,
    env: options.env,
  });
  const stopped = stopOnSignals(server, { timeoutMs: config.shutdownTimeoutMs, logger });
  let address;
  try {
    address = await server.start({ host, port });
  } catch (error) {
    await server.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EADDRNOTAVAIL" || code === "EACCES") {
      throw new InvalidInputError(
        "LAKEFERRY_API_PORT",
        `cannot listen on ${host}:${port}: ${errorMessage(error)}`,
      );
    }
    throw error;
  }
  logger.info(
    {
      url: address.url,
      schema: config.dbSchema,
      prefix: config.queuePrefix,
      keys: keys === "insecure" ? 0 : keys.size,
    },
    "api listening",
  );
  options.onListening?.(address.url);
  await stopped;
  logger.flush();
}
