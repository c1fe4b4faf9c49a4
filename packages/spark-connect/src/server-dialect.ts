import { LakeferryError } from "@lakeferry/core";

/**
 * What a Spark Connect server understands, learned from its version at session start. The protocol's
 * field numbers never change, but fields and RPCs were added: a 3.5 server ignores what it does not know
 * (so a 4.0-shaped request fails in odd ways) or answers UNIMPLEMENTED.
 */
export interface ServerDialect {
  /** The server's Spark version as it reports it, e.g. `3.5.7`. */
  version: string;
  /** `[major, minor]`. */
  line: readonly [number, number];
  /**
   * SQL parameters travel as `SQL.named_arguments` (4.0+: any expression). A 3.5 server knows only `args`,
   * literals by name.
   */
  namedArguments: boolean;
  /**
   * A SQL command carries its statement as a Relation (`SqlCommand.input`, 4.0+). A 3.5 server knows only
   * the statement string (`SqlCommand.sql`) with its literal `args`.
   */
  commandAsRelation: boolean;
  /**
   * The server has FetchErrorDetails and ReleaseSession (4.0+), and its errors' ErrorInfo carries the error
   * class, SQLSTATE and message parameters. A 3.5 server sends only the exception's class hierarchy; its
   * error class is the bracketed tag that starts every Spark error message.
   */
  structuredErrors: boolean;
}

/** The oldest Spark Connect line lakeferry speaks. */
const OLDEST: readonly [number, number] = [3, 5];

/**
 * The dialect of a server reporting `version`. Throws a non-retryable LakeferryError for a version older
 * than 3.5 or one that is not a version at all.
 */
export function dialectOf(version: string): ServerDialect {
  const match = /^(\d+)\.(\d+)(?:[.-]|$)/.exec(version.trim());
  if (!match) {
    throw new LakeferryError(
      "SPARK_VERSION_UNSUPPORTED",
      `Spark Connect reported an unreadable version "${version}"`,
      {
        retryable: false,
      },
    );
  }
  const line = [Number(match[1]), Number(match[2])] as const;
  if (line[0] < OLDEST[0] || (line[0] === OLDEST[0] && line[1] < OLDEST[1])) {
    throw new LakeferryError(
      "SPARK_VERSION_UNSUPPORTED",
      `Spark Connect ${version} is too old: lakeferry needs Spark 3.5 or later (3.5, 4.0 and 4.1 are tested)`,
      { retryable: false },
    );
  }
  const modern = line[0] >= 4;
  return {
    version: version.trim(),
    line,
    namedArguments: modern,
    commandAsRelation: modern,
    structuredErrors: modern,
  };
}
