import { InvalidInputError } from "@lakeferry/core";

/** A parsed Spark Connect connection string. */
export interface SparkRemote {
  /** Host name or IP address (IPv6 without brackets). */
  host: string;
  /** Port; 15002 when the string names none. */
  port: number;
  /** `host:port` as gRPC expects it (IPv6 in brackets). */
  address: string;
  /** Bearer token sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** Whether to use TLS. Default false. */
  useSsl: boolean;
  userId?: string;
  userAgent?: string;
  /** A session id (UUID) to use instead of a random one. */
  sessionId?: string;
  /** Largest message accepted or sent, in bytes. */
  grpcMaxMessageSize?: number;
}

const DEFAULT_PORT = 15002;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KNOWN_PARAMS = ["token", "use_ssl", "user_id", "user_agent", "session_id", "grpc_max_message_size"];
const FORMAT = "expected sc://host[:port][/;param=value;…] (params: " + KNOWN_PARAMS.join(", ") + ")";

/**
 * Parses a Spark Connect connection string, `sc://host[:port][/;token=…;use_ssl=true;user_id=…]`.
 * Throws InvalidInputError (field `remote`) when it is malformed; the message never echoes the token.
 */
export function parseSparkRemote(remote: string): SparkRemote {
  if (typeof remote !== "string" || remote.trim() === "") {
    throw new InvalidInputError("remote", `is empty; ${FORMAT}`);
  }
  const match = /^sc:\/\/([^/]*)(\/.*)?$/.exec(remote.trim());
  if (!match) throw new InvalidInputError("remote", `does not start with sc://; ${FORMAT}`);
  const authority = match[1] ?? "";
  const path = match[2] ?? "";

  const hostPort = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d+))?$/.exec(authority);
  if (!hostPort) throw new InvalidInputError("remote", `has an invalid host or port; ${FORMAT}`);
  const ipv6 = hostPort[1];
  const host = ipv6 ?? hostPort[2] ?? "";
  const port = hostPort[3] === undefined ? DEFAULT_PORT : Number(hostPort[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidInputError("remote", `port must be between 1 and 65535; ${FORMAT}`);
  }

  const result: SparkRemote = {
    host,
    port,
    address: ipv6 === undefined ? `${host}:${port}` : `[${host}]:${port}`,
    useSsl: false,
  };
  if (path === "" || path === "/") return result;
  if (!path.startsWith("/;")) {
    throw new InvalidInputError("remote", `must have no path other than /;params; ${FORMAT}`);
  }

  const seen = new Set<string>();
  for (const part of path.slice(2).split(";")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    // The text itself is not echoed: it may be a token that lost its "token=".
    if (eq <= 0)
      throw new InvalidInputError("remote", `a parameter is not of the form name=value; ${FORMAT}`);
    const key = part.slice(0, eq);
    if (!KNOWN_PARAMS.includes(key)) {
      throw new InvalidInputError("remote", `unknown parameter "${paramName(key)}"; ${FORMAT}`);
    }
    if (seen.has(key)) throw new InvalidInputError("remote", `parameter "${key}" is given twice`);
    seen.add(key);
    let value: string;
    try {
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      throw new InvalidInputError("remote", `parameter "${key}" is not valid percent-encoding`);
    }
    if (value === "") throw new InvalidInputError("remote", `parameter "${key}" is empty`);
    switch (key) {
      case "token":
        result.token = value;
        break;
      case "use_ssl":
        if (value !== "true" && value !== "false") {
          throw new InvalidInputError("remote", `use_ssl must be true or false`);
        }
        result.useSsl = value === "true";
        break;
      case "user_id":
        result.userId = value;
        break;
      case "user_agent":
        result.userAgent = value;
        break;
      case "session_id":
        if (!UUID.test(value)) throw new InvalidInputError("remote", `session_id must be a UUID`);
        result.sessionId = value.toLowerCase();
        break;
      case "grpc_max_message_size": {
        const size = Number(value);
        if (!Number.isSafeInteger(size) || size <= 0) {
          throw new InvalidInputError("remote", `grpc_max_message_size must be a positive integer (bytes)`);
        }
        result.grpcMaxMessageSize = size;
        break;
      }
    }
  }
  return result;
}

/** A parameter name fit for an error message: short, in case a value was pasted in its place. */
function paramName(text: string): string {
  return text.length > 24 ? `${text.slice(0, 24)}…` : text;
}
