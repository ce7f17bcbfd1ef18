import { strict as assert } from "assert";
import { niceScale, renderLineChartSvg } from "../../bench/chart";

describe("bench chart (bench/up-curve.svg)", () => {
  const series = [
    {
      name: "pulumi up",
      colour: "#1f77b4",
      points: [
        { x: 2, y: 8.1, min: 7.9, max: 8.4 },
        { x: 3, y: 10.2, min: 10, max: 11 },
        { x: 5, y: 15.5 },
      ],
    },
    {
      name: "baseline <sh>",
      colour: "#d62728",
      points: [
        { x: 2, y: 5 },
        { x: 5, y: 9.5 },
      ],
    },
  ];
  const opts = { title: "Up time", xLabel: "nodes", yLabel: "seconds" };

  it("is deterministic and well-formed", () => {
    const a = renderLineChartSvg(series, opts);
    assert.equal(a, renderLineChartSvg(series, opts));
    assert.match(a, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(a.trimEnd().endsWith("</svg>"));
    // One path per series with more than one point, one circle per point, one whisker for min < max.
    assert.equal(a.match(/<path /g)?.length, 2);
    assert.equal(a.match(/<circle /g)?.length, 5);
    assert.ok(a.includes("baseline &lt;sh&gt;"), "legend text is escaped");
  });

  it("puts every point inside the plot area and scales the y axis to the largest value", () => {
    const svg = renderLineChartSvg(series, opts);
    for (const m of svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)) {
      const [x, y] = [Number(m[1]), Number(m[2])];
      assert.ok(x >= 60 && x <= 620, `x ${x}`);
      assert.ok(y >= 40 && y <= 330, `y ${y}`);
    }
    assert.ok(svg.includes(">20</text>"), "y axis reaches 20 for a 15.5 s maximum");
  });

  it("niceScale picks round steps", () => {
    assert.deepEqual(niceScale(15.5), { top: 20, step: 5 });
    assert.deepEqual(niceScale(0), { top: 1, step: 0.2 });
    assert.deepEqual(niceScale(97), { top: 100, step: 20 });
  });
});
