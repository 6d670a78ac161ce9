// Inline-SVG line chart of overall quality per refinement iteration (no chart library).

const SVG_NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Replace the contents of `container` with a chart of `points` ([{x: iteration, y: quality}]).
 * The y axis spans the data (padded), kept inside [0, 1] when the values are.
 */
export function renderQualityChart(container, points, { width = 420, height = 180 } = {}) {
  container.replaceChildren();
  const data = points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
  const summary = data.length
    ? `Overall quality by refinement iteration: ${data.map((p) => `iteration ${p.x}: ${p.y.toFixed(3)}`).join(", ")}.`
    : "No refinement iterations yet.";
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary, class: "quality-chart",
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(el("title", {}, "Overall quality over iterations"), el("desc", {}, summary));
  const m = { left: 44, right: 14, top: 12, bottom: 30 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  if (!data.length) {
    svg.append(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, "No iterations yet"));
    container.append(svg);
    return svg;
  }
  let lo = Math.min(...data.map((p) => p.y));
  let hi = Math.max(...data.map((p) => p.y));
  const pad = Math.max((hi - lo) * 0.15, 0.02);
  lo -= pad; hi += pad;
  if (lo >= -pad && lo < 0) lo = 0;
  if (hi <= 1 + pad && hi > 1) hi = 1;
  const xMin = Math.min(...data.map((p) => p.x));
  const xMax = Math.max(...data.map((p) => p.x));
  const sx = (x) => m.left + (xMax === xMin ? w / 2 : ((x - xMin) / (xMax - xMin)) * w);
  const sy = (y) => m.top + h - ((y - lo) / (hi - lo)) * h;

  const axes = el("g", { class: "chart-axes" });
  axes.append(el("line", { x1: m.left, y1: m.top + h, x2: m.left + w, y2: m.top + h }));
  axes.append(el("line", { x1: m.left, y1: m.top, x2: m.left, y2: m.top + h }));
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    const y = sy(v);
    axes.append(el("line", { x1: m.left, y1: y, x2: m.left + w, y2: y, class: "chart-grid" }));
    axes.append(el("text", { x: m.left - 6, y: y + 4, "text-anchor": "end" }, v.toFixed(2)));
  }
  for (const p of data) {
    axes.append(el("text", { x: sx(p.x), y: m.top + h + 16, "text-anchor": "middle" }, String(p.x)));
  }
  axes.append(el("text", { x: m.left + w / 2, y: height - 2, "text-anchor": "middle", class: "chart-label" }, "iteration"));
  svg.append(axes);
  svg.append(el("polyline", { class: "chart-line", points: data.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ") }));
  for (const p of data) {
    const dot = el("circle", { cx: sx(p.x), cy: sy(p.y), r: 4, class: "chart-dot" });
    dot.append(el("title", {}, `Iteration ${p.x}: ${p.y.toFixed(3)}`));
    svg.append(dot);
  }
  container.append(svg);
  return svg;
}
