import { readFileSync } from 'node:fs';
import { createTinyModel } from '@implicit-it/modelkit/test';
import * as ort from 'onnxruntime-node';
import { describe, expect, it, vi } from 'vitest';
import {
  checkSplitAttention,
  DecoderSession,
  generateWithoutCache,
  loadModel,
  type Model,
  ModelLoadError,
  patchDecoderGraph,
  resolveModelFiles,
} from '../src/index.js';
import { type KvCache, PresentCache, SLOT_CHUNK, SlotCache } from '../src/kv-cache.js';
import { diverseModelDir, expectClose, PROMPTS, promptStep } from './helpers.js';

/** Random cache outputs: `layers` key/value pairs of [batch, heads, len, dim], values tagged by origin. */
function outputs(batch: number, len: number, tag: number, heads = 2, dim = 3, layers = 2): ort.Tensor[] {
  return Array.from({ length: layers * 2 }, (_, i) => {
    const data = Float32Array.from({ length: batch * heads * len * dim }, (_, j) => tag * 1e4 + i * 1e3 + j);
    return new ort.Tensor('float32', data, [batch, heads, len, dim]);
  });
}

/**
 * `model` generating PROMPTS together (rows join as others finish when its batch is small) and each of
 * `others` generating them one at a time give the tokens of the no-cache loop, prompt by prompt.
 */
async function expectNoCacheLoopTokens(model: Model, others: Model[], maxNewTokens: number): Promise<void> {
  const opts = { maxNewTokens, ignoreEos: true, rules: 'hewitt2024' } as const;
  const batched = await model.generate(PROMPTS, opts);
  for (const [i, prompt] of PROMPTS.entries()) {
    const reference = await generateWithoutCache(model, prompt, opts);
    expect(new Set(reference).size).toBeGreaterThan(10);
    expect(batched[i]!.tokenIds).toEqual(reference);
    for (const other of others) expect((await other.generate(prompt, opts))[0]!.tokenIds).toEqual(reference);
  }
}

/** The cache's filled positions, row by row: [tensor][row][head][position][dim]. */
function contents(cache: KvCache): number[][][][][] {
  const filledFrom = cache.width - cache.length; // PresentCache: 0; SlotCache: positions [0, length)
  return cache.feeds().map((t) => {
    const [b, h, w, d] = t.dims as number[];
    const data = t.data as Float32Array;
    return Array.from({ length: b! }, (_, r) =>
      Array.from({ length: h! }, (_, k) =>
        Array.from({ length: cache.length }, (_, p) => {
          const pos = cache instanceof SlotCache ? p : p + filledFrom;
          const at = ((r * h! + k) * w! + pos) * d!;
          return Array.from(data.subarray(at, at + d!));
        }),
      ),
    );
  });
}

describe('KV caches', () => {
  it('SlotCache holds exactly what PresentCache holds through prefill, steps past a chunk, gather and merge', () => {
    const prefill = outputs(2, 5, 1);
    let slots: KvCache = SlotCache.fromPrefill(prefill);
    let present: KvCache = new PresentCache(prefill);
    expect(slots.width).toBe(SLOT_CHUNK);
    const presentAfter = (cache: KvCache, fresh: ort.Tensor[]) =>
      cache.feeds().map((t, i) => {
        const [b, h, w, d] = t.dims as number[];
        const out = new Float32Array(b! * h! * (w! + 1) * d!);
        const src = t.data as Float32Array;
        const add = fresh[i]!.data as Float32Array;
        for (let bh = 0; bh < b! * h!; bh++) {
          out.set(src.subarray(bh * w! * d!, (bh + 1) * w! * d!), bh * (w! + 1) * d!);
          out.set(add.subarray(bh * d!, (bh + 1) * d!), (bh * (w! + 1) + w!) * d!);
        }
        return new ort.Tensor('float32', out, [b!, h!, w! + 1, d!]);
      });
    const widths = [slots.width];
    for (let step = 0; step < 100; step++) {
      const fresh = outputs(2, 1, 100 + step);
      present = present.advance(presentAfter(present, fresh));
      slots = slots.advance(fresh);
      if (slots.width !== widths.at(-1)) widths.push(slots.width);
    }
    expect(slots.length).toBe(105);
    // grows by half, in whole chunks: 32 -> 64 -> 96 -> 160
    expect(widths).toEqual([SLOT_CHUNK, 2 * SLOT_CHUNK, 3 * SLOT_CHUNK, 5 * SLOT_CHUNK]);
    expect(contents(slots)).toEqual(contents(present));

    slots = slots.gather([1]);
    present = present.gather([1]);
    expect(contents(slots)).toEqual(contents(present));

    // dropping leading positions: the rest, in place, the free slots as many
    const before = contents(present);
    const freeSlots = slots.width - slots.length;
    slots = slots.trimLeft(40);
    present = present.trimLeft(40);
    expect([slots.length, present.length, slots.width - slots.length]).toEqual([65, 65, freeSlots]);
    expect(contents(present)).toEqual(
      before.map((layer) => layer.map((row) => row.map((head) => head.slice(40)))),
    );
    expect(contents(slots)).toEqual(contents(present));

    // a shorter and a longer joiner: the shorter side is left-padded with zeros
    for (const len of [7, 130]) {
      const joiner = outputs(2, len, 7 + len);
      slots = slots.merge(SlotCache.fromPrefill(joiner));
      present = present.merge(new PresentCache(joiner));
      expect(slots.batch).toBe(present.batch);
      expect(slots.length).toBe(present.length);
      expect(slots.width).toBeGreaterThan(slots.length);
      expect(contents(slots)).toEqual(contents(present));
    }
    expect(slots.length).toBe(130);
  });

  it('SlotCache.gather moves kept rows down in place, merge fills the rows left; other cases copy', () => {
    const prefill = outputs(4, 5, 1);
    let slots: KvCache = SlotCache.fromPrefill(prefill);
    let present: KvCache = new PresentCache(prefill);
    const buffers = slots.feeds().map((t) => (t.data as Float32Array).buffer);
    const step = (tag: number) => {
      const fresh = outputs(slots.batch, 1, tag);
      present = new PresentCache(
        present.feeds().map((t, i) => {
          const [b, h, w, d] = t.dims as number[];
          const out = new Float32Array(b! * h! * (w! + 1) * d!);
          for (let bh = 0; bh < b! * h!; bh++) {
            out.set((t.data as Float32Array).subarray(bh * w! * d!, (bh + 1) * w! * d!), bh * (w! + 1) * d!);
            out.set(
              (fresh[i]!.data as Float32Array).subarray(bh * d!, (bh + 1) * d!),
              (bh * (w! + 1) + w!) * d!,
            );
          }
          return new ort.Tensor('float32', out, [b!, h!, w! + 1, d!]);
        }),
      );
      slots = slots.advance(fresh);
    };
    step(10);
    const kept = slots.gather([0, 2, 3]);
    expect(kept).toBe(slots); // in place
    present = present.gather([0, 2, 3]);
    // the feeds are views of the batch's rows in the same buffers
    expect(slots.feeds().map((t) => [t.dims[0], (t.data as Float32Array).buffer])).toEqual(
      buffers.map((b) => [3, b]),
    );
    expect(contents(slots)).toEqual(contents(present));
    step(11);
    step(12);
    expect(contents(slots)).toEqual(contents(present));
    // the last row only, then a reversed order (copied into new buffers)
    slots = slots.gather([2]);
    present = present.gather([2]);
    expect(contents(slots)).toEqual(contents(present));
    // joiners whose prompts fit the cached positions go into the rows that left, in place
    const joined = slots.merge(SlotCache.fromPrefill(outputs(2, 3, 5)));
    expect(joined).toBe(slots);
    present = present.merge(new PresentCache(outputs(2, 3, 5)));
    expect(contents(slots)).toEqual(contents(present));
    step(13);
    expect(contents(slots)).toEqual(contents(present));
    expect(slots.feeds().map((t) => (t.data as Float32Array).buffer)).toEqual(buffers);
    // growing drops the rows that left: new buffers of the batch's rows only
    const width = slots.width;
    while (slots.width === width) step(14);
    expect(contents(slots)).toEqual(contents(present));
    expect(
      slots
        .feeds()
        .every((t) => (t.data as Float32Array).length === (t.data as Float32Array).buffer.byteLength / 4),
    ).toBe(true);
    // a longer joiner, or more rows than the buffers hold: new buffers
    const longer = outputs(1, 20, 6);
    const grown = slots.merge(SlotCache.fromPrefill(longer));
    expect(grown).not.toBe(slots);
    slots = grown;
    present = present.merge(new PresentCache(longer));
    expect(contents(slots)).toEqual(contents(present));
    const reversed = slots.gather([2, 1, 0]);
    expect(reversed).not.toBe(slots);
    expect(contents(reversed)).toEqual(contents(present.gather([2, 1, 0])));
  });

  it('the new-KV patch: outputs equal what present.* appends, at prefill and at a decoding step', async () => {
    const files = resolveModelFiles(await diverseModelDir());
    // attention as exported, so that present.* can be fetched beside the new outputs
    const session = await DecoderSession.create(files, { log: () => {}, splitAttention: false });
    const plain = await DecoderSession.create(files, { log: () => {}, cacheOutputs: false });
    expect([session.cacheMode, plain.cacheMode]).toEqual(['slots', 'present']);
    const ids = [1, 40, 41, 42, 300, 301, 77, 9];
    const prefill = (fetch: 'present' | 'new') => session.run(promptStep(ids, -1, fetch));
    const whole = await prefill('present');
    const fresh = await prefill('new');
    expect(fresh.kv.map((t) => t.dims)).toEqual(whole.kv.map((t) => t.dims));
    expect(fresh.kv.map((t) => Array.from(t.data as Float32Array))).toEqual(
      whole.kv.map((t) => Array.from(t.data as Float32Array)),
    );
    expect(Array.from(fresh.logits)).toEqual(Array.from(whole.logits));

    const decode = (fetch: 'present' | 'new') =>
      session.run({
        batch: 1,
        seq: 1,
        inputIds: BigInt64Array.of(5n),
        attentionMask: new BigInt64Array(ids.length + 1).fill(1n),
        positionIds: BigInt64Array.of(BigInt(ids.length)),
        past: whole.kv,
        logitsFrom: -1,
        fetch,
      });
    const step = await decode('present');
    const stepNew = await decode('new');
    for (const [i, t] of stepNew.kv.entries()) {
      const [, h, , d] = t.dims as number[];
      const present = step.kv[i]!.data as Float32Array;
      for (let k = 0; k < h!; k++) {
        const last = (k * (ids.length + 1) + ids.length) * d!;
        expect(Array.from((t.data as Float32Array).subarray(k * d!, (k + 1) * d!))).toEqual(
          Array.from(present.subarray(last, last + d!)),
        );
      }
    }
    await expect(
      plain.run({
        batch: 1,
        seq: 1,
        inputIds: BigInt64Array.of(5n),
        attentionMask: BigInt64Array.of(1n),
        positionIds: BigInt64Array.of(0n),
        past: null,
        logitsFrom: -1,
        fetch: 'new',
      }),
    ).rejects.toThrow('DecoderSession.run: fetch "new" needs a graph patched with new key/value outputs');
    await session.release();
    await plain.release();
  });

  it('split attention: the logits of the exported attention, left padding and a cache with free slots included', async () => {
    const files = resolveModelFiles(await diverseModelDir());
    const split = await DecoderSession.create(files, { log: () => {} });
    const plain = await DecoderSession.create(files, { log: () => {}, cacheOutputs: false });
    expect([split.cacheMode, split.splitAttention, plain.splitAttention]).toEqual(['slots', true, false]);
    // two rows, the second left-padded by 3
    const ids = [1, 40, 41, 42, 300, 301, 77, 9, 0, 0, 0, 5, 6, 7, 8, 9];
    const mask = ids.map((_, i) => (i >= 8 && i < 11 ? 0n : 1n));
    const pos = ids.map((_, i) => BigInt(i < 8 ? i : Math.max(0, i - 11)));
    const prefill = (s: DecoderSession, fetch: 'present' | 'new') =>
      s.run({
        batch: 2,
        seq: 8,
        inputIds: BigInt64Array.from(ids, BigInt),
        attentionMask: BigInt64Array.from(mask),
        positionIds: BigInt64Array.from(pos),
        past: null,
        logitsFrom: 0,
        fetch,
      });
    const want = await prefill(plain, 'present');
    const got = await prefill(split, 'new');
    // positions the mask hides hold whatever attention over nothing gives: compare the others
    const real = <T extends Float32Array>(data: T, width: number) =>
      Float32Array.from(
        mask.flatMap((m, i) => (m ? Array.from(data.subarray(i * width, (i + 1) * width)) : [])),
      );
    expectClose(real(got.logits, got.vocab), real(want.logits, want.vocab));
    for (const [i, t] of got.kv.entries()) {
      // [2, heads, 8, headDim]: one head at a time
      const [, h, , d] = t.dims as number[];
      for (let k = 0; k < h!; k++) {
        const head = (x: Float32Array) =>
          Float32Array.from(
            mask.flatMap((m, j) => {
              const at = ((Math.floor(j / 8) * h! + k) * 8 + (j % 8)) * d!;
              return m ? Array.from(x.subarray(at, at + d!)) : [];
            }),
          );
        expectClose(head(t.data as Float32Array), head(want.kv[i]!.data as Float32Array));
      }
    }

    // a decoding step over the engine's own cache: 8 positions, 3 free slots (masked), then the new token
    const cache = SlotCache.fromPrefill(got.kv);
    expect(cache.width - cache.length).toBeGreaterThan(0);
    const width = cache.width + 1;
    const stepMask = new BigInt64Array(2 * width);
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 8; t++) stepMask[b * width + t] = mask[b * 8 + t]!;
      stepMask[b * width + width - 1] = 1n;
    }
    const decode = (s: DecoderSession, past: ort.Tensor[], attentionMask: BigInt64Array) =>
      s.run({
        batch: 2,
        seq: 1,
        inputIds: BigInt64Array.of(17n, 18n),
        attentionMask,
        positionIds: BigInt64Array.of(8n, 5n),
        past,
        logitsFrom: -1,
        fetch: s === split ? 'new' : 'present',
      });
    const next = await decode(split, cache.feeds(), stepMask);
    const ref = await decode(
      plain,
      want.kv,
      BigInt64Array.from([...mask.slice(0, 8), 1n, ...mask.slice(8), 1n]),
    );
    expectClose(next.logits, ref.logits);
    await expect(prefill(split, 'present')).rejects.toThrow(
      'DecoderSession.run: fetch "present" needs the present.* outputs, which a split-attention graph does not have (load with splitAttention: false)',
    );
    await split.release();
    await plain.release();
  });

  it('split attention through optimum-style repeat_kv (Expand on shapes read from the cache), checked at load', async () => {
    const { dir } = await createTinyModel({ seed: 1, initScale: 10, repeatKv: 'expand' });
    const bytes = readFileSync(resolveModelFiles(dir).onnxFile);
    const result = patchDecoderGraph(bytes, { logitsSlice: true, kvOutputs: true, splitAttention: true });
    expect([result.logitsSlice, result.kvOutputs, result.splitAttention, result.groupQueries]).toEqual([
      true,
      true,
      true,
      true,
    ]);
    const lines: string[] = [];
    const model = await loadModel(dir, { log: (l) => lines.push(l), maxBatchSize: 2 });
    const exported = await loadModel(dir, { log: () => {}, splitAttention: false });
    const split = await loadModel(dir, { log: () => {}, groupQueries: false });
    expect([
      model.info.cacheMode,
      model.info.attention,
      split.info.attention,
      exported.info.attention,
    ]).toEqual(['slots', 'grouped', 'split', 'exported']);
    expect(lines.filter((l) => !l.startsWith('execution provider'))).toEqual([
      'prompts prefilled in chunks of 256 positions',
    ]);
    expect(await checkSplitAttention(model.session)).toBeNull();
    await expectNoCacheLoopTokens(model, [exported, split], SLOT_CHUNK + 4);
    await model.dispose();
    await split.dispose();
    await exported.dispose();
  });

  it('a graph without position_ids (positions from the mask): split, batched and alone, same tokens as the no-cache loop', async () => {
    const { dir } = await createTinyModel({ seed: 1, initScale: 10, positionIds: false });
    const model = await loadModel(dir, { log: () => {}, maxBatchSize: 2 });
    const exported = await loadModel(dir, { log: () => {}, cacheOutputs: false });
    expect(model.session.hasPositionIds).toBe(false);
    expect([model.info.cacheMode, model.info.attention, exported.info.attention]).toEqual([
      'slots',
      'split',
      'exported',
    ]);
    await expectNoCacheLoopTokens(model, [exported], SLOT_CHUNK + 4);
    await model.dispose();
    await exported.dispose();
  });

  it('a sliding window: free slots never push a key out of it (same tokens as the no-cache loop)', async () => {
    // prompts of up to 42 tokens and 48 new ones cross the window of 48: the cache first has free
    // slots (capacity 32 or 47), is held below the window (47), and at 47 positions loses its free slots
    const window = 48;
    const { dir } = await createTinyModel({
      seed: 1,
      initScale: 10,
      modelType: 'qwen2',
      attentionBias: true,
      slidingWindow: window,
    });
    const lines: string[] = [];
    const model = await loadModel(dir, { log: (l) => lines.push(l), maxBatchSize: 2 });
    expect(lines.filter((l) => !l.startsWith('execution provider'))).toEqual([
      'sliding window of 48 positions: from 47 cached positions on, the cache has no free slots and each step copies it',
      'prompts prefilled whole (no chunks with a sliding window)',
    ]);
    const exported = await loadModel(dir, { log: () => {}, cacheOutputs: false });
    expect([model.info.slidingWindow, model.info.cacheMode, exported.info.cacheMode]).toEqual([
      window,
      'slots',
      'present',
    ]);
    const lengths = PROMPTS.map((p) => model.prompt(p).ids.length);
    expect(Math.min(...lengths)).toBeLessThan(SLOT_CHUNK);
    expect(Math.max(...lengths)).toBeLessThan(window);
    await expectNoCacheLoopTokens(model, [exported], 48);
    await model.dispose();
    await exported.dispose();
  });

  it('the engine allocates no cache slot beyond what its rows can still reach', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const run = vi.spyOn(model.session, 'run');
    const longest = Math.max(...PROMPTS.map((p) => model.prompt(p).ids.length));
    const maxNewTokens = 40;
    await model.generate(PROMPTS, { maxNewTokens, ignoreEos: true });
    const widths = run.mock.calls
      .map(([step]) => step)
      .filter((step) => step.past !== null)
      .map((step) => step.attentionMask.length / step.batch);
    // the cache ends holding longest + 39 positions (the last token is never fed); the rule before
    // (grow by half in whole chunks) fed 97 for the 42-token prompt
    expect(widths.length).toBe(maxNewTokens - 1);
    expect(Math.max(...widths)).toBeLessThanOrEqual(longest + maxNewTokens);
    await model.dispose();
  });

  it('a batch that never empties keeps its cache to what its rows see (same tokens as alone)', async () => {
    for (const cacheOutputs of [true, false]) {
      const model = await loadModel(await diverseModelDir(), {
        log: () => {},
        maxBatchSize: 4,
        cacheOutputs,
      });
      const opts = (i: number) =>
        ({ maxNewTokens: 10 + (i % 7), ignoreEos: true, rules: 'hewitt2024' }) as const;
      const alone = new Map<string, number[]>();
      for (const [p, prompt] of PROMPTS.entries())
        for (let i = 0; i < 7; i++)
          alone.set(`${p}/${i}`, (await model.generate(prompt, opts(i)))[0]!.tokenIds);
      const run = vi.spyOn(model.session, 'run');
      // a busy server: 4 clients, each sending its next request as soon as the last one is answered
      const client = async (c: number) => {
        for (let i = 0; i < 24; i++) {
          const p = (c + i) % PROMPTS.length;
          const [r] = await model.generate(PROMPTS[p]!, opts(c + i));
          expect(r!.tokenIds).toEqual(alone.get(`${p}/${(c + i) % 7}`));
        }
      };
      await Promise.all(
        [0, 1, 2, 3].map((c) => new Promise((r) => setTimeout(r, c * 7)).then(() => client(c))),
      );
      const steps = run.mock.calls.map(([s]) => s).filter((s) => s.past !== null && s.batch > 1);
      const widths = steps.map((s) => s.attentionMask.length / s.batch);
      const longest = Math.max(...PROMPTS.map((p) => model.prompt(p).ids.length));
      // about 300 steps with a batch of 2 or more: before, the cache grew by one position a step
      expect(steps.length).toBeGreaterThan(250);
      expect(Math.max(...widths)).toBeLessThanOrEqual(longest + 16 + 2 * SLOT_CHUNK);
      await model.dispose();
    }
  });

  it('SlotCache never grows past its limit', () => {
    let cache: KvCache = SlotCache.fromPrefill(outputs(1, 20, 1), null, 25);
    expect(cache.width).toBe(25);
    for (let step = 0; step < 10; step++) cache = cache.advance(outputs(1, 1, 2 + step), 30);
    expect([cache.length, cache.width]).toEqual([30, 30]);
    cache = cache.advance(outputs(1, 1, 20)); // no limit: grows by whole chunks again
    expect(cache.width).toBe(30 + SLOT_CHUNK);
    const merged = SlotCache.fromPrefill(outputs(1, 5, 3)).merge(SlotCache.fromPrefill(outputs(1, 9, 4)), 12);
    expect([merged.length, merged.width]).toEqual([9, 12]);
  });

  it('SlotCache.extend: prompt chunks leave no free slots until the last, then the room of a whole prefill', () => {
    const whole = outputs(2, 70, 1);
    // the same 70 positions in chunks of 32, 32 and 6
    const chunk = (from: number, n: number) =>
      whole.map((t) => {
        const [b, h, , d] = t.dims as number[];
        const src = t.data as Float32Array;
        const out = new Float32Array(b! * h! * n * d!);
        for (let bh = 0; bh < b! * h!; bh++)
          out.set(src.subarray((bh * 70 + from) * d!, (bh * 70 + from + n) * d!), bh * n * d!);
        return new ort.Tensor('float32', out, [b!, h!, n, d!]);
      });
    const cache = SlotCache.fromPrefill(chunk(0, 32), null, 32);
    expect([cache.length, cache.width]).toEqual([32, 32]);
    cache.extend(chunk(32, 32), true, 100);
    expect([cache.length, cache.width]).toEqual([64, 64]);
    cache.extend(chunk(64, 6), false, 100);
    const prefilled = SlotCache.fromPrefill(whole, null, 100);
    expect([cache.length, cache.width]).toEqual([prefilled.length, prefilled.width]);
    expect(cache.width).toBe(3 * SLOT_CHUNK);
    expect(contents(cache)).toEqual(contents(prefilled));
    // a decoding step writes one position after the prompt, as after a whole prefill
    const fresh = outputs(2, 1, 9);
    expect(contents(cache.advance(fresh, 100))).toEqual(contents(prefilled.advance(fresh, 100)));
  });

  it('SlotCache keeps a sliding window: capacity below it, or no free slots', () => {
    const window = 40;
    let cache: KvCache = SlotCache.fromPrefill(outputs(1, 20, 1), window);
    const seen: [number, number][] = [[cache.length, cache.width]];
    for (let step = 0; step < 30; step++) {
      cache = cache.advance(outputs(1, 1, 2 + step));
      seen.push([cache.length, cache.width]);
      expect(cache.width < window || cache.width === cache.length).toBe(true);
    }
    // 32 slots, then held at 39 (window - 1), then exact from 39 positions on
    expect(seen.filter(([l]) => [20, 32, 33, 38, 39, 40, 50].includes(l))).toEqual([
      [20, 32],
      [32, 32],
      [33, 39],
      [38, 39],
      [39, 39],
      [40, 40],
      [50, 50],
    ]);
    // a merge that reaches the window has no free slots either
    const merged = SlotCache.fromPrefill(outputs(1, 10, 3), window).merge(
      SlotCache.fromPrefill(outputs(1, 45, 4), window),
    );
    expect([merged.length, merged.width]).toEqual([45, 45]);
    expect([SlotCache.fromPrefill(outputs(1, 45, 5)).width]).toEqual([64]);
  });

  it('a patched graph that does not load falls back to the graph as exported, with the reason', async () => {
    const files = resolveModelFiles(await diverseModelDir());
    const open = vi.spyOn(DecoderSession as never as { open: () => Promise<unknown> }, 'open');
    const error = new ModelLoadError(
      'runtime.no_provider',
      'x: no execution provider could load the model',
      {},
    );
    // the first attempt (everything patched) fails as onnxruntime would on a graph it rejects
    open.mockResolvedValueOnce({ error, patched: true, reason: 'two nodes with the same name' });
    const lines: string[] = [];
    const session = await DecoderSession.create(files, { log: (l) => lines.push(l) });
    expect([session.logitsMode, session.cacheMode, session.attention]).toEqual([
      'all',
      'present',
      'exported',
    ]);
    expect(lines[0]).toBe('graph as exported (the patched graph did not load: two nodes with the same name)');
    expect(lines[1]).toMatch(/^execution provider: cpu/);
    expect(open).toHaveBeenCalledTimes(2);
    await session.release();
    // the graph as exported failing is the model's problem: its error is thrown
    open.mockResolvedValueOnce({ error, patched: false, reason: 'bad' });
    await expect(DecoderSession.create(files, { log: () => {} })).rejects.toBe(error);
    open.mockRestore();
  });

  it('the load-time check of a split graph reports logits that differ and graphs that fail to run', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const s = model.session;
    expect(await checkSplitAttention(s)).toBeNull();
    // the same session, its decoding steps (past given) off by 1e-3 in one logit
    let calls = 0;
    const skewed = {
      kvType: s.kvType,
      run: async (step: Parameters<DecoderSession['run']>[0]) => {
        calls++;
        const out = await s.run(step);
        if (step.past !== null) out.logits[7]! += 1e-3 * Math.max(...out.logits.map(Math.abs));
        return out;
      },
    };
    expect(await checkSplitAttention(skewed)).toMatch(
      /^a decoding step over the cache gave logits \S+ away from the full pass \(tolerance \S+\)$/,
    );
    expect(calls).toBe(3);
    // 4-bit layers computing in int8 (accuracy level 4) round activations: 1e-3 passes, 0.1 does not
    expect(await checkSplitAttention({ ...skewed, q4AccuracyLevel: 4 })).toBeNull();
    const far = {
      ...skewed,
      q4AccuracyLevel: 4,
      run: async (step: Parameters<DecoderSession['run']>[0]) => {
        const out = await s.run(step);
        if (step.past !== null) out.logits[7]! += 0.1 * Math.max(...out.logits.map(Math.abs));
        return out;
      },
    };
    expect(await checkSplitAttention(far)).toMatch(/^a decoding step over the cache gave logits/);
    // 8-bit graphs round each activation with one scale per run, so the whole pass and the step differ
    // by a few per cent (3.8 % on the smollm2-135m shape); without an unpatched reference to compare
    // with (the load-time check opens one), 0.1 passes and the logits' own size does not
    expect(await checkSplitAttention({ ...far, q4AccuracyLevel: 0, dynamicQuantization: true })).toBeNull();
    const wrong = {
      ...far,
      dynamicQuantization: true,
      run: async (step: Parameters<DecoderSession['run']>[0]) => {
        const out = await s.run(step);
        if (step.past !== null) out.logits[7]! += Math.max(...out.logits.map(Math.abs));
        return out;
      },
    };
    expect(await checkSplitAttention(wrong)).toMatch(/^a decoding step over the cache gave logits/);
    const failing = { kvType: s.kvType, run: () => Promise.reject(new Error('Concat: shapes differ\nmore')) };
    expect(await checkSplitAttention(failing)).toBe(
      'the patched graph failed to run (Concat: shapes differ)',
    );
    await model.dispose();
  });

  it('the patch says why it does not apply', async () => {
    const bytes = readFileSync(resolveModelFiles(await diverseModelDir()).onnxFile);
    const once = patchDecoderGraph(bytes, { logitsSlice: true, kvOutputs: true });
    expect([once.logitsSlice, once.kvOutputs]).toEqual([true, true]);
    const twice = patchDecoderGraph(once.bytes!, { logitsSlice: true, kvOutputs: true });
    expect(twice).toMatchObject({
      bytes: null,
      logitsSlice: 'already patched',
      kvOutputs: 'already patched',
    });
    const split = patchDecoderGraph(bytes, { logitsSlice: true, kvOutputs: true, splitAttention: true });
    expect(split.splitAttention).toBe(true);
    expect(
      patchDecoderGraph(split.bytes!, { logitsSlice: false, kvOutputs: true, splitAttention: true }),
    ).toMatchObject({
      bytes: null,
      kvOutputs: 'already patched',
      splitAttention: 'needs the new key/value outputs (already patched)',
    });
    const junk = patchDecoderGraph(Uint8Array.of(0x3a, 0xff), { logitsSlice: false, kvOutputs: true });
    expect(junk.kvOutputs).toMatch(/^cannot read the graph/);
    expect(junk.logitsSlice).toMatch(/^cannot read the graph/);
  });

  it('the engine gives the same tokens with its own cache buffers as with present.* fed back', async () => {
    const dir = await diverseModelDir();
    const slots = await loadModel(dir, { log: () => {}, maxBatchSize: 3 });
    const unsplit = await loadModel(dir, { log: () => {}, maxBatchSize: 3, splitAttention: false });
    const present = await loadModel(dir, { log: () => {}, maxBatchSize: 3, cacheOutputs: false });
    expect([slots.info.cacheMode, present.info.cacheMode]).toEqual(['slots', 'present']);
    expect([slots.info.attention, unsplit.info.attention]).toEqual(['split', 'exported']);
    // rows of different lengths, more than a chunk of steps, a batch limit so that rows join mid-way
    const opts = { maxNewTokens: SLOT_CHUNK + 20, ignoreEos: true, rules: 'hewitt2024' } as const;
    const want = await present.generate(PROMPTS, opts);
    const got = await Promise.all(
      PROMPTS.map((p, i) =>
        new Promise((r) => setTimeout(r, i * 15)).then(() =>
          slots.generate(p, { ...opts, maxNewTokens: opts.maxNewTokens - i * 5 }),
        ),
      ),
    );
    for (const [i, [r]] of got.entries())
      expect(r!.tokenIds).toEqual(want[i]!.tokenIds.slice(0, opts.maxNewTokens - i * 5));
    expect((await unsplit.generate(PROMPTS, opts)).map((r) => r.tokenIds)).toEqual(
      want.map((r) => r.tokenIds),
    );
    await unsplit.dispose();
    await slots.dispose();
    await present.dispose();
  });

  it('a float16 KV cache: same tokens as the no-cache loop, batched or alone, in both cache modes', async () => {
    const { dir } = await createTinyModel({ seed: 1, initScale: 10, kvDtype: 'float16' });
    const slots = await loadModel(dir, { log: () => {}, maxBatchSize: 2 });
    const present = await loadModel(dir, { log: () => {}, cacheOutputs: false });
    expect([slots.info.kvType, slots.info.cacheMode, present.info.cacheMode]).toEqual([
      'float16',
      'slots',
      'present',
    ]);
    expect(slots.info.attention).toBe('split'); // through the graph's Cast back to float32
    await expectNoCacheLoopTokens(slots, [present], SLOT_CHUNK + 8);
    await slots.dispose();
    await present.dispose();
  });
});
