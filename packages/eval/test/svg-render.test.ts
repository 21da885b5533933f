/// <reference lib="dom" />
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithBinary } from '@implicit-it/testkit';
import { chromium } from 'playwright-core';
import { expect, it } from 'vitest';
import {
  type Annotation,
  barChartSvg,
  histogramSvg,
  runPaths,
  stackedBarsSvg,
  writeAnnotations,
  writeReport,
} from '../src/index.js';

// Rasterizes the report's SVG charts in headless Chromium. Needs a Chromium binary (Debian:
// `apt-get install -y chromium`, or set IMPLICIT_IT_CHROMIUM); skipped with a message without one, a
// failure when IMPLICIT_IT_REQUIRE_TOOLS=1 (CI).
const CHROMIUM = process.env.IMPLICIT_IT_CHROMIUM ?? '/usr/bin/chromium';

/** Loads each SVG as an <img> (which fails for malformed SVG), draws it on a canvas and measures it. */
async function rasterize(svgs: string[]) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    return await page.evaluate(async (sources: string[]) => {
      const results = [];
      for (const src of sources) {
        const parsed = new DOMParser().parseFromString(src, 'image/svg+xml');
        const parseError = parsed.getElementsByTagName('parsererror').length > 0;
        const img = new Image();
        const loaded = await new Promise<boolean>((resolve) => {
          img.onload = () => resolve(true);
          img.onerror = () => resolve(false);
          img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(src)}`;
        });
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth || 1;
        canvas.height = img.naturalHeight || 1;
        const ctx = canvas.getContext('2d')!;
        if (loaded) ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let ink = 0;
        let blue = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i]! < 200 || data[i + 1]! < 200 || data[i + 2]! < 200) ink++;
          if (data[i] === 0 && data[i + 1] === 0x72 && data[i + 2] === 0xb2) blue++;
        }
        results.push({
          parseError,
          loaded,
          width: img.naturalWidth,
          height: img.naturalHeight,
          ink,
          blue,
          pixels: data.length / 4,
        });
      }
      return results;
    }, svgs);
  } finally {
    await browser.close();
  }
}

describeWithBinary('SVG charts render in headless Chromium', CHROMIUM, 'apt-get install -y chromium', () => {
  it('rasterizes every chart of a report and the hand-made charts, with ink where the bars are', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'eval-svg-'));
    try {
      const a: Annotation[] = [1.9, 1.2, 1.5].map((preference, i) => ({
        instruction: `q${i}`,
        output_1: 'r',
        generator_1: 'ref',
        output_2: 'o<&>"',
        generator_2: 'm',
        annotator: 'j',
        preference,
      }));
      await writeAnnotations(runPaths(runDir).annotation('model <&> "quoted"'), a);
      const report = await writeReport(runDir);
      const svgs = [
        ...report.charts.map((f) => readFileSync(f, 'utf8')),
        barChartSvg({
          title: 'bars',
          bars: [
            { label: 'x', value: 40, error: 5 },
            { label: 'nan', value: Number.NaN },
          ],
        }),
        stackedBarsSvg({
          title: 'stacked',
          series: ['a', 'b', 'c'],
          bars: [{ label: 'x', values: [50, 30, 20] }],
        }),
        histogramSvg({ title: 'hist', xLabel: 'k', yLabel: 'n', bins: ['0', '1', '2'], counts: [1, 5, 2] }),
      ];
      const results = await rasterize(svgs);
      for (const r of results) {
        expect(r).toMatchObject({ parseError: false, loaded: true });
        expect(r.width).toBeGreaterThan(300);
        expect(r.ink / r.pixels).toBeGreaterThan(0.01); // text, axes and bars drew something
        expect(r.ink / r.pixels).toBeLessThan(0.6); // on a white background
      }
      expect(results[0]!.blue).toBeGreaterThan(100); // the win-rate bar
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  }, 60_000);
});
