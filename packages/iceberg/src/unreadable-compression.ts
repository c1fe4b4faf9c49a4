import type { SparkConnectClient } from "@lakeferry/spark-connect";
import type { FileFormat } from "./write-batch.ts";

/**
 * The Hadoop codec lakeferry ships for `.zst` text (spark-ext/zstd-codec): it reads zstd through zstd-jni,
 * which every Spark distribution carries, instead of libhadoop's native zstd, which none does.
 */
export const ZSTD_CODEC_CLASS = "dev.lakeferry.hadoop.ZstdJniCodec";

/** The Spark config listing the Hadoop codecs a server reads files with (Hadoop's `io.compression.codecs`). */
export const COMPRESSION_CODECS_CONFIG = "spark.hadoop.io.compression.codecs";

/** Which compressions the Spark server behind a session can read, beyond what every Spark reads. */
export interface SparkCodecs {
  /**
   * Whether the server reads `.zst` JSON, CSV and text: its `spark.hadoop.io.compression.codecs` names
   * {@link ZSTD_CODEC_CLASS}. Throws what the Spark client throws when the server cannot be asked.
   */
  readsZstd(): Promise<boolean>;
}

/** No codec beyond Hadoop's pure-Java ones: a Spark server as its distribution ships it. */
export const DISTRIBUTION_CODECS: SparkCodecs = { readsZstd: async () => false };

/**
 * The codecs of a Spark Connect session's server, asked once per session through the Config RPC (a server
 * restarted with another configuration comes back as a new session, and is asked again).
 */
export class SparkSessionCodecs implements SparkCodecs {
  readonly #spark: SparkConnectClient;
  #known: { sessionId: string; readsZstd: Promise<boolean> } | undefined;

  constructor(spark: SparkConnectClient) {
    this.#spark = spark;
  }

  readsZstd(): Promise<boolean> {
    const sessionId = this.#spark.sessionId;
    if (this.#known?.sessionId === sessionId) return this.#known.readsZstd;
    const entry = {
      sessionId,
      readsZstd: this.#spark
        .getConfig([COMPRESSION_CODECS_CONFIG])
        .then((config) => listsZstdCodec(config[COMPRESSION_CODECS_CONFIG])),
    };
    this.#known = entry;
    // A failed ask is asked again next time.
    entry.readsZstd.catch(() => {
      if (this.#known === entry) this.#known = undefined;
    });
    return entry.readsZstd;
  }
}

/** Whether a Hadoop codec list (comma-separated class names) names lakeferry's zstd codec. */
export function listsZstdCodec(codecs: string | undefined): boolean {
  return (codecs ?? "").split(",").some((name) => name.trim() === ZSTD_CODEC_CLASS);
}

/** Whether Spark reads this file through a zstd codec: JSON, CSV or text named `.zst`. */
export function needsZstdCodec(format: FileFormat, path: string): boolean {
  return (format === "json" || format === "csv" || format === "text") && /\.zst$/i.test(path);
}

/**
 * Why Spark cannot read this file, judged from its name and the server's codecs, or undefined when nothing
 * says it cannot.
 *
 * Spark reads text formats (json, csv, text) through Hadoop's codecs, chosen by the file's extension:
 * `.gz` and `.bz2` are pure Java and read anywhere (a `.gz` file is not splittable: one task reads it
 * whole, streaming). Hadoop's `ZStandardCodec` (`.zst`) needs libhadoop built with zstd, which the Spark
 * distributions (pyspark's jars, Spark 3.5 and 4.x) do not ship: the read fails with "native zStandard
 * library not available" after the batch was planned. A server with lakeferry's codec
 * ({@link ZSTD_CODEC_CLASS}, `sparkReadsZstd`) reads `.zst`; on any other, refusing such a file by name
 * tells the operator why at once instead of failing its batch. Parquet, ORC and Avro compress inside the
 * file (snappy, zstd, gzip, …) with Java or bundled native codecs, whatever the file is called.
 */
export function unreadableCompression(
  format: FileFormat,
  path: string,
  sparkReadsZstd: boolean,
): string | undefined {
  if (!needsZstdCodec(format, path) || sparkReadsZstd) return undefined;
  return (
    `Spark cannot read zstd-compressed ${format} (.zst): Hadoop's ZStandardCodec needs libhadoop built with ` +
    `zstd, which the Spark server does not have, and ${COMPRESSION_CODECS_CONFIG} does not list ` +
    `${ZSTD_CODEC_CLASS}. Install lakeferry's zstd codec jar on the Spark server (README, "Compressed ` +
    `files"), or recompress the file as .gz or .bz2, or write it as Parquet`
  );
}
