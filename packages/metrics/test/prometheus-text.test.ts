import { describe, expect, it } from "vitest";
import { parsePrometheusText } from "./prometheus-text.ts";

// The parser guards the other tests: it must refuse what Prometheus would refuse.
describe("the test's Prometheus text parser", () => {
  it("reads families, escaped labels and histograms", () => {
    const families = parsePrometheusText(
      [
        "# HELP a_total x\\\\y\\nz",
        "# TYPE a_total counter",
        'a_total{l="q\\"\\\\\\n"} 1',
        "",
        "# HELP h_seconds h",
        "# TYPE h_seconds histogram",
        'h_seconds_bucket{le="1"} 0',
        'h_seconds_bucket{le="+Inf"} 1',
        "h_seconds_sum 1.5",
        "h_seconds_count 1",
        "",
      ].join("\n"),
    );
    expect(families.get("a_total")?.samples).toEqual([
      { name: "a_total", labels: { l: 'q"\\\n' }, value: 1 },
    ]);
    expect(families.get("h_seconds")?.type).toBe("histogram");
  });

  it.each([
    ["a sample without its family", "x 1\n"],
    ["a bad label", '# HELP x h\n# TYPE x gauge\nx{1a="v"} 1\n'],
    ["an unquoted label value", "# HELP x h\n# TYPE x gauge\nx{a=v} 1\n"],
    ["a bad value", "# HELP x h\n# TYPE x gauge\nx one\n"],
    ["another family's sample", "# HELP x h\n# TYPE x gauge\ny 1\n"],
    ["a histogram without +Inf", '# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n'],
    ["a missing final newline", "# HELP x h\n# TYPE x gauge\nx 1"],
  ])("refuses %s", (_, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});
