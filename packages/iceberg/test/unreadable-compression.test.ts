import { describe, expect, it } from "vitest";
import { listsZstdCodec, unreadableCompression, ZSTD_CODEC_CLASS } from "../src/index.ts";

describe("unreadableCompression", () => {
  it("refuses .zst JSON, CSV and text only when Spark does not read zstd", () => {
    for (const format of ["json", "csv", "text"] as const) {
      expect(unreadableCompression(format, `s3://b/x.${format}.ZST`, false)).toMatch(
        new RegExp(`^Spark cannot read zstd-compressed ${format} \\(\\.zst\\).*README, "Compressed files"`),
      );
      expect(unreadableCompression(format, `s3://b/x.${format}.zst`, true)).toBeUndefined();
    }
    // Compressed inside the file, whatever it is called; and .zst only as the last extension.
    expect(unreadableCompression("parquet", "s3://b/x.parquet.zst", false)).toBeUndefined();
    expect(unreadableCompression("json", "s3://b/x.zst.json", false)).toBeUndefined();
  });

  it("takes a codec list to read zstd when it names lakeferry's codec", () => {
    expect(listsZstdCodec(undefined)).toBe(false);
    expect(listsZstdCodec("org.apache.hadoop.io.compress.ZStandardCodec")).toBe(false);
    expect(listsZstdCodec(`org.apache.hadoop.io.compress.GzipCodec, ${ZSTD_CODEC_CLASS} `)).toBe(true);
    expect(listsZstdCodec(`${ZSTD_CODEC_CLASS}Old`)).toBe(false);
  });
});
