/**
 * Escapes text for SVG/XML content and attribute values.
 *
 * @example
 * escapeXml('a < b & "c"'); // 'a &lt; b &amp; &quot;c&quot;'
 */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const FONT = 'font-family="-apple-system, \'Segoe UI\', Helvetica, Arial, sans-serif"';
/**
 * Colour-blind-safe colours (Okabe-Ito).
 *
 * @example
 * const bars = [{ label: 'rules', values: [24, 76] }];
 * stackedBarsSvg({ title: 'Judgements', series: ['wins', 'losses'], colors: [COLORS.green, COLORS.red], bars });
 */
export const COLORS = {
  blue: '#0072B2',
  green: '#009E73',
  orange: '#E69F00',
  red: '#D55E00',
  grey: '#999999',
  ink: '#24292f',
};

const n = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(2)) : 0);

function truncate(text: string, maxChars: number): string {
  const chars = [...text];
  return chars.length <= maxChars ? text : `${chars.slice(0, maxChars - 1).join('')}…`;
}

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(title)}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" ${FONT} font-size="16" font-weight="600" fill="${COLORS.ink}">${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= x) return m * step;
  return 10 * step;
}

/**
 * The top of a count axis with 4 ticks, each a whole number (a histogram counts examples: no tick at
 * 1.25 of them): the smallest 4 x step >= `x` with a whole, round step (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5
 * or 8 times a power of ten).
 */
function countAxisMax(x: number): number {
  const rough = Math.max(1, x) / 4;
  for (let p = 10 ** Math.floor(Math.log10(rough)); ; p *= 10) {
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 8, 10]) {
      const step = m * p;
      if (step >= rough && Number.isInteger(step)) return 4 * step;
    }
  }
}

/** A horizontal axis with ticks from 0 to `max` along [x0, x1] at y. */
function axis(x0: number, x1: number, y: number, max: number, unit: string, gridTop: number): string[] {
  const out: string[] = [
    `<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="${COLORS.ink}" stroke-width="1"/>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    const x = n(x0 + ((x1 - x0) * i) / 5);
    out.push(`<line x1="${x}" y1="${gridTop}" x2="${x}" y2="${y}" stroke="#d0d7de" stroke-width="1"/>`);
    out.push(
      `<text x="${x}" y="${y + 16}" text-anchor="middle" ${FONT} font-size="11" fill="${COLORS.ink}">${escapeXml(`${Number(v.toFixed(2))}${unit}`)}</text>`,
    );
  }
  return out;
}

/**
 * Horizontal bars with error bars (e.g. win rates ± 1.96 standard errors).
 *
 * @example
 * const svg = barChartSvg({ title: 'Win rate', unit: '%', bars: [{ label: 'rules', value: 24.4, error: 1.5 }] });
 */
export function barChartSvg(options: {
  title: string;
  unit?: string | undefined;
  bars: { label: string; value: number; error?: number | undefined }[];
  max?: number | undefined;
  note?: string | undefined;
}): string {
  const unit = options.unit ?? '';
  // A standard error is NaN for fewer than two judgements: such a bar has no error bar, and
  // must not turn the axis into NaN for every other bar.
  const bars = options.bars.map((b) => ({
    ...b,
    error: b.error !== undefined && Number.isFinite(b.error) && b.error > 0 ? b.error : 0,
  }));
  const left = 230;
  const width = 760;
  const right = width - 70;
  const rowH = 30;
  const top = 44;
  const bottom = top + rowH * Math.max(1, bars.length);
  const max =
    options.max ??
    niceMax(Math.max(...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0) + b.error), 1) * 1.05);
  const sx = (v: number) => n(left + ((right - left) * Math.max(0, Math.min(v, max))) / max);
  const body = axis(left, right, bottom, max, unit, top);
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const cy = y + rowH / 2;
    body.push(
      `<text x="${left - 8}" y="${cy + 4}" text-anchor="end" ${FONT} font-size="12" fill="${COLORS.ink}">${escapeXml(truncate(b.label, 34))}</text>`,
    );
    if (!Number.isFinite(b.value)) {
      body.push(
        `<text x="${left + 4}" y="${cy + 4}" ${FONT} font-size="12" fill="${COLORS.grey}">n/a</text>`,
      );
      return;
    }
    body.push(
      `<rect x="${left}" y="${y + 6}" width="${n(sx(b.value) - left)}" height="${rowH - 12}" fill="${COLORS.blue}"><title>${escapeXml(`${b.label}: ${b.value.toFixed(2)}${unit}`)}</title></rect>`,
    );
    if (b.error > 0) {
      const lo = sx(b.value - b.error);
      const hi = sx(b.value + b.error);
      body.push(
        `<line x1="${lo}" y1="${cy}" x2="${hi}" y2="${cy}" stroke="${COLORS.ink}" stroke-width="1.5"/>`,
      );
      for (const x of [lo, hi])
        body.push(
          `<line x1="${x}" y1="${cy - 6}" x2="${x}" y2="${cy + 6}" stroke="${COLORS.ink}" stroke-width="1.5"/>`,
        );
    }
    const labelX = sx(b.value + b.error) + 6;
    body.push(
      `<text x="${n(labelX)}" y="${cy + 4}" ${FONT} font-size="11" fill="${COLORS.ink}">${escapeXml(b.value.toFixed(2))}</text>`,
    );
  });
  if (options.note)
    body.push(
      `<text x="${left}" y="${bottom + 34}" ${FONT} font-size="11" fill="#57606a">${escapeXml(options.note)}</text>`,
    );
  return frame(width, bottom + (options.note ? 46 : 30), options.title, body);
}

/**
 * Horizontal 100% stacked bars (e.g. unshifted / marginal / shifted token shares), with a legend.
 *
 * @example
 * stackedBarsSvg({ title: 'Token shift', series: ['a', 'b'], bars: [{ label: 'x', values: [70, 30] }] });
 */
export function stackedBarsSvg(options: {
  title: string;
  series: string[];
  colors?: string[] | undefined;
  bars: { label: string; values: number[] }[];
}): string {
  const colors = options.colors ?? [COLORS.green, COLORS.orange, COLORS.red];
  const left = 230;
  const width = 760;
  const right = width - 40;
  const rowH = 30;
  const top = 64;
  const bottom = top + rowH * Math.max(1, options.bars.length);
  const body = axis(left, right, bottom, 100, '%', top);
  options.series.forEach((s, k) => {
    const x = left + k * 150;
    body.push(`<rect x="${x}" y="36" width="12" height="12" fill="${colors[k % colors.length]}"/>`);
    body.push(
      `<text x="${x + 18}" y="46" ${FONT} font-size="12" fill="${COLORS.ink}">${escapeXml(s)}</text>`,
    );
  });
  options.bars.forEach((b, i) => {
    const y = top + i * rowH;
    body.push(
      `<text x="${left - 8}" y="${y + rowH / 2 + 4}" text-anchor="end" ${FONT} font-size="12" fill="${COLORS.ink}">${escapeXml(truncate(b.label, 34))}</text>`,
    );
    const total = b.values.reduce((s, v) => s + (Number.isFinite(v) ? v : 0), 0);
    if (!(total > 0)) {
      body.push(
        `<text x="${left + 4}" y="${y + rowH / 2 + 4}" ${FONT} font-size="12" fill="${COLORS.grey}">no data</text>`,
      );
      return;
    }
    let x = left;
    b.values.forEach((v, k) => {
      if (!Number.isFinite(v)) return;
      const w = ((right - left) * v) / total;
      body.push(
        `<rect x="${n(x)}" y="${y + 6}" width="${n(w)}" height="${rowH - 12}" fill="${colors[k % colors.length]}"><title>${escapeXml(`${b.label}, ${options.series[k]}: ${v.toFixed(2)}%`)}</title></rect>`,
      );
      if (w > 34)
        body.push(
          `<text x="${n(x + w / 2)}" y="${y + rowH / 2 + 4}" text-anchor="middle" ${FONT} font-size="11" fill="#ffffff">${escapeXml(v.toFixed(1))}</text>`,
        );
      x += w;
    });
  });
  return frame(width, bottom + 30, options.title, body);
}

/**
 * Vertical bars over categories (a histogram).
 *
 * @example
 * histogramSvg({ title: 'Wins per example', xLabel: 'random responses beaten', bins: ['0', '1'], counts: [3, 9] });
 */
export function histogramSvg(options: {
  title: string;
  xLabel: string;
  yLabel?: string | undefined;
  bins: string[];
  counts: number[];
}): string {
  const width = 560;
  const left = 60;
  const right = width - 20;
  const top = 44;
  const bottom = 270;
  const max = countAxisMax(Math.max(...options.counts, 1));
  const body: string[] = [
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="${COLORS.ink}"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="${COLORS.ink}"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = n(bottom - ((bottom - top) * i) / 4);
    body.push(`<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#d0d7de"/>`);
    body.push(
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end" ${FONT} font-size="11" fill="${COLORS.ink}">${(max * i) / 4}</text>`,
    );
  }
  const slot = (right - left) / Math.max(1, options.bins.length);
  options.bins.forEach((bin, i) => {
    const c = options.counts[i] ?? 0;
    const h = ((bottom - top) * c) / max;
    const x = left + i * slot;
    body.push(
      `<rect x="${n(x + slot * 0.15)}" y="${n(bottom - h)}" width="${n(slot * 0.7)}" height="${n(h)}" fill="${COLORS.blue}"><title>${escapeXml(`${bin}: ${c}`)}</title></rect>`,
    );
    body.push(
      `<text x="${n(x + slot / 2)}" y="${n(bottom - h - 4)}" text-anchor="middle" ${FONT} font-size="11" fill="${COLORS.ink}">${c}</text>`,
    );
    body.push(
      `<text x="${n(x + slot / 2)}" y="${bottom + 16}" text-anchor="middle" ${FONT} font-size="11" fill="${COLORS.ink}">${escapeXml(bin)}</text>`,
    );
  });
  body.push(
    `<text x="${(left + right) / 2}" y="${bottom + 36}" text-anchor="middle" ${FONT} font-size="12" fill="${COLORS.ink}">${escapeXml(options.xLabel)}</text>`,
  );
  if (options.yLabel)
    body.push(
      `<text x="16" y="${(top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(top + bottom) / 2})" ${FONT} font-size="12" fill="${COLORS.ink}">${escapeXml(options.yLabel)}</text>`,
    );
  return frame(width, bottom + 48, options.title, body);
}
