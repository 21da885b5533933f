import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LogitsProcessorList } from '@huggingface/transformers';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { compileRules, RuleConfigError, RuleSet } from '@implicit-it/rules';
import { describeShared, tinyLlama2ModelOptions } from '@implicit-it/testkit';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DecoderSession } from '../src/decoder-session.js';
import {
  createRng,
  GenerationError,
  generateWithoutCache,
  inputSeed,
  type LoadOptions,
  loadModel,
  loadModelInWorker,
  MAX_LOGIT_BIAS,
  type Model,
  type ProcessorContext,
  sampleToken,
  transformersRulesProcessor,
} from '../src/index.js';
import { logProbAt, logSumExp } from '../src/sampling.js';
import { diverseModelDir, PROMPTS, tinyModel, transformersGreedy, transformersModel } from './helpers.js';

describe("generateWithoutCache (the paper's no-cache loop)", () => {
  it("everyPosition computes the LM head at every position of each rerun, as the paper's code, with the same tokens", async () => {
    const model = await tinyModel();
    const opts = { maxNewTokens: 12, ignoreEos: true, rules: 'hewitt2024' } as const;
    const kept: [number, number][] = [];
    const run = model.session.run.bind(model.session);
    const spy = vi.spyOn(model.session, 'run').mockImplementation(async (step) => {
      const out = await run(step);
      kept.push([step.seq, out.kept]);
      return out;
    });
    try {
      const last = await generateWithoutCache(model, PROMPTS[0]!, opts);
      expect(kept.length).toBe(12);
      expect(kept.every(([, k]) => k === 1)).toBe(true);
      kept.length = 0;
      const every = await generateWithoutCache(model, PROMPTS[0]!, { ...opts, everyPosition: true });
      expect(every).toEqual(last);
      expect(kept.length).toBe(12);
      expect(kept.every(([seq, k]) => k === seq && seq > 1)).toBe(true);
      expect(kept[11]![0] - kept[0]![0]).toBe(11);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('generate() as a whole', () => {
  it('rejects with what onProgress threw, and stops its other rows', async () => {
    const model = await tinyModel();
    const boom = new Error('progress sink failed');
    const calls: number[] = [];
    const run = model.generate(PROMPTS, {
      maxNewTokens: 400,
      ignoreEos: true,
      batchSize: 4,
      // the first row to finish throws; the others would decode 400 tokens each
      processors: [{ process: (_, ctx) => void calls.push(ctx.request) }],
      onProgress: () => {
        throw boom;
      },
      stop: ['\u0000never'],
    });
    const early = model.generate(PROMPTS[0]!, { maxNewTokens: 2 });
    await expect(run).rejects.toBe(boom);
    await early;
    await new Promise((r) => setTimeout(r, 50));
    expect(model.load).toEqual({ queued: 0, decoding: 0 });
  });

  it('a row that fails stops the rows of its call', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    let steps = 0;
    const fail = new Error('processor failed');
    const run = model.generate(PROMPTS, {
      maxNewTokens: 300,
      ignoreEos: true,
      processors: [
        {
          process: (_, ctx) => {
            steps++;
            if (ctx.input === 2 && ctx.step === 3) throw fail;
          },
        },
      ],
    });
    await expect(run).rejects.toBe(fail);
    await new Promise((r) => setTimeout(r, 100));
    const after = steps;
    await new Promise((r) => setTimeout(r, 100));
    expect(steps).toBe(after); // nobody decodes for a call that has failed
    expect(steps).toBeLessThan(4 * 20);
    expect(model.load).toEqual({ queued: 0, decoding: 0 });
    await model.dispose();
  });

  it('each input samples from its own stream: the first as a single prompt, all independent of batching', async () => {
    const model = await tinyModel();
    const opts = { maxNewTokens: 12, temperature: 1, seed: 42, ignoreEos: true } as const;
    const four = await model.generate([PROMPTS[0]!, PROMPTS[0]!, PROMPTS[0]!, PROMPTS[0]!], opts);
    expect(new Set(four.map((r) => r.tokenIds.join())).size).toBe(4);
    expect(four[0]!.tokenIds).toEqual((await model.generate(PROMPTS[0]!, opts))[0]!.tokenIds);
    const oneByOne = await model.generate([PROMPTS[0]!, PROMPTS[0]!, PROMPTS[0]!, PROMPTS[0]!], {
      ...opts,
      batchSize: 1,
    });
    expect(oneByOne.map((r) => r.tokenIds)).toEqual(four.map((r) => r.tokenIds));
    expect([inputSeed(42, 0), inputSeed(42, 1) === inputSeed(43, 0), inputSeed(7, 3)]).toEqual([
      42,
      false,
      inputSeed(7, 3),
    ]);
  });

  it('an async processor fails its own request, clearly, and the process goes on', async () => {
    const model = await tinyModel();
    const refused = {
      message:
        'processors[1]: process() returned a promise (an async function?); logits processors run synchronously between two steps, so what it changes after an await would come after the token is drawn: compute what it needs before generate() and change the logits in process() itself',
      code: 'runtime.bad_option',
      param: 'processors',
    };
    const rejecting = {
      async process() {
        await null;
        throw new Error('lookup failed'); // unhandled, this would end the process
      },
    };
    const fine = model.generate(PROMPTS[1]!, { maxNewTokens: 6, ignoreEos: true });
    const bad = model.generate(PROMPTS[0]!, { maxNewTokens: 6, processors: [{ process() {} }, rejecting] });
    await expect(bad).rejects.toMatchObject(refused);
    expect((await fine)[0]!.tokenIds).toHaveLength(6);
    // one that resolves is refused too: its changes would come after the token is drawn
    const late = { process: async (logits: Float32Array) => void logits.fill(0) };
    await expect(model.generate('Hi', { processors: [late] })).rejects.toThrow('processors[0]: process()');
    await new Promise((resolve) => setTimeout(resolve, 10)); // the rejection above had its turn
  });

  it("processors are shown frozen copies of the row's ids: an edit fails the request, not its ids", async () => {
    const model = await tinyModel();
    const opts = { maxNewTokens: 4, ignoreEos: true } as const;
    const [clean] = await model.generate(PROMPTS[0]!, opts);
    const seen: ProcessorContext[] = [];
    const [watched] = await model.generate(PROMPTS[0]!, {
      ...opts,
      processors: [{ process: (_, ctx) => void seen.push(ctx) }],
    });
    expect(watched!.tokenIds).toEqual(clean!.tokenIds);
    expect(seen.map((ctx) => ctx.responseIds)).toEqual([0, 1, 2, 3].map((k) => clean!.tokenIds.slice(0, k)));
    expect(seen.every((ctx) => Object.isFrozen(ctx.responseIds) && Object.isFrozen(ctx.promptIds))).toBe(
      true,
    );
    expect(seen[3]!.promptIds).toEqual(watched!.prompt.ids);
    const pushing = {
      process: (_: Float32Array, ctx: ProcessorContext) => (ctx.responseIds as number[]).push(1),
    };
    await expect(model.generate(PROMPTS[0]!, { ...opts, processors: [pushing] })).rejects.toThrow(TypeError);
  });

  it('processors see a stable request id and their input index; the batch position moves', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const seen = new Map<number, { input: number; rows: Set<number>; steps: number[] }>();
    const processor = {
      process: (_: Float32Array, ctx: ProcessorContext) => {
        const s = seen.get(ctx.request) ?? { input: ctx.input, rows: new Set(), steps: [] };
        expect(ctx.input).toBe(s.input);
        s.rows.add(ctx.row);
        s.steps.push(ctx.step);
        seen.set(ctx.request, s);
      },
    };
    const lengths = [3, 9, 6];
    await Promise.all(
      lengths.map((n, i) =>
        model.generate([PROMPTS[i]!, PROMPTS[3]!], {
          maxNewTokens: n,
          ignoreEos: true,
          processors: [processor],
        }),
      ),
    );
    expect(seen.size).toBe(6);
    for (const s of seen.values()) expect(s.steps).toEqual(s.steps.map((_, k) => k));
    expect([...seen.values()].map((s) => s.input).sort()).toEqual([0, 0, 0, 1, 1, 1]);
    expect([...seen.values()].some((s) => s.rows.size > 1)).toBe(true); // rows left, others moved up
    await model.dispose();
  });
});

/**
 * The diverse tiny model (512 ids) with 4 special tokens added to its tokenizer past them, as a pad or
 * chat token added without resizing the model leaves a tokenizer: the model has no logits or
 * embeddings for ids 512-515.
 */
async function tokenizerPastHead(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'runtime-added-tokens-'));
  cpSync(await diverseModelDir(), dir, { recursive: true });
  const file = join(dir, 'tokenizer.json');
  const tokenizer = JSON.parse(readFileSync(file, 'utf8'));
  for (let k = 0; k < 4; k++) {
    const extra = { id: 512 + k, content: `<extra_${k}>`, single_word: false, lstrip: false, rstrip: false };
    tokenizer.added_tokens.push({ ...extra, normalized: false, special: true });
  }
  writeFileSync(file, JSON.stringify(tokenizer));
  return dir;
}

describe('a tokenizer with ids past the LM head (added tokens the model was not resized for)', () => {
  it('runs the rules (compiled for the whole tokenizer) as the model without those ids does; a prompt with one is refused', async () => {
    const dir = await tokenizerPastHead();
    const model = await loadModel(dir, { log: () => {} });
    const plain = await tinyModel();
    try {
      expect([model.tokenizer.size, model.info.vocabSize, model.info.tokenCount]).toEqual([516, 512, 512]);
      const compiled = compileRules('hewitt2024', model.tokenizer.vocabulary);
      expect(compiled.vocabSize).toBe(516);
      const options = { maxNewTokens: 24, ignoreEos: true, logprobs: true } as const;
      const [expected] = await plain.generate(PROMPTS[0]!, { ...options, rules: 'hewitt2024' });
      // the rules moved the greedy pick somewhere: the comparison sees them
      const [unruled] = await plain.generate(PROMPTS[0]!, { ...options, rules: false });
      expect(unruled!.tokenIds).not.toEqual(expected!.tokenIds);
      for (const rules of ['hewitt2024', compiled] as const) {
        // rejected before: "logits row has 512 entries, fewer than the vocabulary size 516"
        const [r] = await model.generate(PROMPTS[0]!, { ...options, rules });
        expect([r!.tokenIds, r!.logprobs]).toEqual([expected!.tokenIds, expected!.logprobs]);
        const item = [{ prompt: PROMPTS[0]!, continuation: expected!.tokenIds }];
        expect(await model.score(item, { rules })).toEqual(await plain.score(item, { rules: 'hewitt2024' }));
      }
      expect(
        await generateWithoutCache(model, PROMPTS[0]!, {
          maxNewTokens: 24,
          ignoreEos: true,
          rules: 'hewitt2024',
        }),
      ).toEqual(expected!.tokenIds);
      // the rules as transformers.js's LogitsProcessor, on the same directory (it failed before with
      // "logits row has 512 entries, fewer than the vocabulary size 516")
      const hf = await transformersModel(dir);
      try {
        const list = new LogitsProcessorList();
        list.push((await transformersRulesProcessor(compiled, expected!.prompt)) as never);
        const theirs = await transformersGreedy(hf, model, expected!.prompt.ids, 24, list);
        // EOS is not blocked there: the first tokens, up to an EOS, are the engine's
        expect(theirs.length).toBeGreaterThan(10);
        expect(theirs).toEqual(expected!.tokenIds.slice(0, theirs.length));
      } finally {
        await hf.dispose();
      }
      // a prompt holding such a token is refused, naming it (onnxruntime failed the run before:
      // "indices element out of data bounds, idx=513")
      const why = `token 3 is "<extra_1>" (id 513), which this model has no embedding for (its tokenizer has 516 ids, config.json's vocab_size is 512); leave it out of the prompt`;
      const text = { text: 'Hi <extra_1> there' };
      expect(model.prompt(text).ids[3]).toBe(513);
      const streamed = async () => {
        for await (const _ of model.stream(text));
      };
      for (const call of [model.generate(text), streamed()])
        await expect(call).rejects.toMatchObject({
          code: 'runtime.bad_token',
          param: 'prompt',
          message: `prompt: ${why}`,
        });
      const items = [
        { prompt: 'Hi', continuation: 'x' },
        { prompt: text, continuation: 'x' },
      ];
      await expect(model.score(items)).rejects.toMatchObject({
        code: 'runtime.bad_token',
        param: 'prompt',
        message: `items[1].prompt: ${why}`,
      });
    } finally {
      await model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a padded LM head (more logits than tokenizer ids)', () => {
  it('never picks, lists or scores an id the tokenizer lacks', async () => {
    const { dir } = await createTinyModel({ seed: 1, initScale: 10, vocabSize: 640 });
    const model = await loadModel(dir, { log: () => {} });
    expect([model.info.vocabSize, model.info.tokenCount]).toEqual([640, model.tokenizer.size]);
    const tokens = model.tokenizer.size;
    expect(tokens).toBeLessThan(640);
    const [hot] = await model.generate('Hi', { maxNewTokens: 64, temperature: 5, seed: 3, logprobs: 20 });
    expect(hot!.tokenIds.every((id) => id < tokens)).toBe(true);
    expect(hot!.logprobs!.flatMap((l) => l.top.map((t) => t.id)).every((id) => id < tokens)).toBe(true);
    await expect(model.generate('Hi', { logitBias: { 600: 100 } })).rejects.toThrow(
      `logitBias: key "600" is not a token id in [0, ${tokens}) for this model`,
    );
    await expect(model.score([{ prompt: 'Hi', continuation: [600] }])).rejects.toThrow(
      /continuation\[0\] is 600: token ids are integers in \[0, \d+\)/,
    );
    // a processor cannot bring a padded id back: it has no text to decode
    const pad = { process: (logits: Float32Array) => void logits.fill(1e9, tokens) };
    const [padded] = await model.generate('Hi', { maxNewTokens: 4, processors: [pad] });
    expect(padded!.tokenIds).toEqual((await model.generate('Hi', { maxNewTokens: 4 }))[0]!.tokenIds);
    // scores are over the same ids as generation's log-probs: the padded logits are left out of both
    for (const rules of [false, 'hewitt2024'] as const) {
      const [gen] = await model.generate('Hi', { maxNewTokens: 12, logprobs: true, rules });
      const [scored] = await model.score([{ prompt: 'Hi', continuation: gen!.tokenIds }], {
        rules,
        ranks: true,
      });
      scored!.logprobs.forEach((lp, i) => {
        expect(Math.abs(lp - gen!.logprobs![i]!.logprob)).toBeLessThan(1e-4);
      });
      expect(scored!.ranks!.every((r) => r === 1)).toBe(true); // greedy picks rank first
    }
    await model.dispose();
  });
});

describe('sampling edges', () => {
  it('sampleToken draws exactly the distribution of temperature, then top-k, then top-p (ties included)', () => {
    // the reference: transformers' warpers on ids sorted by value, ties by id
    const reference = (row: Float32Array, T: number, k: number, p: number) => {
      const ids = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
      const kth = k > 0 && k < row.length ? row[ids[k - 1]!]! : Number.NEGATIVE_INFINITY;
      const kept = ids.filter((i) => row[i]! >= kth);
      const e = kept.map((i) => Math.exp((row[i]! - row[kept[0]!]!) / T));
      const sum = e.reduce((a, b) => a + b, 0);
      let n = kept.length;
      if (p < 1) {
        n = 0;
        for (let c = 0; n < kept.length && c < p; n++) c += e[n]! / sum;
      }
      const nucleus = e.slice(0, n).reduce((a, b) => a + b, 0);
      const want = new Float64Array(row.length);
      for (let j = 0; j < n; j++) want[kept[j]!] = e[j]! / nucleus;
      return want;
    };
    const values = createRng(9);
    for (const [T, k, p] of [
      [1, 0, 1],
      [0.7, 0, 0.9],
      [1, 5, 1],
      [2, 3, 0.5],
      [0.5, 0, 0.3],
      [1, 0, 1e-9],
      [1, 50, 0.95],
    ]) {
      const row = new Float32Array(40).map(() => Math.round(values() * 8) / 2); // many ties
      const want = reference(row, T!, k!, p!);
      // every draw u in a fine sweep of [0, 1): the share of u that picks each id
      const got = new Float64Array(40);
      const N = 50_000;
      for (let j = 0; j < N; j++)
        got[sampleToken(row, { temperature: T!, topK: k!, topP: p! }, () => (j + 0.5) / N)]! += 1 / N;
      const distance = want.reduce((d, x, i) => d + Math.abs(x - got[i]!) / 2, 0);
      expect(distance, `T ${T}, top-k ${k}, top-p ${p}`).toBeLessThan(1e-3); // the sweep's grain: 40 ids x 1 / N
    }
  });

  it('top-p orders only the largest candidates, and picks exactly what a full sort would', () => {
    // the nucleus by a full sort (values descending; of those at the cut value, the lowest ids), then
    // the draw over the kept ids in id order, as sampleToken walks them; sorted once per row and p
    const fullSort = (row: Float32Array, T: number, p: number) => {
      let max = Number.NEGATIVE_INFINITY;
      for (const v of row) max = Math.max(max, v);
      const e = Array.from(row, (v) => (v >= max - 30 * T ? Math.exp((v - max) / T) : 0));
      const total = e.reduce((a, b) => a + b, 0);
      const ids = Array.from(row.keys())
        .filter((i) => e[i]! > 0 || row[i]! >= max - 30 * T)
        .sort((a, b) => row[b]! - row[a]! || a - b);
      let cum = 0;
      let keep = 0;
      while (keep < ids.length && !(cum >= p)) cum += Math.exp((row[ids[keep++]!]! - max) / T) / total;
      const kept = new Set(ids.slice(0, keep));
      let sum = 0;
      for (let i = 0; i < row.length; i++) if (kept.has(i)) sum += e[i]!;
      return (u: number) => {
        let left = u * sum;
        let last = -1;
        for (let i = 0; i < row.length; i++) {
          if (!kept.has(i)) continue;
          last = i;
          left -= e[i]!;
          if (left < 0) return i;
        }
        return last;
      };
    };
    const values = createRng(4);
    const gauss = () => values() + values() + values() + values() - 2;
    // 600 ids: the 64 largest are selected, then the rest sorted; 20,000: a second selection (4,096)
    for (const [n, spread, peaks] of [
      [600, 2, 0],
      [600, 1, 8],
      [20_000, 0.5, 0],
      [20_000, 2, 12],
    ] as const) {
      const row = new Float32Array(n).map(
        (_, i) => Math.round((gauss() * spread + (i % 97 === 0 ? peaks : 0)) * 4) / 4,
      );
      for (const p of [0.05, 0.5, 0.9, 0.99]) {
        const draws = createRng(n + p);
        const expected = fullSort(row, 0.8, p);
        for (let j = 0; j < 200; j++) {
          const u = draws();
          const picked = sampleToken(row, { temperature: 0.8, topP: p }, () => u);
          expect(picked, `${n} ids, spread ${spread}, top-p ${p}, u ${u}`).toBe(expected(u));
        }
      }
    }
  });

  it('top-k keeps every id tied with the k-th, as transformers does', () => {
    const rng = createRng(1);
    const picked = new Set<number>();
    for (let i = 0; i < 300; i++)
      picked.add(sampleToken(new Float32Array([1, 1, 1, 0]), { temperature: 1, topK: 2 }, rng));
    expect([...picked].sort()).toEqual([0, 1, 2]);
  });

  it('greedy skips NaN logits; several +Infinity ones are equally likely', () => {
    expect(sampleToken(new Float32Array([Number.NaN, 1, 3, 2]), {}, createRng(0))).toBe(2);
    expect(() =>
      sampleToken(new Float32Array([Number.NaN, Number.NEGATIVE_INFINITY]), {}, createRng(0)),
    ).toThrow(/no token can be picked/);
    const rng = createRng(5);
    const counts = [0, 0, 0];
    const row = new Float32Array([Number.POSITIVE_INFINITY, 0, Number.POSITIVE_INFINITY]);
    for (let i = 0; i < 2000; i++) counts[sampleToken(row, { temperature: 1 }, rng)]!++;
    expect(counts[1]).toBe(0);
    expect(Math.abs(counts[0]! - counts[2]!)).toBeLessThan(200);
    // and their log-probs: -log 2 each, -Infinity for the rest (not NaN)
    const lse = logSumExp(row);
    expect([0, 1, 2].map((id) => logProbAt(row, id, lse))).toEqual([
      -Math.log(2),
      Number.NEGATIVE_INFINITY,
      -Math.log(2),
    ]);
    expect(
      logProbAt(new Float32Array([0, Math.log(3)]), 1, logSumExp(new Float32Array([0, Math.log(3)]))),
    ).toBeCloseTo(Math.log(0.75), 6);
  });

  it('NaN logits have no probability in log-probs either: the other ids keep theirs', async () => {
    const row = new Float32Array([0, Number.NaN, Math.log(3)]);
    const lse = logSumExp(row);
    expect(lse).toBeCloseTo(Math.log(4), 6);
    expect(logProbAt(row, 2, lse)).toBeCloseTo(Math.log(0.75), 6);
    // a processor that writes one NaN: the picks skip it, and the log-probs are those of the rest
    const model = await tinyModel();
    const nan = {
      process: (logits: Float32Array) => {
        logits[5] = Number.NaN;
      },
    };
    const [r] = await model.generate('Hi', { maxNewTokens: 3, processors: [nan], logprobs: 2 });
    const ban = {
      process: (logits: Float32Array) => {
        logits[5] = Number.NEGATIVE_INFINITY;
      },
    };
    const [banned] = await model.generate('Hi', { maxNewTokens: 3, processors: [ban], logprobs: 2 });
    expect(r!.tokenIds).toEqual(banned!.tokenIds);
    expect(r!.logprobs).toEqual(banned!.logprobs);
  });

  it('a token forced to +Infinity by a processor has log-prob 0, its alternatives none', async () => {
    const model = await tinyModel();
    const force = {
      process: (logits: Float32Array) => {
        logits[7] = Number.POSITIVE_INFINITY;
      },
    };
    const [r] = await model.generate('Hi', { maxNewTokens: 2, processors: [force], logprobs: 3 });
    expect(r!.tokenIds).toEqual([7, 7]);
    expect(r!.logprobs!.map((l) => [l.logprob, l.top.map((t) => [t.id, t.logprob])])).toEqual([
      [0, [[7, 0]]],
      [0, [[7, 0]]],
    ]);
  });

  it('a logit bias beyond what float32 logits can carry is refused', async () => {
    const model = await tinyModel();
    await expect(model.generate('Hi', { logitBias: { 7: 1e39 } })).rejects.toThrow(
      `logitBias[7]: expected a number in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}]`,
    );
    const [r] = await model.generate('Hi', {
      maxNewTokens: 2,
      logitBias: { 7: MAX_LOGIT_BIAS },
      logprobs: 2,
    });
    expect(r!.tokenIds).toEqual([7, 7]);
    expect(r!.logprobs![0]!.logprob).toBe(0);
  });
});

/** The options of stream(), as an unknown option's error lists them (generate() has batchSize and onProgress too). */
const STREAM_OPTION_NAMES =
  'format, addBos, maxNewTokens, temperature, topK, topP, seed, ignoreEos, stop, rules, processors, logprobs, promptLogprobs, logitBias, trace, signal';

describe('option checks', () => {
  it('names the option for every malformed one', async () => {
    const model = await tinyModel();
    const cases: [object, RegExp][] = [
      [{ logprobs: '2' }, /logprobs: expected true, false or a number/],
      [{ processors: {} }, /processors: expected an array/],
      [{ processors: [{}] }, /processors\[0\] has no process\(logits, ctx\) method/],
      [{ signal: 'x' }, /signal: expected an AbortSignal/],
      [{ ignoreEos: 'no' }, /ignoreEos: expected true or false/],
      [{ trace: 1 }, /trace: expected true or false/],
      [{ onProgress: 'x' }, /onProgress: expected a function/],
      [{ topP: '0.9' }, /topP: expected a number in \(0, 1\], got "0.9"/],
      [{ temperature: '0.7' }, /temperature: expected a number >= 0, got "0.7"/],
      [{ logitBias: [5] }, /logitBias: expected an object of token id -> bias, got \[5\]/],
      // a misspelt option is refused, not ignored (top_p would sample with the default)
      [
        { top_p: 0.9 },
        /^top_p: not an option of generate\(\) \(did you mean topP\?\); its options are format, /,
      ],
      [{ max_new_tokens: 5 }, /max_new_tokens: .*did you mean maxNewTokens\?/],
      // a near miss too, as loadModel, the rules and the tokenizers tell them
      [{ temprature: 0.7 }, /^temprature: not an option of generate\(\) \(did you mean temperature\?\)/],
      [{ maxNewToken: 5 }, /^maxNewToken: .*\(did you mean maxNewTokens\?\)/],
      [{ repetitionPenalty: 1.2 }, /^repetitionPenalty: not an option of generate\(\); its options/],
    ];
    for (const [options, message] of cases) {
      await expect(model.generate('Hi', options as never), JSON.stringify(options)).rejects.toMatchObject({
        code: 'runtime.bad_option',
        message: expect.stringMatching(message),
      });
    }
    // stream() names itself: the caller never called generate()
    const streamed = async (options: object) => {
      for await (const _ of model.stream('Hi', options as never));
    };
    await expect(streamed({ top_p: 0.9 })).rejects.toMatchObject({
      code: 'runtime.bad_option',
      param: 'top_p',
      message: `top_p: not an option of stream() (did you mean topP?); its options are ${STREAM_OPTION_NAMES}`,
    });
    // generate()'s options of a list of prompts are refused, saying why (taken, they did nothing)
    const refused: [object, string][] = [
      [
        { batchSize: 2 },
        'batchSize: not an option of stream(), which decodes one prompt; generate() takes a list of prompts and decodes batchSize of them at once',
      ],
      [
        { onProgress: () => {} },
        'onProgress: not an option of stream(), whose parts are its progress (a token part per token, then finish); generate() takes a list of prompts and calls onProgress as each one is done',
      ],
    ];
    for (const [options, message] of refused) {
      const error = await streamed(options).catch((e) => e);
      expect(error).toBeInstanceOf(GenerationError);
      expect([error.code, error.param, error.message]).toEqual([
        'runtime.bad_option',
        Object.keys(options)[0],
        message,
      ]);
    }
    // and TypeScript refuses them (typecheck covers this file)
    // @ts-expect-error batchSize is not an option of stream()
    void (() => model.stream('Hi', { batchSize: 2 }));
    // @ts-expect-error onProgress is not an option of stream()
    void (() => model.stream('Hi', { onProgress: () => {} }));
    await expect(streamed([] as never)).rejects.toThrow(
      'options: expected an object of stream() options, got []',
    );
    for (const input of [null, 42, {}, { prompt: 'x' }]) {
      await expect(model.generate(input as never), JSON.stringify(input)).rejects.toMatchObject({
        code: 'runtime.bad_option',
        param: 'prompt',
        message: expect.stringMatching(/^prompt: expected a string, \{ instruction \}, \{ messages \}/),
      });
    }
  });

  it('a rules value refused by the rules package, or compiled for another vocabulary, is a bad option naming rules', async () => {
    const model = await tinyModel();
    const presets = `expected a preset (hewitt2024, hewitt2024-llama2-ids, hewitt2024-prose), "none", or rule names joined by "-" from eos, uniform, diversity, start (e.g. eos-uniform-diversity, uniform-diversity, eos-uniform, eos-diversity)`;
    const cases: [unknown, string][] = [
      ['hewit2024', `rules: unknown rule set "hewit2024" (did you mean "hewitt2024"?): ${presets}`],
      [{ eos: { rampLength: -1 } }, 'rules: eos.rampLength: expected a positive number, got -1'],
      [
        true,
        'rules: expected a rule-set name (a preset such as "hewitt2024", a subset such as "eos-uniform", or "none"), false, or a rule-set object, got true (for the paper\'s rules, pass "hewitt2024")',
      ],
    ];
    // a RuleSet compiled for another vocabulary: larger (its rows past the logits) or smaller (its ids
    // other tokens)
    const vocab = model.tokenizer.vocabulary;
    for (const size of [1000, 300]) {
      const other = { size, eosIds: vocab.eosIds, idsOf: () => [], surfaceOf: () => undefined };
      cases.push([
        compileRules('hewitt2024', other),
        `rules: a RuleSet compiled for a vocabulary of ${size} ids, but this model's tokenizer has 512; compile it with this model's (compileRules(spec, model.tokenizer.vocabulary)), or pass the spec`,
      ]);
    }
    // of the same size, another tokenizer's (Llama-2's and Mistral's 32,000): its texts at other ids
    const id = vocab.idsOf('\n')[0]!;
    const moved = {
      size: vocab.size,
      eosIds: vocab.eosIds,
      surfaceOf: (i: number) => vocab.surfaceOf(i),
      idsOf: (text: string) => (text === '\n' ? [id + 1] : vocab.idsOf(text)),
    };
    cases.push([
      compileRules('hewitt2024', moved),
      `rules: a RuleSet compiled for another vocabulary of 512 ids than this model's tokenizer (it found "\\n" at id ${id + 1}, and this vocabulary has it at id ${id}); compile it with this model's (compileRules(spec, model.tokenizer.vocabulary)), or pass the spec`,
    ]);
    for (const [rules, message] of cases) {
      const calls = [
        model.generate('Hi', { rules: rules as never }),
        (async () => {
          for await (const _ of model.stream('Hi', { rules: rules as never }));
        })(),
        model.score([{ prompt: 'Hi', continuation: 'x' }], { rules: rules as never }),
      ];
      for (const call of calls) {
        const error = await call.catch((e) => e);
        expect(error, message).toBeInstanceOf(GenerationError);
        expect([error.code, error.param, error.message]).toEqual(['runtime.bad_option', 'rules', message]);
        if (typeof rules !== 'object' || !RuleSet.isInstance(rules))
          expect(RuleConfigError.isInstance(error.cause)).toBe(true);
      }
    }
  });

  it('a format that is none is a bad option naming format, whatever the prompt, in generate, stream, score and prompt', async () => {
    const model = await tinyModel();
    const expected = (got: string) => [
      'runtime.bad_option',
      'format',
      `format: expected one of tulu, chat-template, raw, got ${got}`,
    ];
    // the tokenizer refused it (tokenizers.invalid_prompt) only for a prompt it built: a prompt
    // given as text or ids went ahead with it
    const inputs = [
      'Hi',
      { messages: [{ role: 'user' as const, content: 'Hi' }] },
      { text: 'Hi' },
      { promptIds: [1, 2] },
    ];
    for (const [format, got] of [
      ['xml', '"xml"'],
      ['Tulu', '"Tulu"'],
      [5, '5'],
      [null, 'null'],
    ] as const) {
      for (const input of inputs) {
        const options = { format: format as never, maxNewTokens: 1 };
        const calls = [
          model.generate(input, options),
          (async () => {
            for await (const _ of model.stream(input, options));
          })(),
          model.score([{ prompt: input, continuation: [3] }], { format: format as never }),
          (async () => model.prompt(input, format as never))(),
        ];
        for (const call of calls) {
          const error = await call.catch((e) => e);
          expect(error, `${format} ${JSON.stringify(input)}`).toBeInstanceOf(GenerationError);
          expect([error.code, error.param, error.message]).toEqual(expected(got));
        }
      }
    }
  });

  it('score(): its items and options are checked before anything runs, and its signal stops it', async () => {
    const model = await tinyModel();
    const cases: [unknown, object, RegExp][] = [
      ['x', {}, /^items: expected an array of \{ prompt, continuation \}, got "x"/],
      [[null], {}, /^items\[0\]: expected \{ prompt, continuation \}/],
      [
        [{ prompt: 'Hi', continuation: 5 }],
        {},
        /^items\[0\]\.continuation: expected text or an array of token ids, got 5/,
      ],
      [[{ prompt: 'Hi', continuation: 'x' }], { ranks: 'yes' }, /^ranks: expected true or false/],
      [[{ prompt: 'Hi', continuation: 'x' }], { top: 21 }, /^top: expected an integer in \[0, 20\], got 21/],
      [[{ prompt: 'Hi', continuation: 'x' }], { onProgress: 5 }, /^onProgress: expected a function/],
      [[{ prompt: 'Hi', continuation: 'x' }], { batch_size: 4 }, /did you mean batchSize\?/],
    ];
    for (const [items, options, message] of cases) {
      await expect(model.score(items as never, options as never), String(message)).rejects.toMatchObject({
        code: 'runtime.bad_option',
        message: expect.stringMatching(message),
      });
    }
    const items = PROMPTS.map((prompt) => ({ prompt, continuation: ' A long enough answer to score.' }));
    const controller = new AbortController();
    const batches: number[] = [];
    const scoring = model.score(items, {
      batchSize: 1,
      signal: controller.signal,
      onProgress: (done) => {
        batches.push(done);
        if (done === 2) controller.abort();
      },
    });
    await expect(scoring).rejects.toMatchObject({ code: 'runtime.aborted' });
    expect(batches).toEqual([1, 2]); // the third batch never ran
    await expect(model.score(items, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'runtime.aborted',
    });
  });

  it('load options: provider, dtype and threads are checked before anything runs', async () => {
    const dir = await diverseModelDir();
    const quiet = { log: () => {} };
    await expect(loadModel(dir, { ...quiet, executionProvider: 'bogus' as never })).rejects.toThrow(
      new RangeError('loadModel: executionProvider must be auto or one of cuda, cpu, got "bogus"'),
    );
    // before the directory is read (a hub id would be downloaded first), and as a RangeError from a
    // worker's load too
    await expect(loadModel('/no/such/model', { executionProvider: 'gpu' as never })).rejects.toThrow(
      new RangeError('loadModel: executionProvider must be auto or one of cuda, cpu, got "gpu"'),
    );
    const inWorker = loadModelInWorker(dir, { ...quiet, executionProvider: 'gpu' as never });
    await expect(inWorker).rejects.toBeInstanceOf(RangeError);
    await expect(inWorker).rejects.toThrow(
      'loadModelInWorker: executionProvider must be auto or one of cuda, cpu, got "gpu"',
    );
    await expect(loadModel(dir, { ...quiet, dtype: 'constructor' as never })).rejects.toMatchObject({
      code: 'runtime.bad_dtype',
    });
    await expect(loadModel(dir, { ...quiet, intraOpThreads: 1.5 })).rejects.toThrow(
      /intraOpThreads must be a whole number of threads/,
    );
    await expect(loadModel(dir, { ...quiet, onnxLogLevel: 'loud' as never })).rejects.toThrow(
      'loadModel: onnxLogLevel must be one of verbose, info, warning, error, fatal, got "loud"',
    );
  });

  it('load options: the default rules are a bad option naming rules, refused before the weights load', async () => {
    const presets = `expected a preset (hewitt2024, hewitt2024-llama2-ids, hewitt2024-prose), "none", or rule names joined by "-" from eos, uniform, diversity, start (e.g. eos-uniform-diversity, uniform-diversity, eos-uniform, eos-diversity)`;
    // a graph onnxruntime cannot parse: an error about the rules says they were checked before it
    const dir = mkdtempSync(join(tmpdir(), 'runtime-load-rules-'));
    cpSync(await diverseModelDir(), dir, { recursive: true });
    writeFileSync(join(dir, 'onnx', 'model.onnx'), 'not a graph');
    const cases: [string, unknown, string][] = [
      // before anything is read: the directory need not exist
      [
        join(dir, 'missing'),
        'hewit2024',
        `rules: unknown rule set "hewit2024" (did you mean "hewitt2024"?): ${presets}`,
      ],
      [
        join(dir, 'missing'),
        { eos: { rampLength: -1 } },
        'rules: eos.rampLength: expected a positive number, got -1',
      ],
      // checked against the tokenizer, before the session
      [dir, { eos: { ids: [600] } }, 'rules: eos.ids[0]: id 600 is outside the vocabulary [0, 512)'],
    ];
    try {
      for (const [model, rules, message] of cases) {
        for (const [call, load] of [
          ['loadModel', loadModel],
          ['loadModelInWorker', loadModelInWorker],
        ] as const) {
          const error = await load(model, { log: () => {}, rules: rules as never }).catch((e) => e);
          expect(error, `${call} ${message}`).toBeInstanceOf(GenerationError);
          expect([error.code, error.param, error.message]).toEqual([
            'runtime.bad_option',
            'rules',
            `${call}: ${message}`,
          ]);
          // an error of the worker's thread crosses as data, with its cause
          expect(error.cause).toBeInstanceOf(RuleConfigError);
          expect(`rules: ${error.cause.message}`).toBe(message);
        }
      }
      // the same rules on the graph itself: the graph's error
      await expect(loadModel(dir, { log: () => {}, rules: 'hewitt2024' })).rejects.toMatchObject({
        code: 'runtime.no_provider',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('load options: interOpThreads runs the graph in parallel execution mode, the only one that reads it', async () => {
    const dir = await diverseModelDir();
    const [expected] = await (await tinyModel()).generate(PROMPTS[0]!, { maxNewTokens: 8 });
    const create = vi.spyOn(ort.InferenceSession, 'create');
    try {
      for (const [interOpThreads, settings] of [
        [undefined, [undefined, undefined]],
        [0, [undefined, undefined]],
        [2, ['parallel', 2]],
      ] as const) {
        create.mockClear();
        const model = await loadModel(dir, { log: () => {}, interOpThreads });
        try {
          // before, interOpNumThreads went to a session in sequential mode, which ignores it
          const sessions = create.mock.calls.map(([, o]) => [o?.executionMode, o?.interOpNumThreads]);
          expect(sessions.length).toBeGreaterThan(0);
          for (const session of sessions) expect(session, `${interOpThreads}`).toEqual(settings);
          const [r] = await model.generate(PROMPTS[0]!, { maxNewTokens: 8 });
          expect(r!.tokenIds).toEqual(expected!.tokenIds);
        } finally {
          await model.dispose();
        }
      }
    } finally {
      create.mockRestore();
    }
  });

  it('a load that fails once the session is open frees it (a log that throws)', async () => {
    const dir = await diverseModelDir();
    const release = vi.spyOn(DecoderSession.prototype, 'release');
    try {
      // the last line DecoderSession.create logs, and the last loadModel does
      for (const line of ['execution provider: ', 'prompts prefilled ']) {
        release.mockClear();
        const boom = new Error(`log sink failed at "${line}"`);
        const log = (l: string) => {
          if (l.startsWith(line)) throw boom;
        };
        await expect(loadModel(dir, { log })).rejects.toBe(boom);
        // before, the session (and the weights it holds) stayed until the process exited
        expect(release, line).toHaveBeenCalledTimes(1);
      }
    } finally {
      release.mockRestore();
    }
  });

  it('load options: unknown names and wrong types are refused, naming the option meant', async () => {
    const dir = await diverseModelDir();
    const quiet = { log: () => {} };
    const load = (options: unknown) => loadModel(dir, options as LoadOptions);
    await expect(load({ ...quiet, maxBatch: 4 })).rejects.toThrow(
      /^loadModel: maxBatch: not an option of loadModel; its options are rules, maxBatchSize, /,
    );
    await expect(load({ ...quiet, max_batch_size: 4 })).rejects.toThrow(
      'loadModel: max_batch_size: not an option of loadModel (did you mean maxBatchSize?)',
    );
    await expect(load({ ...quiet, sliceLogits: 0 })).rejects.toThrow(
      new TypeError('loadModel: sliceLogits must be true or false, got 0'),
    );
    await expect(load({ ...quiet, offline: 'yes' })).rejects.toThrow(
      'offline must be true or false, got "yes"',
    );
    await expect(load({ log: 5 })).rejects.toThrow('loadModel: log must be a function (line) => void, got 5');
    await expect(load({ ...quiet, cacheDir: 1 })).rejects.toThrow(
      'loadModel: cacheDir must be a string, got 1',
    );
    await expect(load(null)).rejects.toThrow('loadModel: expected an object of load options, got null');
    // a numeric string is shown quoted, not as the number it looks like
    await expect(load({ ...quiet, maxBatchSize: '4' })).rejects.toThrow(
      'loadModel: maxBatchSize must be a whole number of rows, at least 1, got "4"',
    );
    await expect(load({ ...quiet, prefillChunk: Number.NaN })).rejects.toThrow('got NaN');
    await expect(loadModelInWorker(dir, { ...quiet, maxBatch: 4 } as LoadOptions)).rejects.toThrow(
      /^loadModelInWorker: maxBatch: not an option of loadModelInWorker/,
    );
    // options left undefined (a spread of optional fields) are no options given
    const model = await load({ ...quiet, maxBatchSize: undefined, rules: undefined });
    await model.dispose();
  });

  it('rule entries that match no token are logged once per rule set, not dropped in silence', async () => {
    const lines: string[] = [];
    const model = await loadModel(await diverseModelDir(), { log: (line) => lines.push(line) });
    const rules = { uniform: { entries: [{ text: 'Sure!!', score: 5 }] } };
    const base = await model.generate(PROMPTS[0]!, { maxNewTokens: 4, rules: false });
    const notes = () => lines.filter((l) => l.startsWith('rules '));
    expect(notes()).toEqual([]);
    const ruled = await model.generate(PROMPTS[0]!, { maxNewTokens: 4, rules });
    expect(ruled[0]!.tokenIds).toEqual(base[0]!.tokenIds); // the entry is left out, as the note says
    expect(notes()).toEqual([
      `rules given: 1 entry matches no token of this vocabulary and is left out: uniform "Sure!!" (${model.rules(rules)!.unresolved[0]!.reason})`,
    ]);
    await model.generate(PROMPTS[0]!, { maxNewTokens: 4, rules });
    expect(notes()).toHaveLength(1); // compiled once, noted once
    await model.dispose();
  });

  it('prompts: one kind at a time, scopeStart checked with or without rules, stream takes one', async () => {
    const model = await tinyModel();
    const bad = (param: string, message: string | RegExp) =>
      expect.objectContaining({
        name: 'GenerationError',
        code: 'runtime.bad_option',
        param,
        message: expect.stringMatching(message),
      });
    await expect(model.generate({ promptIds: [1, 5, 6], scopeStart: 99 })).rejects.toEqual(
      bad('scopeStart', /^scopeStart: expected an integer in \[0, 3\] .*, got 99$/),
    );
    await expect(
      model.generate({ promptIds: [1, 5, 6], scopeStart: 1.5 }, { rules: 'hewitt2024' }),
    ).rejects.toEqual(bad('scopeStart', /got 1\.5$/));
    expect(
      (await model.generate({ promptIds: [1, 5, 6], scopeStart: 3 }, { maxNewTokens: 1 }))[0]!.prompt
        .scopeStart,
    ).toBe(3);
    await expect(model.generate({ text: 'a', instruction: 'b' } as never)).rejects.toEqual(
      bad('prompt', 'give one of { instruction }, { text }, not both'),
    );
    await expect(model.generate({ text: 'a', instruction: 'b', promptIds: [1] } as never)).rejects.toEqual(
      bad('prompt', 'give one of { instruction }, { text }, { promptIds }, not several'),
    );
    await expect(model.generate('Hi', { stop: ['.', ''] })).rejects.toEqual(
      bad('stop', /^stop: stop\[1\] is empty/),
    );
    // a prompt buildPrompt built used to be generated from as { text } (raw), its scope start 0
    const built = model.tokenizer.buildPrompt({ format: 'tulu', instruction: 'Hi' });
    const builtMessage =
      'prompt: got a built prompt ({ ids, scopeStart, ... }, as tokenizer.buildPrompt returns), which would be read as raw text ' +
      'and lose its scope start: pass { promptIds: prompt.ids, scopeStart: prompt.scopeStart }';
    const refused = {
      name: 'GenerationError',
      code: 'runtime.bad_option',
      param: 'prompt',
      message: builtMessage,
    };
    await expect(model.generate(built as never)).rejects.toMatchObject(refused);
    await expect(model.score([{ prompt: built as never, continuation: 'x' }])).rejects.toMatchObject(refused);
    const [fromIds] = await model.generate(
      { promptIds: built.ids, scopeStart: built.scopeStart },
      { maxNewTokens: 1 },
    );
    expect(fromIds.prompt).toEqual({
      ids: built.ids,
      scopeStart: built.scopeStart,
      promptLength: built.promptLength,
    });
    // a list of chat messages is a batch of prompts, each message one: the message says so
    await expect(model.generate([{ role: 'user', content: 'Hi' }] as never)).rejects.toEqual(
      bad(
        'prompt',
        /^prompt: got a chat message \({"role":"user","content":"Hi"}\): a conversation is one prompt, { messages: \[\.\.\.\] } \(a list of prompts is a batch\)$/,
      ),
    );
    const stream = model.stream(['a', 'b'] as never);
    await expect(stream.next()).rejects.toEqual(bad('prompt', /stream\(\) takes one prompt, not a list/));
    await expect(model.generate('Hi', { topP: Number.NaN })).rejects.toEqual(bad('topP', /got NaN$/));
    await expect(model.generate('Hi', { maxNewTokens: '5' as never })).rejects.toEqual(
      bad('maxNewTokens', /^maxNewTokens: expected an integer >= 0, got "5"$/),
    );
  });

  it('one signal shared by 20 concurrent calls: one listener (no leak warning), and aborting stops them all', async () => {
    const model = await tinyModel();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      const calls = Array.from({ length: 20 }, () =>
        model.generate(PROMPTS[0]!, { maxNewTokens: 400, ignoreEos: true, signal: controller.signal }),
      );
      const streams = Array.from({ length: 3 }, () =>
        model.stream(PROMPTS[1]!, { maxNewTokens: 400, ignoreEos: true, signal: controller.signal }),
      );
      const firsts = await Promise.all(streams.map((s) => s.next()));
      expect(firsts.every((f) => !f.done)).toBe(true);
      controller.abort(new Error('enough'));
      for (const call of calls) await expect(call).rejects.toMatchObject({ code: 'runtime.aborted' });
      // parts pushed before the abort still come first, then the abort
      const rest = async (s: AsyncGenerator<unknown>) => {
        for (;;) if ((await s.next()).done) return 'finished';
      };
      for (const s of streams) await expect(rest(s)).rejects.toMatchObject({ code: 'runtime.aborted' });
      // a later call on the aborted signal fails at once
      await expect(model.generate(PROMPTS[0]!, { signal: controller.signal })).rejects.toMatchObject({
        code: 'runtime.aborted',
      });
      await new Promise((r) => setTimeout(r, 20)); // warnings are emitted on the next tick
      expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a second dispose() resolves once the model is released', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const pending = model.generate(PROMPTS[0]!, { maxNewTokens: 200, ignoreEos: true });
    await new Promise((r) => setTimeout(r, 20));
    const [a, b] = [model.dispose(), model.dispose()];
    await b;
    await expect(pending).rejects.toThrow(/disposed/);
    await a;
    await expect(model.generate('Hi')).rejects.toMatchObject({ code: 'runtime.released' });
  });
});

describeShared(
  'scoring text where it follows the prompt',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    let model: Model;
    beforeAll(async () => {
      const { dir } = await createTinyModel(tinyLlama2ModelOptions());
      model = await loadModel(dir, { log: () => {} });
    });
    afterAll(() => model?.dispose());

    it('a Llama-2 response is tokenized with its prompt, as ratio_eval.py does, not with a word-initial ▁', async () => {
      const prompt = model.prompt({ instruction: 'Name a prime.' });
      const ids = model.continuationIds(prompt, 'Seven is a prime number.');
      const pieces = ids.map((id) => model.tokenizer.idToToken(id));
      expect(pieces.slice(0, 2)).toEqual(['Se', 'ven']); // alone: ['▁Seven', ...]
      expect(
        model.tokenizer
          .encode('Seven', { addSpecialTokens: false })
          .map((id) => model.tokenizer.idToToken(id)),
      ).toEqual(['▁Seven']);
      expect(model.tokenizer.decode(ids)).toBe('Seven is a prime number.');
      const [scored] = await model.score([
        { prompt: { instruction: 'Name a prime.' }, continuation: 'Seven is a prime number.' },
      ]);
      expect(scored!.tokenIds).toEqual(ids);
    });

    it('generated text goes on from the prompt: a first ▁Paris is " Paris", streamed, stopped and in log-probs', async () => {
      const tok = model.tokenizer;
      const text = 'The capital of France is';
      const paris = tok.encode(`${text} Paris`, { addSpecialTokens: false }).at(-1)!;
      const is = tok.encode('is', { addSpecialTokens: false }).at(-1)!;
      expect([tok.idToToken(paris), tok.decode([paris])]).toEqual(['▁Paris', 'Paris']);
      const force = (ids: number[]) => ({
        process(logits: Float32Array, ctx: { step: number }) {
          logits.fill(Number.NEGATIVE_INFINITY);
          logits[ids[ctx.step] ?? ids.at(-1)!] = 0;
        },
      });
      const options = { maxNewTokens: 2, processors: [force([paris, is])], logprobs: 1 };
      const [out] = await model.generate({ text }, options);
      const full = tok.decode([...out!.prompt.ids, ...out!.tokenIds], { skipSpecialTokens: true });
      expect(out!.text).toBe(' Paris is');
      expect(`${text}${out!.text}`).toBe(full);
      expect(out!.logprobs!.map((l) => l.token)).toEqual([' Paris', ' is']);
      const deltas: string[] = [];
      for await (const part of model.stream({ text }, options))
        if (part.type === 'text-delta') deltas.push(part.text);
      expect(deltas.join('')).toBe(' Paris is');
      // a stop string with the space matches at the first token
      const [stopped] = await model.generate({ text }, { ...options, stop: [' Paris'] });
      expect([stopped!.text, stopped!.finishReason]).toEqual(['', 'stop']);
    });
  },
);

describe("onnxruntime's own log lines", () => {
  // onnxruntime writes from native code to the process's stderr: a child process holds it
  const loadIn = (dir: string, options: string) => {
    const dist = resolve(import.meta.dirname, '..', 'dist', 'index.js');
    const script = `const { loadModel } = await import(${JSON.stringify(dist)});
const model = await loadModel(${JSON.stringify(dir)}, { log: () => {}, ${options} });
await model.generate('Hi', { maxNewTokens: 2 });
await model.dispose();`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    return run.stderr;
  };

  it('by default none reach stderr; the patched graph gives no warning; onnxLogLevel info lets them through', async () => {
    const dir = await diverseModelDir();
    expect(loadIn(dir, '')).toBe('');
    // the split-attention patch adds only initializers its nodes read (an unused one is a warning)
    expect(loadIn(dir, "onnxLogLevel: 'warning'")).toBe('');
    expect(loadIn(dir, "onnxLogLevel: 'info'")).toMatch(/\[I:onnxruntime/);
  }, 60_000);
});

describe('a model without a chat template', () => {
  it("format 'chat-template' says how to give a template through generate(), not buildPrompt's option", async () => {
    const { dir: made } = await createTinyModel({ seed: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'runtime-no-template-'));
    try {
      cpSync(made, dir, { recursive: true });
      const configFile = join(dir, 'tokenizer_config.json');
      const { chat_template: _, ...config } = JSON.parse(readFileSync(configFile, 'utf8'));
      writeFileSync(configFile, JSON.stringify(config));
      rmSync(join(dir, 'chat_template.jinja'), { force: true });
      const model = await loadModel(dir, { log: () => {} });
      try {
        const refused = {
          name: 'PromptError',
          code: 'tokenizers.no_chat_template',
          message: `${dir} has no chat template (chat_template in tokenizer_config.json or chat_template.jinja); build the prompt with \`model.tokenizer.buildPrompt({ format: 'chat-template', template, messages })\` and generate from its ids (\`{ promptIds: ids, scopeStart }\`) or use format 'tulu'`,
        };
        await expect(model.generate('Hi', { format: 'chat-template' })).rejects.toMatchObject(refused);
        // what the message says works
        const { ids, scopeStart } = model.tokenizer.buildPrompt({
          format: 'chat-template',
          template: "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:",
          messages: [{ role: 'user', content: 'Hi' }],
        });
        const [out] = await model.generate({ promptIds: ids, scopeStart }, { maxNewTokens: 2 });
        expect(out.usage.promptTokens).toBe(ids.length);
      } finally {
        await model.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
