import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { createModel } from '../src/index.js';
import { emptyPast, maxAbsDiff, step } from './ort-helpers.js';

const ROWS = [
  [3, 14, 159, 26, 53, 58, 97],
  [9, 300, 42],
  [100, 200, 300, 400, 500],
];

describe('left-padded batches', () => {
  it('give per-row logits equal to unpadded single rows, prompt and cached steps', async () => {
    const created = await createModel({
      preset: 'tiny',
      seed: 11,
      out: mkdtempSync(join(tmpdir(), 'modelkit-pad-')),
    });
    const { config } = created;
    const session = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
    const width = Math.max(...ROWS.map((r) => r.length));
    const pad = config.padTokenId ?? 0;
    const ids = ROWS.map((r) => [...Array(width - r.length).fill(pad), ...r]);
    const mask = ROWS.map((r) => [...Array(width - r.length).fill(0), ...r.map(() => 1)]);
    // transformers.js: position_ids = cumsum(mask) - 1, padding positions set to 1.
    const positions = ROWS.map((r) => [...Array(width - r.length).fill(1), ...r.map((_, i) => i)]);
    const batch = await step(session, config, ids, mask, positions, emptyPast(config, ROWS.length));

    const next = [7, 8, 9];
    const stepMask = mask.map((m) => [...m, 1]);
    const stepPos = ROWS.map((r) => [r.length]);
    const batchStep = await step(
      session,
      config,
      next.map((t) => [t]),
      stepMask,
      stepPos,
      batch.past,
    );

    for (const [r, row] of ROWS.entries()) {
      const single = await step(
        session,
        config,
        [row],
        [row.map(() => 1)],
        [row.map((_, i) => i)],
        emptyPast(config, 1),
      );
      const offset = width - row.length;
      row.forEach((_, p) => {
        expect(maxAbsDiff(batch.logits[r]![offset + p]!, single.logits[0]![p]!)).toBeLessThan(1e-4);
      });
      const singleStep = await step(
        session,
        config,
        [[next[r]!]],
        [[...row.map(() => 1), 1]],
        [[row.length]],
        single.past,
      );
      expect(maxAbsDiff(batchStep.logits[r]![0]!, singleStep.logits[0]![0]!)).toBeLessThan(1e-4);
    }
  });
});
