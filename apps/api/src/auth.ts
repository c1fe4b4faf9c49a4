import { createHash, timingSafeEqual } from "node:crypto";
import type { Request, RequestHandler } from "express";
import { InvalidInputError } from "@lakeferry/core";
import { ProblemError } from "./problem.ts";

/**
 * What an API key may do: `reader` reads everything, `producer` also submits paths, `operator` does
 * everything (apply, enable, disable, discover, retry, and Bull Board's retry and promote). Each role may do what the
 * ones before it may.
 */
export const ROLES = ["reader", "producer", "operator"] as const;
export type Role = (typeof ROLES)[number];

/** Whether a key with role `held` may do what needs role `needed`. */
export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

interface Key {
  role: Role;
  /** sha256 of the token: compared in constant time, and the only form kept in memory after parsing. */
  digest: Buffer;
}

function digestOf(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** The API's keys (bearer tokens, each with a role). */
export class ApiKeys {
  readonly #keys: readonly Key[];

  private constructor(keys: Key[]) {
    this.#keys = keys;
  }

  /**
   * Reads `role:token` entries: `LAKEFERRY_API_KEYS` (comma-separated) and the lines of the file named by
   * `LAKEFERRY_API_KEYS_FILE` (blank lines and lines starting with `#` are skipped). Both may be given.
   *
   * @throws InvalidInputError naming the variable and the entry or line that is wrong (never its token).
   */
  static parse(sources: { keys?: string; file?: { path: string; text: string } }): ApiKeys {
    const entries: { text: string; where: string; variable: string }[] = [];
    if (sources.keys !== undefined) {
      sources.keys.split(",").forEach((text, index) => {
        if (text.trim() !== "")
          entries.push({ text, where: `entry ${index + 1}`, variable: "LAKEFERRY_API_KEYS" });
      });
    }
    if (sources.file !== undefined) {
      const { path, text } = sources.file;
      text.split(/\r?\n/).forEach((line, index) => {
        const trimmed = line.trim();
        if (trimmed === "" || trimmed.startsWith("#")) return;
        entries.push({ text: line, where: `${path} line ${index + 1}`, variable: "LAKEFERRY_API_KEYS_FILE" });
      });
    }
    const keys: Key[] = [];
    const roles = new Map<string, Role>();
    for (const entry of entries) {
      const colon = entry.text.indexOf(":");
      const fail = (why: string): never => {
        throw new InvalidInputError(entry.variable, `${entry.where}: ${why}`);
      };
      if (colon < 0) fail(`expected role:token with role ${ROLES.join(", ")}`);
      const role = entry.text.slice(0, colon).trim();
      const token = entry.text.slice(colon + 1).trim();
      // The role is not echoed: a line written token:role would print the token.
      if (!(ROLES as readonly string[]).includes(role)) {
        fail(`unknown role before the colon; expected role:token with role ${ROLES.join(", ")}`);
      }
      if (token === "") fail("empty token after the colon");
      if (/\s/.test(token)) fail("the token contains white space");
      const digest = digestOf(token);
      const hex = digest.toString("hex");
      const earlier = roles.get(hex);
      if (earlier !== undefined && earlier !== role) {
        fail(`this token is given with role ${earlier} already; give each token one role`);
      }
      if (earlier === undefined) {
        roles.set(hex, role as Role);
        keys.push({ role: role as Role, digest });
      }
    }
    return new ApiKeys(keys);
  }

  /** How many distinct keys there are. */
  get size(): number {
    return this.#keys.length;
  }

  /**
   * The role of `token`, or undefined when it is no key. Takes the same time whichever key matches, or
   * none: every key's digest is compared, in constant time.
   */
  roleOf(token: string): Role | undefined {
    const digest = digestOf(token);
    let found: Role | undefined;
    for (const key of this.#keys) {
      if (timingSafeEqual(digest, key.digest)) found = key.role;
    }
    return found;
  }
}

/** How requests are authenticated: by key, or not at all (`--insecure-no-auth`: everyone is operator). */
export type Authentication = { keys: ApiKeys } | { insecure: true };

/** The token a request presents: `Authorization: Bearer …`, or HTTP Basic's password where allowed. */
function presentedToken(req: Request, allowBasic: boolean): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (!scheme || !value) return undefined;
  if (scheme.toLowerCase() === "bearer") return value;
  if (allowBasic && scheme.toLowerCase() === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    // Any user name; the token is the password.
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

/** The role of the request's key; undefined when it presents none or an unknown one. */
export function roleOfRequest(auth: Authentication, req: Request, allowBasic: boolean): Role | undefined {
  if ("insecure" in auth) return "operator";
  const token = presentedToken(req, allowBasic);
  return token === undefined ? undefined : auth.keys.roleOf(token);
}

const BEARER_CHALLENGE = 'Bearer realm="lakeferry"';
const BASIC_CHALLENGE = 'Basic realm="lakeferry", charset="UTF-8"';

/**
 * `Connection: close` for a refused request that carries a body: the body is never read, and closing the
 * connection spares the server from draining it to reuse the connection (Node otherwise reads the rest of
 * an unread body and throws it away, up to the whole 8 MB an unauthenticated caller chose to send).
 */
function closeIfBody(req: Request): Record<string, string> {
  const length = Number(req.headers["content-length"] ?? 0);
  const hasBody = length > 0 || req.headers["transfer-encoding"] !== undefined;
  return hasBody ? { Connection: "close" } : {};
}

/**
 * Lets a request through when its key has at least role `needed` (and notes the role in
 * `res.locals.role`); otherwise 401 (no key, or an unknown one) with a `WWW-Authenticate` challenge, or
 * 403 (a known key with too small a role). `allowBasic` also accepts HTTP Basic with the token as the
 * password, and challenges for it, so that a browser asks for it (Bull Board). Mount it before anything
 * that reads the body: a refused request's body is not read.
 */
export function requireRole(
  auth: Authentication,
  needed: Role,
  options: { allowBasic?: boolean } = {},
): RequestHandler {
  const allowBasic = options.allowBasic ?? false;
  return (req, res, next) => {
    const role = roleOfRequest(auth, req, allowBasic);
    if (role === undefined) {
      const given = req.headers.authorization !== undefined;
      throw new ProblemError(
        "unauthorized",
        given
          ? "the API key is not known (send Authorization: Bearer <token> with a key from LAKEFERRY_API_KEYS)"
          : "this needs an API key: send Authorization: Bearer <token>",
        {
          headers: {
            "WWW-Authenticate": allowBasic ? [BASIC_CHALLENGE, BEARER_CHALLENGE] : BEARER_CHALLENGE,
            ...closeIfBody(req),
          },
        },
      );
    }
    if (!roleAllows(role, needed)) {
      throw new ProblemError(
        "forbidden",
        `this needs role ${needed} or above; the API key has role ${role}`,
        {
          headers: closeIfBody(req),
        },
      );
    }
    res.locals.role = role;
    next();
  };
}
