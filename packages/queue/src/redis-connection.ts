import { InvalidInputError, LakeferryError } from "@lakeferry/core";
import { Cluster, Redis, type RedisOptions } from "ioredis";

/** A connection to a single Redis server or to a Redis Cluster; BullMQ takes either. */
export type RedisConnection = Redis | Cluster;

/**
 * An ioredis connection suited to BullMQ: `maxRetriesPerRequest: null`, so commands wait out a Redis
 * restart instead of failing (BullMQ requires it for workers). The caller owns it and must `quit()` it.
 *
 * `rediss://` speaks TLS and checks the server's certificate against Node's trusted CAs (add a private CA
 * with `NODE_EXTRA_CA_CERTS`); a password goes in the URL (`rediss://:password@host:6380`, or
 * `user:password@` for an ACL user). `?cluster=true` connects to a Redis Cluster through the node the URL
 * names (the others are discovered); its keys must share a hash slot, so the queue prefix must be a hash tag
 * such as `{lakeferry}`.
 *
 * @param overrides ioredis options that replace the defaults (for each node, on a cluster).
 * @throws InvalidInputError when `url` is not a `redis://` or `rediss://` URL.
 */
export function redisConnection(url: string, overrides: RedisOptions = {}): RedisConnection {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidInputError("redisUrl", `not a URL: "${url}"; expected redis://host:port`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new InvalidInputError(
      "redisUrl",
      `unsupported scheme "${parsed.protocol}"; expected redis:// or rediss://`,
    );
  }
  const cluster = parsed.searchParams.get("cluster");
  if (cluster !== null && cluster !== "true" && cluster !== "false") {
    throw new InvalidInputError("redisUrl", `cluster=${cluster} must be true or false`);
  }
  const options: RedisOptions = { maxRetriesPerRequest: null, ...overrides };
  if (cluster !== "true") {
    parsed.searchParams.delete("cluster");
    return new Redis(parsed.toString(), options);
  }
  return new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], {
    redisOptions: {
      ...options,
      ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
      ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
      ...(parsed.protocol === "rediss:" ? { tls: {} } : {}),
    },
    // The cluster client queues and connects on its own, whatever its nodes' options say.
    ...(overrides.enableOfflineQueue === false ? { enableOfflineQueue: false } : {}),
    ...(overrides.lazyConnect ? { lazyConnect: true } : {}),
  });
}

/** Node's codes for a server certificate that does not verify: no retry can fix these. */
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/;

/** What to do about a failed check, from the error's code and message. */
function redisHint(error: Error & { code?: string }, tls: boolean): string {
  const code = error.code ?? "";
  if (CERTIFICATE_ERROR.test(code)) {
    return "the server's TLS certificate is not trusted: give its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.crt";
  }
  if (/WRONGPASS|NOAUTH|invalid password/i.test(error.message)) {
    return "the password is wrong or missing: put it in the URL (redis://:password@host:port)";
  }
  if (!tls && /ECONNRESET|Connection is closed/i.test(`${code} ${error.message}`)) {
    return "the server closed the connection: if it takes TLS only, use rediss://";
  }
  return "check the host, port and that Redis runs";
}

/**
 * Connects to `url` once and PINGs it, without waiting for an unreachable Redis to come back (the
 * connections {@link redisConnection} opens wait as long as an outage lasts): for one-shot commands,
 * which should say at once why Redis cannot be used.
 *
 * @throws LakeferryError `REDIS_UNAVAILABLE` naming the server (not the password), Redis's or Node's reason,
 *   and what to check.
 */
export async function checkRedis(url: string, timeoutMs: number): Promise<void> {
  const probe = redisConnection(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
  });
  let lastError: (Error & { code?: string }) | undefined;
  probe.on("error", (error: Error) => (lastError = error));
  try {
    await probe.connect();
    await probe.ping();
  } catch (thrown) {
    // The first socket or TLS error says more than the "Connection is closed" that follows it.
    const error = lastError ?? (thrown as Error & { code?: string });
    const parsed = new URL(url);
    throw new LakeferryError(
      "REDIS_UNAVAILABLE",
      `cannot use Redis at ${parsed.protocol}//${parsed.host}: ${error.message}; ` +
        redisHint(error, parsed.protocol === "rediss:"),
      { retryable: true, outage: "redis", cause: thrown },
    );
  } finally {
    probe.disconnect();
  }
}
