import { InvalidInputError } from "@lakeferry/core";
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
