import { InvalidInputError } from "@lakeferry/core";
import { Redis } from "ioredis";

/**
 * An ioredis connection suited to BullMQ: `maxRetriesPerRequest: null`, so commands wait out a Redis
 * restart instead of failing (BullMQ requires it for workers). The caller owns it and must `quit()` it.
 *
 * @throws InvalidInputError when `url` is not a `redis://` or `rediss://` URL.
 */
export function redisConnection(url: string): Redis {
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
  return new Redis(url, { maxRetriesPerRequest: null });
}
