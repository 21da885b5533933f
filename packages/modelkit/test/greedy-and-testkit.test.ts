import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  createModel,
  forceGreedyToken,
  randomWeights,
  referenceForward,
  resolveConfig,
} from '../src/index.js';
import { createTinyModel } from '../src/test.js';
import { argmax, emptyPast, step } from './ort-helpers.js';

const PROMPTS = [[5], [42, 42, 42], [1, 300, 17, 250, 9, 100, 2, 77, 8, 11, 12, 13]];

describe('forceGreedyToken', () => {
  for (const tieWordEmbeddings of [true, false]) {
    it(`makes the chosen id the greedy pick at every position (tied=${tieWordEmbeddings})`, async () => {
      const config = resolveConfig({ preset: 'tiny', tieWordEmbeddings });
      const target = 317;
      const weights = forceGreedyToken(config, randomWeights(config, 3), target);
      for (const ids of PROMPTS) {
        for (const row of referenceForward({ config, weights }, ids)) expect(argmax(row)).toBe(target);
      }
      const created = await createModel({
        preset: 'tiny',
        tieWordEmbeddings,
        weights,
        out: mkdtempSync(join(tmpdir(), 'mk-g-')),
      });
      const session = await ort.InferenceSession.create(join(created.dir, 'onnx', 'model.onnx'));
      const ids = PROMPTS[2]!;
      const out = await step(
        session,
        config,
        [ids],
        [ids.map(() => 1)],
        [ids.map((_, i) => i)],
        emptyPast(config, 1),
      );
      for (const row of out.logits[0]!) expect(argmax(row)).toBe(target);
    });
  }
});

describe('createTinyModel (./test export)', () => {
  it('reuses a cached directory for the same options and writes a fresh one for others', async () => {
    const a = await createTinyModel({ seed: 4, numHiddenLayers: 1 });
    const mtime = statSync(join(a.dir, 'onnx', 'model.onnx')).mtimeMs;
    const b = await createTinyModel({ numHiddenLayers: 1, seed: 4 });
    expect(b.dir).toBe(a.dir);
    expect(statSync(join(b.dir, 'onnx', 'model.onnx')).mtimeMs).toBe(mtime);
    expect(b.config.numHiddenLayers).toBe(1);
    const c = await createTinyModel({ seed: 5, numHiddenLayers: 1 });
    expect(c.dir).not.toBe(a.dir);
  });

  it('writes into a given dir', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mk-t-')), 'm');
    const { dir: out, config } = await createTinyModel({ dir });
    expect(out).toBe(dir);
    expect(config.vocabSize).toBe(512);
  });
});
