import type { FileFormat } from "./write-batch.ts";

/**
 * Why Spark cannot read this file, judged from its name alone, or undefined when nothing says it cannot.
 *
 * Spark reads text formats (json, csv, text) through Hadoop's codecs, chosen by the file's extension:
 * `.gz` and `.bz2` are pure Java and read anywhere (a `.gz` file is not splittable: one task reads it
 * whole, streaming). Hadoop's `ZStandardCodec` (`.zst`) needs libhadoop built with zstd, which the Spark
 * distributions (pyspark's jars, Spark 3.5 and 4.x) do not ship: the read fails with "native zStandard
 * library not available" after the batch was planned. Refusing such a file by name tells the operator why
 * at once instead of failing its batch. Parquet, ORC and Avro compress inside the file (snappy, zstd,
 * gzip, …) with Java or bundled native codecs, whatever the file is called.
 */
export function unreadableCompression(format: FileFormat, path: string): string | undefined {
  if (format !== "json" && format !== "csv" && format !== "text") return undefined;
  if (!/\.zst$/i.test(path)) return undefined;
  return (
    `Spark cannot read zstd-compressed ${format} (.zst): Hadoop's ZStandardCodec needs libhadoop built with ` +
    "zstd, which the Spark server does not have. Recompress the file as .gz or .bz2, or write it as Parquet"
  );
}
