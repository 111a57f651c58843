/** A small SVG line chart of training losses (one panel per loss group, smoothed lines). */

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Exponential moving average, to make noisy GAN losses readable (the raw values stay in the log). */
export const smooth = (pts: ReadonlyArray<readonly [number, number]>, alpha = 0.1): Array<[number, number]> => {
  let m: number | null = null;
  return pts.map(([x, y]) => {
    m = m === null ? y : m + alpha * (y - m);
    return [x, m];
  });
};

const niceTicks = (lo: number, hi: number, n = 5): number[] => {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toPrecision(6));
  return out;
};

/** Panels side by side, one per group of series (e.g. `d/*` and `g/*`). */
export const lossPlotSvg = (groups: ReadonlyArray<{ title: string; series: readonly Series[] }>, title: string): string => {
  const pw = 460;
  const ph = 300;
  const m = { l: 56, r: 16, t: 40, b: 64 };
  const W = groups.length * pw;
  const H = ph + 30;
  const panels = groups.map((g, gi) => {
    const all = g.series.flatMap((s) => smooth(s.points));
    const xs = all.map((p) => p[0]);
    const ys = all.map((p) => p[1]).filter(Number.isFinite);
    const x0 = Math.min(...xs, 0);
    const x1 = Math.max(...xs, 1);
    let y0 = Math.min(...ys, 0);
    let y1 = Math.max(...ys, 0);
    if (y1 - y0 < 1e-9) {
      y0 -= 1;
      y1 += 1;
    }
    const X = (x: number): number => gi * pw + m.l + ((x - x0) / (x1 - x0)) * (pw - m.l - m.r);
    const Y = (y: number): number => 30 + m.t + (1 - (y - y0) / (y1 - y0)) * (ph - m.t - m.b);
    const grid = niceTicks(y0, y1)
      .map((v) => `<line x1="${X(x0)}" x2="${X(x1)}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/><text x="${X(x0) - 6}" y="${Y(v) + 4}" text-anchor="end" font-size="11" fill="#555">${v}</text>`)
      .join('');
    const xt = niceTicks(x0, x1)
      .map((v) => `<text x="${X(v)}" y="${Y(y0) + 16}" text-anchor="middle" font-size="11" fill="#555">${v}</text>`)
      .join('');
    const lines = g.series
      .map((s, si) => {
        const pts = smooth(s.points).filter((p) => Number.isFinite(p[1]));
        if (pts.length === 0) return '';
        const d = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
        return `<path d="${d}" fill="none" stroke="${PALETTE[si % PALETTE.length]}" stroke-width="1.6"/>`;
      })
      .join('');
    const legend = g.series
      .map((s, si) => {
        const lx = gi * pw + m.l + (si % 3) * 130;
        const ly = 30 + ph - m.b + 34 + Math.floor(si / 3) * 15;
        return `<rect x="${lx}" y="${ly - 8}" width="12" height="3" fill="${PALETTE[si % PALETTE.length]}"/><text x="${lx + 16}" y="${ly - 3}" font-size="11" fill="#333">${esc(s.name)}</text>`;
      })
      .join('');
    return `<g><text x="${gi * pw + m.l}" y="${30 + m.t - 10}" font-size="13" font-weight="bold" fill="#222">${esc(g.title)}</text>${grid}<line x1="${X(x0)}" x2="${X(x1)}" y1="${Y(y0)}" y2="${Y(y0)}" stroke="#999"/>${xt}${lines}${legend}</g>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="22" font-size="15" fill="#111">${esc(title)}</text>
${panels.join('\n')}
</svg>`;
};
