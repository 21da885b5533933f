import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { LogitsProcessorList, Tensor } from '@huggingface/transformers';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { describe, expect, it } from 'vitest';
import {
  GenerationAbortedError,
  GenerationError,
  generateWithoutCache,
  loadModel,
  MAX_LOGIT_BIAS,
  transformersRulesProcessor,
} from '../src/index.js';
import { diverseModelDir, PROMPTS, tinyModel, transformersGreedy, transformersModel } from './helpers.js';

describe('greedy decoding with the KV cache', () => {
  it.each([false, 'hewitt2024'] as const)(
    'equals the no-cache loop token for token (rules: %s)',
    async (rules) => {
      const model = await tinyModel();
      for (const prompt of PROMPTS) {
        const [cached] = await model.generate(prompt, { maxNewTokens: 40, rules });
        const reference = await generateWithoutCache(model, prompt, { maxNewTokens: 40, rules });
        expect(cached!.tokenIds).toEqual(reference);
        expect(new Set(reference).size).toBeGreaterThan(15); // a real sequence, not a loop
      }
    },
  );

  it.each([
    ['modelkit graph', {}, 'split'],
    ['repeat_kv as optimum exports it', { repeatKv: 'expand' }, 'grouped'],
    [
      'MatMul linears and repeat_kv, as optimum exports llama',
      { linear: 'matmul', repeatKv: 'expand' },
      'grouped',
    ],
    ['no position_ids input', { positionIds: false }, 'split'],
    [
      'a sliding window (Qwen2)',
      { modelType: 'qwen2', attentionBias: true, slidingWindow: 40, linear: 'matmul' },
      'split',
    ],
  ] as const)(
    'equals @huggingface/transformers generate() with the rules as its LogitsProcessor (%s)',
    async (_, graph, attention) => {
      const { dir } = await createTinyModel({ seed: 1, initScale: 10, ...graph });
      const model = await loadModel(dir, { log: () => {} });
      // the same graph with prompts prefilled 3 positions at a time (not under a sliding window)
      const chunked = await loadModel(dir, { log: () => {}, prefillChunk: 3 });
      expect(chunked.info.prefillChunk).toBe('slidingWindow' in graph ? 0 : 3);
      // every patch applied: logits only where needed, the cache in the engine's buffers, split attention
      expect([model.info.logitsMode, model.info.cacheMode, model.info.attention]).toEqual([
        'patched',
        'slots',
        attention,
      ]);
      const hf = await transformersModel(dir);
      try {
        for (const prompt of PROMPTS.slice(0, 3)) {
          const [ours] = await model.generate(prompt, { maxNewTokens: 32, rules: 'hewitt2024' });
          const p = ours!.prompt;
          const list = new LogitsProcessorList();
          list.push((await transformersRulesProcessor(model.rules('hewitt2024')!, p)) as never);
          const theirs = await transformersGreedy(hf, model, p.ids, 32, list);
          expect(ours!.tokenIds).toEqual(theirs);
          if (prompt === PROMPTS[0]) {
            // the same processor list again: a new generation, a new rule state (not the last one's)
            expect(await transformersGreedy(hf, model, p.ids, 32, list)).toEqual(theirs);
          }
          expect(theirs.length).toBeGreaterThan(10);
          const [inChunks] = await chunked.generate(prompt, { maxNewTokens: 32, rules: 'hewitt2024' });
          expect(inChunks!.tokenIds).toEqual(theirs);
        }
      } finally {
        await hf.dispose();
        await model.dispose();
        await chunked.dispose();
      }
    },
  );

  it('transformersRulesProcessor with one prompt per row: a left-padded transformers.js batch equals the engine', async () => {
    const dir = await diverseModelDir();
    const model = await tinyModel();
    const hf = await transformersModel(dir);
    try {
      const ours = await model.generate(PROMPTS, { maxNewTokens: 24, rules: 'hewitt2024' });
      const prompts = ours.map((o) => o.prompt);
      expect(new Set(prompts.map((p) => p.ids.length)).size).toBe(PROMPTS.length); // all lengths differ
      const width = Math.max(...prompts.map((p) => p.ids.length));
      const eos = model.info.eosIds;
      const ids: bigint[] = [];
      const mask: bigint[] = [];
      for (const p of prompts) {
        const pad = width - p.ids.length;
        ids.push(...Array<bigint>(pad).fill(BigInt(eos[0]!)), ...p.ids.map(BigInt));
        mask.push(...Array<bigint>(pad).fill(0n), ...p.ids.map(() => 1n));
      }
      const rows = prompts.length;
      const run = async (prompt: Parameters<typeof transformersRulesProcessor>[1]) => {
        const list = new LogitsProcessorList();
        list.push((await transformersRulesProcessor(model.rules('hewitt2024')!, prompt)) as never);
        const out = (await hf.generate({
          input_ids: new Tensor('int64', BigInt64Array.from(ids), [rows, width]),
          attention_mask: new Tensor('int64', BigInt64Array.from(mask), [rows, width]),
          max_new_tokens: 24,
          do_sample: false,
          logits_processor: list,
          eos_token_id: eos,
        })) as Tensor;
        const all = Array.from(out.data as BigInt64Array, Number);
        const L = out.dims[1]!;
        return prompts.map((_, b) => {
          const seq = all.slice(b * L + width, (b + 1) * L);
          const end = seq.findIndex((t) => eos.includes(t));
          return end < 0 ? seq : seq.slice(0, end + 1);
        });
      };
      expect(await run(prompts)).toEqual(ours.map((o) => o.tokenIds));
      // one prompt for rows of other lengths reads padding as prompt: not what the engine does. The
      // shortest row's first scores then penalize its padding (EOS) as a used token; the longest
      // row's (whose prompt it is) are the same.
      const firstScores = async (prompt: Parameters<typeof transformersRulesProcessor>[1]) => {
        const processor = (await transformersRulesProcessor(
          model.rules('hewitt2024')!,
          prompt,
        )) as unknown as {
          _call(ids: bigint[][], logits: Tensor): Tensor;
        };
        const V = model.info.vocabSize;
        const rowsIds = prompts.map((_, b) => ids.slice(b * width, (b + 1) * width));
        const logits = new Tensor('float32', new Float32Array(rows * V), [rows, V]);
        const data = processor._call(rowsIds, logits).data as Float32Array;
        return prompts.map((_, b) => Array.from(data.subarray(b * V, (b + 1) * V)));
      };
      const shortest = prompts.findIndex(
        (p) => p.ids.length === Math.min(...prompts.map((q) => q.ids.length)),
      );
      const longest = prompts.findIndex((p) => p.ids.length === width);
      const perRow = await firstScores(prompts);
      const shared = await firstScores(prompts[longest]!);
      expect(shared[longest]).toEqual(perRow[longest]);
      expect(shared[shortest]![eos[0]!]! - perRow[shortest]![eos[0]!]!).toBeCloseTo(-1.5, 5);
      await expect(run(prompts.slice(1))).rejects.toThrow(
        `transformersRulesProcessor: ${rows - 1} prompts given for a batch of ${rows} rows`,
      );
    } finally {
      await hf.dispose();
    }
  });

  it('batched rows (left-padded, finishing at different steps) equal their single-row runs', async () => {
    const model = await tinyModel();
    const lengths = new Set<number>();
    for (const rules of [false, 'hewitt2024'] as const) {
      const batched = await model.generate(PROMPTS, {
        maxNewTokens: 30,
        rules,
        batchSize: 4,
        stop: [' model'],
      });
      for (const r of batched) lengths.add(r.tokenIds.length);
      for (const [i, prompt] of PROMPTS.entries()) {
        const [single] = await model.generate(prompt, { maxNewTokens: 30, rules, stop: [' model'] });
        expect(batched[i]!.tokenIds).toEqual(single!.tokenIds);
        expect(batched[i]!.text).toBe(single!.text);
        expect(batched[i]!.finishReason).toBe(single!.finishReason);
      }
    }
    expect(lengths.size).toBeGreaterThan(1); // rows finished at different steps
  });
});

describe('output', () => {
  it('returns text, ids, finish reason and usage; the text is the decoded ids', async () => {
    const model = await tinyModel();
    const [r] = await model.generate('Give me a recipe for tiramisu.', { maxNewTokens: 12 });
    expect(r!.finishReason).toBe('length');
    expect(r!.tokenIds).toHaveLength(12);
    expect(r!.usage).toEqual({
      promptTokens: r!.prompt.ids.length,
      completionTokens: 12,
      totalTokens: r!.prompt.ids.length + 12,
    });
    expect(r!.text).toBe(model.tokenizer.decode(r!.tokenIds, { skipSpecialTokens: true }));
  });

  it('log-probs: the greedy token is the top alternative, and score() agrees to 1e-5', async () => {
    const model = await tinyModel();
    const [r] = await model.generate(PROMPTS[1]!, { maxNewTokens: 10, logprobs: 3, rules: 'hewitt2024' });
    for (const lp of r!.logprobs!) {
      expect(lp.top).toHaveLength(3);
      expect(lp.top[0]!.id).toBe(lp.id);
      expect(lp.top[0]!.logprob).toBeGreaterThanOrEqual(lp.top[1]!.logprob);
    }
    const [s] = await model.score([{ prompt: PROMPTS[1]!, continuation: r!.tokenIds }], {
      rules: 'hewitt2024',
      ranks: true,
      top: 3,
    });
    for (const [i, lp] of s!.logprobs.entries()) expect(lp).toBeCloseTo(r!.logprobs![i]!.logprob, 5);
    expect(s!.ranks).toEqual(r!.tokenIds.map(() => 1));
    // the alternatives are generation's, the chosen token's log-prob repeated exactly at its rank
    for (const [i, alts] of s!.top!.entries()) {
      expect(alts.map((a) => a.id)).toEqual(r!.logprobs![i]!.top.map((a) => a.id));
      // with their text, as generation names them
      expect(alts.map((a) => a.token)).toEqual(r!.logprobs![i]!.top.map((a) => a.token));
      for (const [k, a] of alts.entries()) expect(a.logprob).toBeCloseTo(r!.logprobs![i]!.top[k]!.logprob, 5);
      expect(alts[0]!.logprob).toBe(s!.logprobs[i]);
    }
    const [plain] = await model.score([{ prompt: PROMPTS[1]!, continuation: r!.tokenIds }]);
    expect(plain).not.toHaveProperty('top');
  });

  it('stop strings end the text before the stop string', async () => {
    const model = await tinyModel();
    const [full] = await model.generate(PROMPTS[0]!, { maxNewTokens: 40 });
    const text = full!.text;
    const stopAt = Math.floor(text.length / 2);
    const stop = text.slice(stopAt, stopAt + 3);
    const [cut] = await model.generate(PROMPTS[0]!, { maxNewTokens: 40, stop: [stop] });
    expect(cut!.finishReason).toBe('stop');
    expect(cut!.text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it('a stop string completed by the text held back at the token limit ends it as a stop', async () => {
    const model = await tinyModel();
    // a lone UTF-8 lead byte (0xC2): held back as a possible character start, flushed as U+FFFD at the end
    const lead = model.tokenizer.tokenToId('\u00c2')!;
    expect(Array.from(model.tokenizer.tokenBytes(lead))).toEqual([0xc2]);
    const forced = { maxNewTokens: 1, logitBias: { [lead]: MAX_LOGIT_BIAS } };
    const [plain] = await model.generate('Hi', forced);
    expect([plain!.tokenIds, plain!.text, plain!.finishReason]).toEqual([[lead], '\ufffd', 'length']);
    const [stopped] = await model.generate('Hi', { ...forced, stop: ['\ufffd'] });
    expect([stopped!.tokenIds, stopped!.text, stopped!.finishReason]).toEqual([[lead], '', 'stop']);
    const parts = [];
    for await (const part of model.stream('Hi', { ...forced, stop: ['\ufffd'] }))
      if (part.type !== 'token') parts.push(part);
    expect(parts).toEqual([
      {
        type: 'finish',
        finishReason: 'stop',
        text: '',
        usage: {
          promptTokens: stopped!.usage.promptTokens,
          completionTokens: 1,
          totalTokens: stopped!.usage.totalTokens,
        },
      },
    ]);
  });

  it('logit bias forces a token', async () => {
    const model = await tinyModel();
    const [r] = await model.generate(PROMPTS[0]!, { maxNewTokens: 5, logitBias: { 77: 100 } });
    expect(r!.tokenIds).toEqual([77, 77, 77, 77, 77]);
  });

  it('sampling is reproducible by seed; top-k 1 is greedy', async () => {
    const model = await tinyModel();
    const opts = { maxNewTokens: 20, temperature: 1.5, topP: 0.95 } as const;
    const [a] = await model.generate(PROMPTS[2]!, { ...opts, seed: 7 });
    const [b] = await model.generate(PROMPTS[2]!, { ...opts, seed: 7 });
    const [c] = await model.generate(PROMPTS[2]!, { ...opts, seed: 8 });
    expect(a!.tokenIds).toEqual(b!.tokenIds);
    expect(a!.tokenIds).not.toEqual(c!.tokenIds);
    const [greedy] = await model.generate(PROMPTS[2]!, { maxNewTokens: 20 });
    const [k1] = await model.generate(PROMPTS[2]!, { maxNewTokens: 20, temperature: 1, topK: 1, seed: 3 });
    expect(k1!.tokenIds).toEqual(greedy!.tokenIds);
  });

  it('bad options and prompts name the parameter', async () => {
    const model = await tinyModel();
    await expect(model.generate('x', { maxNewTokens: -1 })).rejects.toThrow(
      'maxNewTokens: expected an integer >= 0, got -1',
    );
    await expect(model.generate('x', { topP: 0 })).rejects.toThrow(
      'topP: expected a number in (0, 1], got 0',
    );
    await expect(model.generate('x', { temperature: Number.NaN })).rejects.toThrow(
      'temperature: expected a number >= 0',
    );
    await expect(model.generate('x', { logprobs: 21 })).rejects.toThrow(
      'logprobs: expected an integer in [0, 20], got 21',
    );
    // logit bias: token ids of this model and finite numbers
    const V = model.info.vocabSize;
    await expect(model.generate('x', { logitBias: { [V]: 1 } })).rejects.toThrow(
      `logitBias: key "${V}" is not a token id in [0, ${V}) for this model`,
    );
    await expect(model.generate('x', { logitBias: { 5: Number.NaN } })).rejects.toThrow(
      'logitBias[5]: expected a number in [-1000000, 1000000] (logits are float32; 1000000 already forces or bans a token), got NaN',
    );
    await expect(model.generate({ promptIds: [1, V] })).rejects.toMatchObject({
      code: 'runtime.bad_token',
      param: 'promptIds',
      message: `promptIds[1] is ${V}: token ids are integers in [0, ${V}) for this model`,
    });
    // in a list, the message says which prompt (promptIds[1] alone would not)
    await expect(model.generate(['x', { promptIds: [1, 2] }, { promptIds: [1, V] }])).rejects.toMatchObject({
      code: 'runtime.bad_token',
      param: 'promptIds',
      message: `inputs[2]: promptIds[1] is ${V}: token ids are integers in [0, ${V}) for this model`,
    });
    await expect(model.generate(['x', { messages: [] }])).rejects.toThrow(/^inputs\[1\]: /);
    // a value given as a string shows as one: "got 3" would name a valid value
    await expect(model.generate('x', { logitBias: { 5: '3' as never } })).rejects.toThrow(
      'logitBias[5]: expected a number in [-1000000, 1000000] (logits are float32; 1000000 already forces or bans a token), got "3"',
    );
    await expect(model.generate({ promptIds: [1, '5' as never] })).rejects.toThrow(
      `promptIds[1] is "5": token ids are integers in [0, ${V}) for this model`,
    );
    await expect(model.score([{ prompt: 'Hi', continuation: ['7' as never] }])).rejects.toThrow(
      `items[0].continuation[0] is "7": token ids are integers in [0, ${V}) for this model`,
    );
    // a string is no list of ids (its characters were refused one by one: 'promptIds[0] is a')
    await expect(model.generate({ promptIds: 'abc' as never })).rejects.toMatchObject({
      code: 'runtime.bad_option',
      param: 'promptIds',
      message: 'promptIds: expected an array of token ids, got "abc"',
    });
    // score(): options, empty prompts and token ids are checked before anything runs
    for (const batchSize of [0, -1, Number.NaN, 1.5]) {
      await expect(model.score([{ prompt: 'Hi', continuation: ' a' }], { batchSize })).rejects.toThrow(
        `batchSize: expected an integer in [1, 1024], got ${batchSize}`,
      );
    }
    await expect(model.score([{ prompt: { promptIds: [] }, continuation: [5, 6] }])).rejects.toMatchObject({
      code: 'runtime.empty_prompt',
      message: 'items[0].prompt has no tokens',
    });
    await expect(model.score([{ prompt: 'Hi', continuation: [5, V + 3] }])).rejects.toMatchObject({
      code: 'runtime.bad_token',
      param: 'items[0].continuation',
    });
    const long = 'word '.repeat(5000);
    const err = await model.generate(long).catch((e) => e);
    expect(err).toBeInstanceOf(GenerationError);
    expect(err.param).toBe('prompt');
    expect(err.message).toMatch(
      /the prompt has \d+ tokens; this model's context is \d+ \(max_position_embeddings\)/,
    );
  });
});

describe('streaming', () => {
  it('text deltas join to the text; token parts carry ids; one finish part ends it', async () => {
    const model = await tinyModel();
    const [r] = await model.generate(PROMPTS[3]!, { maxNewTokens: 25, rules: 'hewitt2024' });
    let text = '';
    const ids: number[] = [];
    const kinds: string[] = [];
    for await (const part of model.stream(PROMPTS[3]!, {
      maxNewTokens: 25,
      rules: 'hewitt2024',
      trace: true,
    })) {
      kinds.push(part.type);
      if (part.type === 'text-delta') text += part.text;
      if (part.type === 'token') {
        ids.push(part.id);
        expect(part.baseRank).toBeGreaterThanOrEqual(1);
      }
      if (part.type === 'finish') expect(part.text).toBe(r!.text);
    }
    expect(text).toBe(r!.text);
    expect(ids).toEqual(r!.tokenIds);
    expect(kinds.filter((k) => k === 'finish')).toHaveLength(1);
    expect(kinds.at(-1)).toBe('finish');
  });

  it('an AbortSignal stops decoding with GenerationAbortedError; breaking out stops it too', async () => {
    const model = await tinyModel();
    const controller = new AbortController();
    let tokens = 0;
    let late = 0;
    const run = async () => {
      for await (const part of model.stream(PROMPTS[0]!, { maxNewTokens: 500, signal: controller.signal })) {
        if (controller.signal.aborted) late++;
        if (part.type === 'token' && ++tokens === 3) controller.abort();
      }
    };
    await expect(run()).rejects.toBeInstanceOf(GenerationAbortedError);
    // no part comes after abort(), though the step after it may have been decoded already
    expect([tokens, late]).toEqual([3, 0]);
    let seen = 0;
    for await (const part of model.stream(PROMPTS[0]!, { maxNewTokens: 500 })) {
      if (part.type === 'token' && ++seen === 2) break;
    }
    expect(seen).toBe(2);
    // the model keeps working afterwards
    const [after] = await model.generate(PROMPTS[0]!, { maxNewTokens: 3 });
    expect(after!.tokenIds).toHaveLength(3);
  });
});

describe('profiling', () => {
  it('the profile option makes onnxruntime trace every run; endProfiling names the file once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'implicit-it-profile-'));
    const model = await loadModel(await diverseModelDir(), { log: () => {}, profile: join(dir, 'step') });
    try {
      await model.generate(PROMPTS.slice(0, 2), { maxNewTokens: 5, ignoreEos: true });
      const file = model.endProfiling();
      expect(dirname(file)).toBe(dir);
      expect(basename(file)).toMatch(/^step_.*\.json$/);
      const events = JSON.parse(readFileSync(file, 'utf8')) as {
        cat: string;
        name: string;
        args?: { op_name?: string };
      }[];
      // 3 runs of the split-attention check at load, then one prefill of both rows and 4 steps
      expect(events.filter((e) => e.cat === 'Session' && e.name === 'model_run')).toHaveLength(8);
      const ops = new Set(events.filter((e) => e.cat === 'Node').map((e) => e.args?.op_name));
      expect(ops).toContain('Softmax');
      expect(() => model.endProfiling()).toThrow(/not being profiled/);
    } finally {
      await model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
    const plain = await tinyModel();
    expect(() => plain.endProfiling()).toThrow(
      expect.objectContaining({ code: 'runtime.not_profiling', param: 'profile' }),
    );
  });
});
