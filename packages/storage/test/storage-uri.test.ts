import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import {
  compareKeys,
  formatStorageUri,
  parseStorageUri,
  resolveWithinSource,
  toSparkUri,
  type StorageLocation,
} from "../src/index.ts";

describe("parseStorageUri / formatStorageUri", () => {
  const cases: [string, StorageLocation, string][] = [
    [
      "s3://landing-bucket/in/2024/a.csv",
      { scheme: "s3", container: "landing-bucket", prefix: "in/2024/a.csv" },
      "s3://landing-bucket/in/2024/a.csv",
    ],
    [
      "s3a://landing-bucket/in/",
      { scheme: "s3", container: "landing-bucket", prefix: "in/" },
      "s3://landing-bucket/in/",
    ],
    ["S3N://b.with.dots", { scheme: "s3", container: "b.with.dots", prefix: "" }, "s3://b.with.dots/"],
    [
      "gs://my_bucket/x y/ü.json",
      { scheme: "gs", container: "my_bucket", prefix: "x y/ü.json" },
      "gs://my_bucket/x y/ü.json",
    ],
    [
      "az://acct1/raw/events/",
      { scheme: "az", container: "acct1/raw", prefix: "events/" },
      "az://acct1/raw/events/",
    ],
    ["az://acct1/raw", { scheme: "az", container: "acct1/raw", prefix: "" }, "az://acct1/raw/"],
    [
      "abfss://raw@acct1.dfs.core.windows.net/events/e.parquet",
      { scheme: "az", container: "acct1/raw", prefix: "events/e.parquet" },
      "az://acct1/raw/events/e.parquet",
    ],
    [
      "wasbs://raw@acct1.blob.core.windows.net/a",
      { scheme: "az", container: "acct1/raw", prefix: "a" },
      "az://acct1/raw/a",
    ],
    [
      "file:///data/landing/a.csv",
      { scheme: "file", container: "", prefix: "/data/landing/a.csv" },
      "file:///data/landing/a.csv",
    ],
    [
      "file:/data/landing/",
      { scheme: "file", container: "", prefix: "/data/landing/" },
      "file:///data/landing/",
    ],
    ["file://localhost/data/x", { scheme: "file", container: "", prefix: "/data/x" }, "file:///data/x"],
  ];
  it.each(cases)("%s", (uri, location, canonical) => {
    expect(parseStorageUri(uri)).toEqual(location);
    expect(formatStorageUri(location)).toBe(canonical);
    // The canonical form parses back to the same location.
    expect(parseStorageUri(canonical)).toEqual(location);
  });

  const refused: [string, RegExp][] = [
    ["", /empty URI/],
    ["/data/landing/a.csv", /no scheme/],
    ["landing/a.csv", /no scheme/],
    ["http://example.com/a", /unsupported scheme "http"/],
    ["s3:/bucket/a", /must be followed by "\/\/"/],
    ["s3:///a", /no bucket/],
    ["s3://Bad_Bucket/a", /not an S3 bucket name/],
    ["s3://bucket//a", /must not start with "\/"/],
    ["s3://bucket/a/../b", /".." path segments/],
    ["gs://bucket/./a", /"\." path segments/],
    ["az://acct1", /no container/],
    ["az://Acct/raw/x", /not an Azure storage account name/],
    ["az://acct1/Raw/x", /not an Azure container name/],
    ["abfss://acct1.dfs.core.windows.net/x", /container@account/],
    ["abfss://raw@acct1.blob.core.windows.net/x", /container@account\.dfs/],
    ["file://server/share/a", /name no host/],
    ["file:relative/a", /absolute path/],
    ["file:///data/../etc/passwd", /".." path segments/],
    ["s3://bucket/a\nb", /control characters/],
  ];
  it.each(refused)("refuses %j", (uri, message) => {
    let error: unknown;
    try {
      parseStorageUri(uri);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({ field: "uri", retryable: false });
    expect((error as Error).message).toMatch(message);
    // Every refusal says what a valid URI looks like.
    expect((error as Error).message).toMatch(/expected s3:\/\/bucket\/key/);
  });
});

describe("resolveWithinSource", () => {
  it.each([
    ["s3://bkt/landing/", "orders/1.csv", "s3://bkt/landing/orders/1.csv"],
    ["s3://bkt/landing", "orders/./x/../1.csv", "s3://bkt/landing/orders/1.csv"],
    ["s3://bkt/landing/", "s3a://bkt/landing/orders/1.csv", "s3://bkt/landing/orders/1.csv"],
    ["az://acct1/raw/in/", "abfss://raw@acct1.dfs.core.windows.net/in/e.json", "az://acct1/raw/in/e.json"],
    ["gs://bkt/", "a.json", "gs://bkt/a.json"],
    ["file:///data/in/", "/data/in/sub/a.csv", "file:///data/in/sub/a.csv"],
    ["file:///data/in/", "sub/a.csv", "file:///data/in/sub/a.csv"],
  ])("%s + %s", (source, path, expected) => {
    expect(resolveWithinSource(source, path)).toBe(expected);
  });

  it.each([
    ["s3://bkt/landing/", "../secret.csv", /climbs out of the source/],
    ["s3://bkt/landing/", "a/../../x", /climbs out/],
    ["s3://bkt/landing/", "s3://other/landing/a.csv", /outside the source s3:\/\/bkt\/landing\//],
    ["s3://bkt/landing/", "gs://bkt/landing/a.csv", /outside the source/],
    ["s3://bkt/landing", "s3://bkt/landing-2/a.csv", /outside the source/],
    ["s3://bkt/landing/", "/landing/a.csv", /starts with "\/"/],
    ["s3://bkt/landing/", "s3://bkt/landing/../x", /path segments/],
    ["s3://bkt/landing/", "sub/", /names a directory/],
    ["s3://bkt/landing/", "", /empty path/],
    ["file:///data/in/", "/data/other/a.csv", /outside the source/],
  ])("%s refuses %j", (source, path, message) => {
    expect(() => resolveWithinSource(source, path)).toThrow(InvalidInputError);
    expect(() => resolveWithinSource(source, path)).toThrow(message);
    try {
      resolveWithinSource(source, path);
    } catch (error) {
      expect(error).toMatchObject({ field: "path" });
    }
  });
});

describe("toSparkUri", () => {
  it("rewrites to the Hadoop filesystems by default", () => {
    expect(toSparkUri("s3://bkt/in/a.csv")).toBe("s3a://bkt/in/a.csv");
    expect(toSparkUri("s3a://bkt/in/a.csv")).toBe("s3a://bkt/in/a.csv");
    expect(toSparkUri("az://acct1/raw/e/x.json")).toBe("abfss://raw@acct1.dfs.core.windows.net/e/x.json");
    expect(toSparkUri("wasbs://raw@acct1.blob.core.windows.net/x")).toBe(
      "abfss://raw@acct1.dfs.core.windows.net/x",
    );
    expect(toSparkUri("gs://bkt/x.json")).toBe("gs://bkt/x.json");
    expect(toSparkUri("file:///data/x.csv")).toBe("file:///data/x.csv");
  });

  it("applies the first matching rule: a scheme or a URI prefix", () => {
    expect(toSparkUri("s3://bkt/x", [{ from: "s3", to: "s3" }])).toBe("s3://bkt/x");
    expect(
      toSparkUri("s3://bkt/in/x", [
        { from: "s3://other/", to: "s3a://nope/" },
        { from: "s3://bkt/in/", to: "file:///mnt/b/in/" },
      ]),
    ).toBe("file:///mnt/b/in/x");
    expect(toSparkUri("az://acct1/raw/x", [{ from: "az", to: "wasbs" }])).toBe("wasbs://acct1/raw/x");
    expect(toSparkUri("gs://bkt/x", [{ from: "s3", to: "s3n" }])).toBe("gs://bkt/x");
  });

  it("refuses a malformed URI", () => {
    expect(() => toSparkUri("s3:/b")).toThrow(InvalidInputError);
  });
});

describe("compareKeys", () => {
  it("orders by UTF-8 bytes, as the services list", () => {
    // U+FF5E (3 bytes, EF BD 9E) sorts before U+1F600 (4 bytes, F0 …) in UTF-8; UTF-16 says otherwise.
    const keys = ["a/😀", "a/～", "a/b", "a-b", "a/", "a", "A", "a/é"];
    expect([...keys].sort(compareKeys)).toEqual(["A", "a", "a-b", "a/", "a/b", "a/é", "a/～", "a/😀"]);
    const bytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...keys].sort(compareKeys)).toEqual(bytes);
    expect("a/😀" < "a/～").toBe(true);
    expect(compareKeys("a/😀", "a/～")).toBeGreaterThan(0);
    expect(compareKeys("same", "same")).toBe(0);
  });
});
