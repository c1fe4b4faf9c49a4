import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import {
  compileGlob,
  createObjectStore,
  isHiddenKey,
  listPrefixes,
  partitionPrefixes,
  type ListPage,
} from "../src/index.ts";

describe("compileGlob", () => {
  const cases: [string, string[], string[]][] = [
    ["*.csv", ["a.csv", ".csv", "a.b.csv"], ["dir/a.csv", "a.csv.gz", "a.CSV"]],
    ["**/*.csv", ["a.csv", "x/a.csv", "x/y/z/a.csv", ".x/_y/.a.csv"], ["a.json", "x/a.csv/b"]],
    // picomatch: "dir/**" also matches an object named "dir" itself (our own glob did not).
    ["orders/**", ["orders/a", "orders/x/y.json", "orders"], ["ordersx/a", "other/orders/a"]],
    ["a/**/b.json", ["a/b.json", "a/x/b.json", "a/x/y/b.json"], ["a/xb.json", "b.json"]],
    ["part-?.json", ["part-1.json", "part-a.json"], ["part-10.json", "part-/.json"]],
    ["*.{csv,json}", ["a.csv", "a.json"], ["a.parquet", "a.{csv,json}"]],
    ["{in,out}/{2024/**,*.tmp}", ["in/2024/a", "out/x.tmp", "in/2024/m/d/e"], ["in/2023/a", "out/x/y.tmp"]],
    ["day=[0-3][0-9]/*", ["day=01/a", "day=31/b"], ["day=41/a", "day=1/a"]],
    ["[!_.]*", ["data.csv", "x"], ["_SUCCESS", ".hidden"]],
    ["[^_]*", ["data.csv"], ["_SUCCESS"]],
    ["[[:digit:]]*.json", ["1.json"], ["a.json"]],
    ["@(a|b).json", ["a.json", "b.json"], ["c.json", "ab.json"]],
    ["!x", ["!x"], ["y"]],
    // picomatch: a class that names "/" matches it (our own glob never let a class match "/").
    ["a[/]b", ["a/b"], ["ab"]],
    ["a\\*b", ["a*b"], ["axb"]],
    // picomatch: parentheses group (extglobs), so literal ones are escaped; our own glob took them as is.
    ["\\(x\\)+[]]$.csv", ["(x)+]$.csv"], ["x.csv", "(x)+x$.csv"]],
    ["[a\\-z]", ["a", "-", "z"], ["b"]],
    // picomatch: "?" is one UTF-16 unit, so a character outside the BMP (an emoji) takes "??".
    ["é?.json", ["éü.json"], ["é.json", "é😀.json"]],
    ["é??.json", ["é😀.json"], ["é.json"]],
  ];
  it.each(cases)("%s", (pattern, matching, notMatching) => {
    const matches = compileGlob(pattern);
    for (const key of matching) expect(matches(key), `${pattern} should match ${key}`).toBe(true);
    for (const key of notMatching) expect(matches(key), `${pattern} should not match ${key}`).toBe(false);
  });

  it("with dot: false, wildcards pass over names starting with a dot but not an explicit one", () => {
    const matches = compileGlob("**/*.json", { dot: false });
    expect(matches("a/b.json")).toBe(true);
    expect(matches("_a/_b.json")).toBe(true);
    expect(matches(".a/b.json")).toBe(false);
    expect(matches("a/.b.json")).toBe(false);
    expect(compileGlob("in/.*.json", { dot: false })("in/.b.json")).toBe(true);
  });

  it.each([
    ["", /empty pattern/],
    ["[abc", /unclosed "\[" \(write \\\[ for a literal one\) in glob "\[abc"/],
    ["{a,b", /unclosed "\{"/],
    ["x(a", /unclosed "\("/],
    ["a)", /a "\)" that closes nothing/],
    ["a\\", /trailing backslash/],
    ["[z-a]", /invalid character class/],
  ])("refuses %j", (pattern, message) => {
    expect(() => compileGlob(pattern)).toThrow(InvalidInputError);
    expect(() => compileGlob(pattern)).toThrow(message);
  });
});

describe("isHiddenKey", () => {
  it.each([
    ["_SUCCESS", true],
    [".part-0.crc", true],
    ["in/_under.json", true],
    ["_temporary/0/part-0.json", true],
    ["a/.staging/b.json", true],
    ["a/b_c.json", false],
    ["day=01/x.json", false],
    ["a.b/c.json", false],
  ])("%s: %s", (key, hidden) => {
    expect(isHiddenKey(key)).toBe(hidden);
  });
});

describe("partitionPrefixes", () => {
  it("lists the days of the lookback window, newest last, across a month end (UTC)", () => {
    const prefixes = partitionPrefixes(
      { template: "year={yyyy}/month={MM}/day={dd}/", lookback: { days: 3 } },
      new Date("2024-03-02T01:00:00Z"),
    );
    expect(prefixes).toEqual([
      "year=2024/month=02/day=28/",
      "year=2024/month=02/day=29/",
      "year=2024/month=03/day=01/",
      "year=2024/month=03/day=02/",
    ]);
  });

  it("steps by the finest field: hours", () => {
    const prefixes = partitionPrefixes(
      { template: "{yyyy}/{MM}/{dd}/{HH}/", lookback: { hours: 3 } },
      new Date("2024-12-31T23:15:00Z"),
    );
    expect(prefixes).toEqual(["2024/12/31/20/", "2024/12/31/21/", "2024/12/31/22/", "2024/12/31/23/"]);
    const crossing = partitionPrefixes(
      { template: "{yyyy}/{MM}/{dd}/{HH}/", lookback: { days: 1, hours: 1 } },
      new Date("2025-01-01T00:30:00Z"),
    );
    expect(crossing).toHaveLength(26);
    expect(crossing[0]).toBe("2024/12/30/23/");
    expect(crossing.at(-1)).toBe("2025/01/01/00/");
  });

  it("steps by months and years, and a zero lookback is the current partition", () => {
    expect(
      partitionPrefixes(
        { template: "m={yyyy}-{MM}/", lookback: { days: 40 } },
        new Date("2024-03-05T00:00:00Z"),
      ),
    ).toEqual(["m=2024-01/", "m=2024-02/", "m=2024-03/"]);
    expect(
      partitionPrefixes({ template: "{yyyy}/", lookback: { days: 400 } }, new Date("2024-01-10T00:00:00Z")),
    ).toEqual(["2022/", "2023/", "2024/"]);
    expect(
      partitionPrefixes({ template: "{yyyy}{MM}{dd}", lookback: {} }, new Date("2024-01-10T05:00:00Z")),
    ).toEqual(["20240110"]);
  });

  it("refuses unknown fields, templates without fields and bad lookbacks", () => {
    expect(() => partitionPrefixes({ template: "dt={date}/", lookback: { days: 1 } }, new Date())).toThrow(
      /unknown field "\{date\}"/,
    );
    expect(() => partitionPrefixes({ template: "static/", lookback: { days: 1 } }, new Date())).toThrow(
      /no date field/,
    );
    expect(() => partitionPrefixes({ template: "{yyyy}/", lookback: { days: -1 } }, new Date())).toThrow(
      /lookback.days must be a number >= 0/,
    );
    expect(() => partitionPrefixes({ template: "{HH}/", lookback: { days: 1e7 } }, new Date())).toThrow(
      InvalidInputError,
    );
  });
});

describe("listPrefixes", () => {
  async function layout(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "lakeferry-prefixes-"));
    for (const part of ["a", "b", "c", "d"]) {
      await mkdir(join(dir, part), { recursive: true });
      for (let i = 0; i < 5; i++) await writeFile(join(dir, part, `f${i}.json`), part);
    }
    return dir;
  }

  it("lists each prefix once, in parallel, and a prefix inside another only with it", async () => {
    const dir = await layout();
    const store = createObjectStore(`file://${dir}/`);
    const keys: string[] = [];
    const prefixes = [`${dir}/a/`, `${dir}/b/`, `${dir}/b/f1`, `${dir}/c/`, `${dir}/a/`];
    for await (const page of listPrefixes(store, prefixes, { concurrency: 2, pageSize: 2 })) {
      keys.push(...page.objects.map((o) => o.key));
    }
    expect(keys.sort()).toEqual(
      ["a", "b", "c"].flatMap((part) => Array.from({ length: 5 }, (_, i) => `${dir}/${part}/f${i}.json`)),
    );
    expect(new Set(keys).size).toBe(15);
  });

  it("stops every listing when the consumer stops early", async () => {
    const dir = await layout();
    const store = createObjectStore(`file://${dir}/`);
    let pages = 0;
    for await (const page of listPrefixes(
      store,
      ["a", "b", "c", "d"].map((p) => `${dir}/${p}/`),
      {
        concurrency: 4,
        pageSize: 1,
      },
    ) as AsyncIterable<ListPage>) {
      expect(page.objects).toHaveLength(1);
      if (++pages === 3) break;
    }
    const callsAfterStop = store.listCalls;
    // At most one page ahead per running listing was fetched, not the 20 pages there are.
    expect(callsAfterStop).toBeLessThanOrEqual(3 + 4);
  });

  it("passes the first failure on", async () => {
    const store = createObjectStore(`file://${join(tmpdir(), "lakeferry-no-such-dir")}/`);
    const listing = (async () => {
      for await (const page of listPrefixes(store, ["/x/", "/y/"])) void page;
    })();
    await expect(listing).rejects.toMatchObject({ code: "STORAGE_NOT_FOUND" });
  });
});
