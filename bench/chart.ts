/**
 * A small, dependency-free line chart in SVG: the bench's "up time by cluster size" curve.
 * Pure and deterministic (same input, same bytes), so the committed picture only changes when the
 * figures do.
 */

/** One line of the chart: a name for the legend and its points (x ascending). */
export interface Series {
  name: string;
  /** CSS colour of the line and its points. */
  colour: string;
  points: { x: number; y: number; min?: number; max?: number }[];
}

/** Options of {@link renderLineChartSvg}. */
export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** @default 640 */
  width?: number;
  /** @default 400 */
  height?: number;
}

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const num = (v: number): string => (Math.round(v * 10) / 10).toString();

/** A "nice" upper bound and step for an axis that must reach `max`. */
export function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.2 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * Renders series as an SVG line chart with axes, grid, min–max whiskers and a legend. The x axis is
 * linear over the points' x values (node counts); the y axis starts at 0.
 */
export function renderLineChartSvg(series: readonly Series[], opts: ChartOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  const m = { left: 60, right: 20, top: 40, bottom: 70 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const ys = series.flatMap((s) => s.points.flatMap((p) => [p.y, p.max ?? p.y]));
  const xMin = xs.length ? xs[0] : 0;
  const xMax = xs.length > 1 ? xs[xs.length - 1] : xMin + 1;
  const { top, step } = niceScale(Math.max(0, ...ys));
  const px = (x: number) => m.left + ((x - xMin) / (xMax - xMin)) * pw;
  const py = (y: number) => m.top + ph - (y / top) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`);
  for (let v = 0; v <= top + 1e-9; v += step) {
    const y = num(py(v));
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#dddddd"/>`);
    out.push(
      `<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${num(v)}</text>`,
    );
  }
  for (const x of xs) {
    const X = num(px(x));
    out.push(`<line x1="${X}" y1="${m.top + ph}" x2="${X}" y2="${m.top + ph + 5}" stroke="#000000"/>`);
    out.push(`<text x="${X}" y="${m.top + ph + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#000000"/>`,
    `<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#000000"/>`,
    `<text x="${m.left + pw / 2}" y="${m.top + ph + 38}" text-anchor="middle">${esc(opts.xLabel)}</text>`,
    `<text x="16" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">${esc(opts.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    if (pts.length > 1) {
      const d = pts.map((p, j) => `${j === 0 ? "M" : "L"}${num(px(p.x))},${num(py(p.y))}`).join(" ");
      out.push(`<path d="${d}" fill="none" stroke="${esc(s.colour)}" stroke-width="2"/>`);
    }
    for (const p of pts) {
      if (p.min !== undefined && p.max !== undefined && p.max > p.min) {
        out.push(
          `<line x1="${num(px(p.x))}" y1="${num(py(p.min))}" x2="${num(px(p.x))}" y2="${num(py(p.max))}" stroke="${esc(s.colour)}"/>`,
        );
      }
      out.push(`<circle cx="${num(px(p.x))}" cy="${num(py(p.y))}" r="3.5" fill="${esc(s.colour)}"/>`);
    }
    const ly = height - 14;
    const lx = m.left + i * 220;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${esc(s.colour)}" stroke-width="2"/>`,
      `<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
