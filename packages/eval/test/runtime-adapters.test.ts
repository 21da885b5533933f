import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, forceGreedyToken, randomWeights, resolveConfig } from '@implicit-it/modelkit';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { GenerationAbortedError, loadModel, type Model } from '@implicit-it/runtime';
import { describeShared, tinyLlama2ModelOptions } from '@implicit-it/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ContextLengthError,
  type Generator,
  generateRun,
  promptsOverContext,
  type RankSource,
  RunAbortedError,
  type RuntimeModel,
  rankResponses,
  runAblations,
  runtimeGenerator,
  runtimeRankSource,
  runtimeScorer,
  tokenShift,
} from '../src/index.js';
import { referenceAdapters } from './reference-model.js';

// The adapters on @implicit-it/runtime's real API, with modelkit models: a seeded tiny model and its
// forced-greedy twin (greedy next token always T), loaded by the runtime (onnxruntime-node, CPU).
// The runtime's numbers are cross-checked against modelkit's reference forward pass.

// type test: a runtime Model is a RuntimeModel
const _typeCheck = (m: Model): RuntimeModel => m;
void _typeCheck;

let root: string;
let base: Model;
let forced: Model;
let diverse: Model;
let refBase: Awaited<ReturnType<typeof referenceAdapters>>;
let refDiverse: Awaited<ReturnType<typeof referenceAdapters>>;
let T: number;
let tText: string;
const quiet = { log: () => {} };

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'eval-runtime-'));
  const config = resolveConfig({ preset: 'tiny' });
  const weights = randomWeights(config, 7);
  // modelkit's seeded weights times 10 (norms kept): greedy outputs are diverse instead of empty loops
  const diverseWeights = Object.fromEntries(
    Object.entries(weights).map(([name, t]) => [name, name.includes('norm') ? t : t.map((x) => x * 10)]),
  );
  const diverseDir = (
    await createModel({ preset: 'tiny', weights: diverseWeights, out: join(root, 'diverse') })
  ).dir;
  refDiverse = await referenceAdapters({ config, weights: diverseWeights }, diverseDir);
  diverse = await loadModel(diverseDir, quiet);
  const baseDir = (await createModel({ preset: 'tiny', weights, out: join(root, 'base') })).dir;
  refBase = await referenceAdapters({ config, weights }, baseDir);
  T = [...'!?#%&*+=@^~']
    .map((c) => refBase.encode(c))
    .find(
      (ids) => ids.length === 1 && refBase.encode(refBase.decode([ids[0]!, ids[0]!, ids[0]!])).length === 3,
    )![0]!;
  tText = refBase.decode([T]);
  const forcedDir = (
    await createModel({
      preset: 'tiny',
      weights: forceGreedyToken(config, weights, T),
      out: join(root, 'forced'),
    })
  ).dir;
  base = await loadModel(baseDir, quiet);
  forced = await loadModel(forcedDir, quiet);
}, 120_000);
afterAll(async () => {
  await base?.dispose();
  await forced?.dispose();
  await diverse?.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('runtime adapters (modelkit models on @implicit-it/runtime)', () => {
  it('runtimeGenerator: generateRun writes the forced model T-runs; the base model matches the reference greedy loop', async () => {
    const instructions = [
      { instruction: 'Say something.' },
      { instruction: 'Name a color.' },
      { instruction: 'Count to three, please.' },
    ];
    const forcedRun = await generateRun({
      generator: runtimeGenerator(forced),
      instructions,
      out: join(root, 'forced.json'),
      generatorName: 'forced',
      maxNewTokens: 5,
    });
    expect(forcedRun.outputs.map((o) => o.output)).toEqual(instructions.map(() => tText.repeat(5)));
    const baseRun = await generateRun({
      generator: runtimeGenerator(diverse),
      instructions,
      out: join(root, 'base.json'),
      generatorName: 'base',
      maxNewTokens: 6,
    });
    const reference = await refDiverse.generator.generateBatch(
      instructions.map((x) => x.instruction),
      { maxNewTokens: 6 },
    );
    expect(baseRun.outputs.map((o) => o.output)).toEqual(reference.map((r) => r.text.trim()));
    expect(baseRun.outputs.every((o) => o.output.length > 0)).toBe(true);
  }, 60_000);

  it('an aborted generateRun rejects with RunAbortedError between batches and within one alike; its journal resumes', async () => {
    const instructions = ['Say something.', 'Name a color.', 'Count to three.', 'Spell cat.'].map(
      (instruction) => ({ instruction }),
    );
    const settings = {
      instructions,
      generatorName: 'forced',
      maxNewTokens: 5,
      batchSize: 2,
      sortByLength: false,
    };
    // the outputs a journal holds: a header line, then one line per output
    const journaled = (file: string) =>
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((line) => (JSON.parse(line) as { i: number }).i);
    // between batches: the first batch is journaled, then the signal aborts before the second starts
    const between = join(root, 'abort-between.json');
    const stop = new AbortController();
    const reason = new Error('stopped by the user');
    const error = await generateRun({
      ...settings,
      generator: runtimeGenerator(forced),
      out: between,
      signal: stop.signal,
      onProgress: (p) => {
        if (p.done === 2) stop.abort(reason);
      },
    }).catch((e: unknown) => e);
    /** The error of an aborted run over `settings` whose first batch `out`'s journal keeps. */
    const abortedRun = (out: string) => ({
      name: 'RunAbortedError',
      code: 'eval.aborted',
      message: `generation aborted: stopped by the user; 2 of 4 outputs are kept in ${out}.journal.jsonl, from which the same call resumes`,
      cause: reason,
    });
    expect(RunAbortedError.isInstance(error)).toBe(true);
    expect(error).toMatchObject(abortedRun(between));
    // the finished batch is in the journal; nothing else is written
    expect(journaled(`${between}.journal.jsonl`)).toEqual([0, 1]);
    expect(existsSync(between)).toBe(false);
    expect(existsSync(`${between}.done`)).toBe(false);
    // within a batch: the runtime stops decoding and rejects with its own error, which generateRun
    // replaces with the same RunAbortedError (the runtime's error said nothing of the journal)
    const within = join(root, 'abort-within.json');
    const halt = new AbortController();
    const inner = runtimeGenerator(forced);
    let batches = 0;
    const aborting: Generator = {
      generateBatch(xs, o) {
        const decoding = inner.generateBatch(xs, o);
        if (++batches === 2) halt.abort(reason);
        return decoding;
      },
    };
    const midBatch = await generateRun({
      ...settings,
      generator: aborting,
      out: within,
      signal: halt.signal,
    }).catch((e: unknown) => e);
    expect(RunAbortedError.isInstance(midBatch)).toBe(true);
    expect(midBatch).toMatchObject(abortedRun(within));
    expect(journaled(`${within}.journal.jsonl`)).toEqual([0, 1]);
    // the runtime did stop within the batch: its generate() alone rejects with its own error
    const halted = new AbortController();
    const decoding = runtimeGenerator(forced).generateBatch(['Spell cat.'], {
      maxNewTokens: 5,
      signal: halted.signal,
    });
    halted.abort(reason);
    await expect(decoding).rejects.toBeInstanceOf(GenerationAbortedError);
    expect(existsSync(within)).toBe(false);
    // the same call without the abort resumes each: the first batch from the journal, the rest generated
    for (const out of [between, within]) {
      const resumed = await generateRun({ ...settings, generator: runtimeGenerator(forced), out });
      expect(resumed).toMatchObject({ resumed: 2, generated: 2 });
      expect(resumed.outputs.map((o) => o.output)).toEqual(instructions.map(() => tText.repeat(5)));
      expect(existsSync(`${out}.journal.jsonl`)).toBe(false);
      expect(existsSync(`${out}.done`)).toBe(true);
    }
    // aborted before it starts, without a reason: the same error, the DOMException its cause
    const early = join(root, 'abort-early.json');
    const never = new AbortController();
    never.abort();
    const before = await generateRun({
      ...settings,
      generator: runtimeGenerator(forced),
      out: early,
      signal: never.signal,
    }).catch((e: unknown) => e);
    expect(before).toMatchObject({
      code: 'eval.aborted',
      message: `generation aborted: This operation was aborted; 0 of 4 outputs are kept in ${early}.journal.jsonl, from which the same call resumes`,
      cause: never.signal.reason,
    });
    expect((before as Error).cause).toMatchObject({ name: 'AbortError' });
    expect(existsSync(early)).toBe(false);
  }, 60_000);

  it('runAblations, rankResponses and tokenShift reject with RunAbortedError wherever the abort lands', async () => {
    const reason = new Error('interrupted');
    const aborted = (message: string) => ({
      name: 'RunAbortedError',
      code: 'eval.aborted',
      message,
      cause: reason,
    });
    // runAblations between two subsets: the first is finished, the second not begun
    const instructions = [{ instruction: 'Say something.' }, { instruction: 'Name a color.' }];
    const outDir = join(root, 'abort-ablations');
    const stop = new AbortController();
    const ablations = {
      createGenerator: () => runtimeGenerator(forced),
      instructions,
      outDir,
      modelName: 'forced',
      subsets: ['none', 'eos-uniform'],
      maxNewTokens: 3,
    };
    const between = await runAblations({
      ...ablations,
      signal: stop.signal,
      onProgress: (p) => {
        if (p.label === 'none' && p.done === 2) stop.abort(reason);
      },
    }).catch((e: unknown) => e);
    expect(between).toMatchObject(
      aborted(
        'ablations aborted: interrupted; 1 of 2 subsets finished (none): the same call skips them and goes on with eos-uniform',
      ),
    );
    expect(existsSync(join(outDir, 'none.json'))).toBe(true);
    expect(existsSync(join(outDir, 'eos-uniform.json.journal.jsonl'))).toBe(false);
    // within a subset: generateRun's error, as it rejects alone
    const halt = new AbortController();
    const within = await runAblations({
      ...ablations,
      createGenerator: () => ({
        generateBatch(xs, o) {
          const decoding = runtimeGenerator(forced).generateBatch(xs, o);
          halt.abort(reason);
          return decoding;
        },
      }),
      signal: halt.signal,
    }).catch((e: unknown) => e);
    const journal = join(outDir, 'eos-uniform.json.journal.jsonl');
    expect(within).toMatchObject(
      aborted(
        `generation aborted: interrupted; 0 of 2 outputs are kept in ${journal}, from which the same call resumes`,
      ),
    );

    // tokenShift before its second batch (the first journaled), then within one: the runtime, given
    // the aborted signal as the batch starts, refuses to score with its own error
    const aligned = ['Say something.', 'Name a color.', 'Count to three.'].map((instruction) => ({
      instruction,
      output: tText.repeat(3),
    }));
    const shiftOut = join(root, 'abort-shift.json');
    const shifting = new AbortController();
    const shiftBetween = await tokenShift({
      base: runtimeRankSource(forced),
      aligned,
      batchSize: 2,
      out: shiftOut,
      signal: shifting.signal,
      onProgress: (p) => {
        if (p.done === 2) shifting.abort(reason);
      },
    }).catch((e: unknown) => e);
    const shiftKept = `2 of 3 outputs are kept in ${shiftOut}.journal.jsonl, from which the same call resumes`;
    expect(shiftBetween).toMatchObject(aborted(`token shift aborted: interrupted; ${shiftKept}`));
    const midShift = new AbortController();
    const abortingRanks: RankSource = {
      rankTokens(items, o) {
        midShift.abort(reason);
        return runtimeRankSource(forced).rankTokens(items, o);
      },
    };
    const shiftWithin = await tokenShift({
      base: abortingRanks,
      aligned,
      batchSize: 2,
      out: shiftOut,
      signal: midShift.signal,
    }).catch((e: unknown) => e);
    expect(shiftWithin).toMatchObject(aborted(`token shift aborted: interrupted; ${shiftKept}`));
    const shifted = await tokenShift({
      base: runtimeRankSource(forced),
      aligned,
      batchSize: 2,
      out: shiftOut,
    });
    expect(shifted.overall).toMatchObject({ tokens: 9, unshifted: 9 });

    // rankResponses: 4 examples a batch (12 items / 3); before its second batch, then within one
    // without a journal (no out), which the message says
    const data = [
      'Say hi.',
      'Name a color.',
      'Count to two.',
      'Greet me.',
      'Describe rain.',
      'Pick a number.',
    ].map((instruction, i) => ({ instruction, output: `answer ${i}` }));
    const rankOut = join(root, 'abort-rank.json');
    const ranking = { data, n: 6, negatives: 2, draw: 'distinct' as const, bootstrap: 10 };
    const rankStop = new AbortController();
    const rankBetween = await rankResponses({
      ...ranking,
      scorer: runtimeScorer(forced),
      out: rankOut,
      signal: rankStop.signal,
      onProgress: (p) => {
        if (p.done === 4) rankStop.abort(reason);
      },
    }).catch((e: unknown) => e);
    expect(rankBetween).toMatchObject(
      aborted(
        `ranking aborted: interrupted; 4 of 6 examples are kept in ${rankOut}.journal.jsonl, from which the same call resumes`,
      ),
    );
    const midRank = new AbortController();
    const rankWithin = await rankResponses({
      ...ranking,
      scorer: {
        scoreContinuations(items, o) {
          midRank.abort(reason);
          return runtimeScorer(forced).scoreContinuations(items, o);
        },
      },
      signal: midRank.signal,
    }).catch((e: unknown) => e);
    expect(rankWithin).toMatchObject(
      aborted(
        'ranking aborted: interrupted; nothing is kept (no journal: give out or journalPath to resume a stopped run)',
      ),
    );
  }, 60_000);

  it("format 'raw': the instruction is the whole prompt, in generation, scoring and the context check", async () => {
    const instruction = 'Once upon a time, the river';
    const [raw] = await runtimeGenerator(diverse, { format: 'raw' }).generateBatch([instruction], {
      maxNewTokens: 8,
    });
    const [direct] = await diverse.generate([{ text: instruction }], { maxNewTokens: 8 });
    expect(raw!.tokenIds).toEqual(direct!.tokenIds);
    const rawPrompt = diverse.prompt({ text: instruction });
    expect(rawPrompt.ids.length).toBeLessThan(diverse.prompt({ instruction }).ids.length); // no Tulu tags
    // scoring follows the raw prompt: the log-probs of the runtime's own score() on { text }
    const [scored] = await runtimeScorer(diverse, { format: 'raw', eos: false }).scoreContinuations([
      { instruction, response: ' flowed on' },
    ]);
    const [own] = await diverse.score([
      { prompt: { text: instruction }, continuation: diverse.continuationIds(rawPrompt, ' flowed on') },
    ]);
    expect(scored!.tokenLogprobs).toEqual(own!.logprobs);
    // the up-front context check counts the raw prompt's tokens
    const long = 'word '.repeat(600);
    expect(promptsOverContext(diverse, [instruction, long], { format: 'raw' })).toEqual([
      { index: 1, tokens: diverse.prompt({ text: long }).ids.length },
    ]);
  });

  it('runtimeScorer: log-probs equal the reference forward pass; ranking hand-count (5 wins, 20 ties of 30)', async () => {
    const items = [
      { instruction: 'Say hi.', response: 'hello world' },
      { instruction: 'Describe rain.', response: `${tText}${tText} drops` },
      { instruction: 'x', response: '' },
    ];
    // the paper's ratio_eval.py scores the response, then the end-of-sequence token
    const eos = base.tokenizer.eosIds[0]!;
    const ours = await runtimeScorer(base).scoreContinuations(items);
    const ref = await refBase.scorer.scoreContinuations(
      items.slice(0, 2).map((x) => ({ ...x, responseIds: [...refBase.encode(x.response), eos] })),
    );
    const bare = await runtimeScorer(base, { eos: false }).scoreContinuations(items);
    for (let i = 0; i < 2; i++) {
      expect(ours[i]!.tokenLogprobs.length).toBe(refBase.encode(items[i]!.response).length + 1);
      expect(ours[i]!.tokenLogprobs.length).toBe(ref[i]!.tokenLogprobs.length);
      for (const [k, lp] of ours[i]!.tokenLogprobs.entries())
        expect(lp).toBeCloseTo(ref[i]!.tokenLogprobs[k]!, 3);
      expect(bare[i]!.tokenLogprobs.length).toBe(ours[i]!.tokenLogprobs.length - 1);
      for (const [k, lp] of bare[i]!.tokenLogprobs.entries())
        expect(lp).toBeCloseTo(ours[i]!.tokenLogprobs[k]!, 5);
    }
    expect(ours[2]!.tokenLogprobs).toEqual([]); // an empty response has no tokens (and is not sent to the runtime)
    // ids that already end with the end-of-sequence token are scored as they are
    const withIds = await runtimeScorer(base).scoreContinuations([
      { ...items[0]!, responseIds: [...refBase.encode(items[0]!.response), eos] },
    ]);
    expect(withIds[0]!.tokenLogprobs.length).toBe(ours[0]!.tokenLogprobs.length);
    for (const [k, lp] of withIds[0]!.tokenLogprobs.entries())
      expect(lp).toBeCloseTo(ours[0]!.tokenLogprobs[k]!, 5);

    const data = [
      { instruction: 'Say something.', output: tText.repeat(6) },
      ...['Name a color.', 'Count to two.', 'Greet me.', 'Describe rain.', 'Pick a number.'].map(
        (instruction) => ({ instruction, output: 'hello world' }),
      ),
    ];
    const r = await rankResponses({
      scorer: runtimeScorer(forced),
      data,
      n: 6,
      negatives: 5,
      draw: 'distinct',
      bootstrap: 100,
    });
    expect(r.histogram).toEqual([5, 0, 0, 0, 0, 1]);
    expect(r).toMatchObject({ pairs: 30, wins: 5, ties: 20 });
  }, 60_000);

  it("runtimeScorer and runtimeRankSource hand the caller's abort signal to the model's scoring", async () => {
    // rankResponses and tokenShift pass theirs (the CLI's Ctrl-C); it was dropped, so a batch of long
    // continuations was scored to its end before the run stopped
    const items = [{ instruction: 'Say hi.', response: 'hello world' }];
    const signal = AbortSignal.abort(new Error('interrupted'));
    await expect(runtimeScorer(base).scoreContinuations(items, { signal })).rejects.toMatchObject({
      code: 'runtime.aborted',
      message: 'generation aborted: interrupted',
    });
    await expect(runtimeRankSource(base).rankTokens(items, { signal })).rejects.toMatchObject({
      code: 'runtime.aborted',
      message: 'generation aborted: interrupted',
    });
    // without one, the same items score
    expect(await runtimeScorer(base).scoreContinuations(items)).toHaveLength(1);
  });

  it('runtimeRankSource: a token that is part of a character shows its bytes (<0xC3>), not a U+FFFD every such token shares', async () => {
    const tok = base.tokenizer;
    const partial = Array.from({ length: tok.vocabulary.size }, (_, id) => id)
      .filter((id) => tok.tokenText(id) === '\ufffd')
      .slice(0, 3);
    expect(partial).toHaveLength(3);
    const ok = tok.encode('Hi')[0]!;
    const [ranked] = await runtimeRankSource(base).rankTokens([
      { instruction: 'Say something.', response: '', responseIds: [...partial, ok] },
    ]);
    const hex = (id: number) =>
      [...tok.tokenBytes(id)].map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).join('');
    expect(ranked!.tokens.map((t) => t.text)).toEqual([...partial.map(hex), tok.tokenText(ok)]);
    expect(new Set(ranked!.tokens.map((t) => t.text)).size).toBe(4);
    expect(ranked!.tokens[0]!.text).toMatch(/^(<0x[0-9A-F]{2}>)+$/);
  });

  it('runtimeRankSource: T-runs unshifted under the forced model; ranks equal the reference; base+rules vs base', async () => {
    const self = await tokenShift({
      base: runtimeRankSource(forced),
      aligned: [{ instruction: 'Say something.', output: tText.repeat(5) }],
    });
    expect(self.overall).toMatchObject({ tokens: 5, unshifted: 5 });
    const aligned = [{ instruction: 'Describe rain.', output: 'It falls from the sky.' }];
    const ours = await runtimeRankSource(base).rankTokens(
      aligned.map((a) => ({ instruction: a.instruction, response: a.output })),
    );
    const ref = await refBase.ranks.rankTokens(
      aligned.map((a) => ({ instruction: a.instruction, response: a.output })),
    );
    expect(ours[0]!.tokens.map((t) => [t.id, t.text])).toEqual(ref[0]!.tokens.map((t) => [t.id, t.text]));
    for (const [k, t] of ours[0]!.tokens.entries()) {
      expect(Math.abs(t.rank - ref[0]!.tokens[k]!.rank)).toBeLessThanOrEqual(1); // fp32 near-ties
    }
    // a generation's final end-of-sequence id is not one of the text's tokens: left out, as re-tokenizing would
    const ids = refBase.encode(aligned[0]!.output);
    const withEos = await runtimeRankSource(base).rankTokens([
      {
        instruction: aligned[0]!.instruction,
        response: aligned[0]!.output,
        responseIds: [...ids, base.tokenizer.eosIds[0]!],
      },
    ]);
    expect(withEos[0]!.tokens.map((t) => [t.id, t.rank])).toEqual(ours[0]!.tokens.map((t) => [t.id, t.rank]));

    // with the generated token ids kept, the base model's own greedy outputs are all its rank-1 tokens;
    // base+rules moves some of them
    const instructions = [
      'Give me a recipe for tiramisu.',
      'Write a poem about the sea.',
      'What is 2 + 2?',
    ].map((instruction) => ({ instruction }));
    const runs = await runAblations({
      createGenerator: (rules) => runtimeGenerator(diverse, { rules }),
      instructions,
      outDir: join(root, 'ablations'),
      modelName: 'tiny',
      subsets: ['none', 'eos-uniform-diversity'],
      maxNewTokens: 24,
      tokenIds: true,
    });
    const [none, rules] = runs.map((r) => r.outputs);
    const vsBase = await tokenShift({
      base: runtimeRankSource(diverse),
      aligned: none!,
      label: 'base vs base',
    });
    const rulesVsBase = await tokenShift({
      base: runtimeRankSource(diverse),
      aligned: rules!,
      label: 'rules vs base',
    });
    expect(none!.every((o) => o.token_ids && o.token_ids.length > 0)).toBe(true);
    expect(vsBase.overall.percent.unshifted).toBe(100);
    expect(rulesVsBase.overall.percent.unshifted).toBeLessThan(vsBase.overall.percent.unshifted);
    expect(rules).not.toEqual(none);
  }, 120_000);
});

describe('prompts built once', () => {
  /** `diverse`, counting the prompts it is asked to build from an instruction or a text. */
  const counting = () => {
    const built = { n: 0 };
    const model: RuntimeModel = {
      generate: (i, o) => diverse.generate(i, o),
      prompt: (i, f, o) => {
        built.n++;
        return diverse.prompt(i, f, o);
      },
      continuationIds: (p, t) => diverse.continuationIds(p as never, t),
      score: (items, o) => diverse.score(items, o),
      tokenizer: diverse.tokenizer,
      info: diverse.info,
    };
    return { model, built };
  };
  const items = [
    { instruction: 'Describe rain.', response: 'It falls from the sky.' },
    { instruction: 'Name a color.', response: 'Blue, like the sea.' },
  ];

  it('runtimeRankSource ranks after the prompts it is given, building none, as after those it builds', async () => {
    const { model, built } = counting();
    const own = await runtimeRankSource(model, { format: 'chat-template' }).rankTokens(items);
    // one prompt per item, built by the adapter (the runtime is handed its ids, and builds none)
    expect(built.n).toBe(2);
    const prompts = new Map(
      items.map((x) => [x.instruction, diverse.prompt({ instruction: x.instruction }, 'chat-template')]),
    );
    built.n = 0;
    const given = await runtimeRankSource(model, { format: 'chat-template', prompts }).rankTokens(items);
    expect(built.n).toBe(0);
    expect(given).toEqual(own);
    // the ranks of the runtime's own scoring of each instruction's prompt
    const [direct] = await diverse.score(
      [{ prompt: { instruction: items[0]!.instruction }, continuation: own[0]!.tokens.map((t) => t.id) }],
      { format: 'chat-template', ranks: true },
    );
    expect(own[0]!.tokens.map((t) => t.rank)).toEqual(direct!.ranks);
  });

  it('promptsOverContext counts the prompts it is given as they are', () => {
    const { model, built } = counting();
    const instructions = ['Hi.', 'Write a long story about the sea and its ships.'];
    const lengths = instructions.map((x) => diverse.prompt({ instruction: x }).ids.length);
    const short: RuntimeModel = { ...model, info: { maxPositions: lengths[1]! } };
    expect(promptsOverContext(short, instructions)).toEqual([{ index: 1, tokens: lengths[1] }]);
    expect(built.n).toBe(2);
    // a prompt given for the first instruction: counted, not built (one token short of the context)
    const prompts = new Map([
      [instructions[0]!, { ids: Array(lengths[1]! - 1).fill(0), text: '', scopeStart: 0 }],
    ]);
    built.n = 0;
    expect(promptsOverContext(short, instructions, { prompts })).toEqual([{ index: 1, tokens: lengths[1] }]);
    expect(built.n).toBe(1);
    prompts.set(instructions[0]!, { ids: Array(lengths[1]!).fill(0), text: '', scopeStart: 0 });
    expect(promptsOverContext(short, instructions, { prompts })).toEqual([
      { index: 0, tokens: lengths[1] },
      { index: 1, tokens: lengths[1] },
    ]);
  });
});

describe('inputs longer than the context', () => {
  /** The base model with its context cut to `context` tokens; `scored` counts calls of score(). */
  const shortContext = (context: number) => {
    const calls = { scored: 0 };
    const model: RuntimeModel = {
      generate: (i, o) => base.generate(i, o),
      prompt: (i, f) => base.prompt(i, f),
      continuationIds: (p, t) => base.continuationIds(p as never, t),
      score: (items, o) => {
        calls.scored++;
        return base.score(items, o);
      },
      tokenizer: base.tokenizer,
      info: { maxPositions: context },
    };
    return { model, calls };
  };

  it('promptsOverContext: prompts of as many tokens as the context or more, by index (tokenizing only)', () => {
    const instructions = ['Hi.', 'Write a long story about the sea and its ships.', 'Yes?'];
    const lengths = instructions.map((x) => base.prompt({ instruction: x }).ids.length);
    const long = lengths[1]!;
    expect(promptsOverContext(shortContext(long).model, instructions)).toEqual([{ index: 1, tokens: long }]);
    // one position left to generate in is enough: generation stops at the context (finish reason length)
    expect(promptsOverContext(shortContext(long + 1).model, instructions)).toEqual([]);
    expect(promptsOverContext(base, instructions)).toEqual([]); // the tiny preset's 512 positions
    // a model that names no context: nothing to check
    expect(promptsOverContext({ ...shortContext(1).model, info: {} }, instructions)).toEqual([]);
  });

  it('runtimeRankSource: a ContextLengthError naming the item before anything is scored', async () => {
    const items = [
      { instruction: 'Say hi.', response: 'hello' },
      { instruction: 'Describe rain.', response: 'It falls from the sky, drop by drop, all day long.' },
    ];
    const prompt = base.prompt({ instruction: items[1]!.instruction });
    const tokens = prompt.ids.length + base.continuationIds(prompt, items[1]!.response).length; // no EOS
    const { model, calls } = shortContext(tokens - 1);
    const error = await runtimeRankSource(model)
      .rankTokens(items)
      .catch((e: unknown) => e);
    expect(ContextLengthError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      code: 'eval.context_length',
      context: tokens - 1,
      overruns: [{ index: 1, tokens }],
      total: 2,
      message: `1 of the 2 responses of this batch do not fit in the model's context of ${tokens - 1} tokens after their prompt: the first, "It falls from the sky, drop by drop, all day long." after the instruction "Describe rain.", is ${tokens} tokens with its prompt`,
    });
    expect(calls.scored).toBe(0);
    await expect(runtimeRankSource(shortContext(tokens).model).rankTokens(items)).resolves.toHaveLength(2);
  });

  it('runtimeScorer cuts prompt + response at maxSeqLength (default 1024) and at the context, as ratio_eval.py', async () => {
    const items = [
      { instruction: 'Say hi.', response: 'hello' },
      { instruction: 'Describe rain.', response: 'It falls from the sky, drop by drop, all day long.' },
    ];
    const prompt = base.prompt({ instruction: items[1]!.instruction });
    const response = base.continuationIds(prompt, items[1]!.response).length + 1; // + EOS
    const whole = await runtimeScorer(base).scoreContinuations(items);
    expect(whole.map((s) => s.truncated)).toEqual([undefined, undefined]);
    expect(whole[1]!.tokenLogprobs).toHaveLength(response);
    const close = (a: number[], b: number[]) => {
      expect(a).toHaveLength(b.length);
      for (const [t, x] of a.entries()) expect(x).toBeCloseTo(b[t]!, 4);
    };
    // the context one token short of the whole: the EOS is cut, the rest scored as before
    const short = await runtimeScorer(
      shortContext(prompt.ids.length + response - 1).model,
    ).scoreContinuations(items);
    expect(short[1]!.truncated).toBe(1);
    close(short[1]!.tokenLogprobs, whole[1]!.tokenLogprobs.slice(0, -1));
    close(short[0]!.tokenLogprobs, whole[0]!.tokenLogprobs);
    // maxSeqLength 2 past the prompt: the first 2 tokens
    const two = await runtimeScorer(base, { maxSeqLength: prompt.ids.length + 2 }).scoreContinuations(items);
    expect(two[1]!.truncated).toBe(response - 2);
    close(two[1]!.tokenLogprobs, whole[1]!.tokenLogprobs.slice(0, 2));
    // none past the prompt: nothing scored (NaN in the ranking), as the reference's all-masked labels
    const none = await runtimeScorer(base, { maxSeqLength: prompt.ids.length }).scoreContinuations(items);
    expect(none[1]).toEqual({ tokenLogprobs: [], truncated: response });
    expect(() => runtimeScorer(base, { maxSeqLength: 1 })).toThrow(
      'maxSeqLength must be an integer of at least 2, got 1',
    );
    expect(() => runtimeScorer(base, { maxSeqLength: '1024' as unknown as number })).toThrow(
      'maxSeqLength must be an integer of at least 2, got "1024"',
    );
  });
});

describeShared(
  'response ranking on a Llama-2 tokenizer',
  ['fixtures/tokenizers/llama2/tokenizer.json'],
  () => {
    it('scores each response as tokenized after its prompt (ratio_eval.py), then the EOS', async () => {
      const { dir } = await createTinyModel(tinyLlama2ModelOptions());
      const model = await loadModel(dir, quiet);
      try {
        const seen: (string | readonly number[])[] = [];
        const spy: RuntimeModel = {
          generate: (i, o) => model.generate(i, o),
          prompt: (i, f) => model.prompt(i, f),
          continuationIds: (p, t) => model.continuationIds(p as never, t),
          score: (items, o) => {
            seen.push(...items.map((x) => x.continuation));
            return model.score(items, o);
          },
          tokenizer: model.tokenizer,
        };
        const [scored] = await runtimeScorer(spy).scoreContinuations([
          { instruction: 'Name a prime.', response: 'Seven is a prime number.' },
        ]);
        const pieces = [...(seen[0] as number[])].map((id) => model.tokenizer.idToToken(id));
        // alone, the response would begin '▁Seven': a token the model never sees after the prompt's newline
        expect(pieces).toEqual(['Se', 'ven', '▁is', '▁a', '▁prime', '▁number', '.', '</s>']);
        expect(scored!.tokenLogprobs).toHaveLength(8);
        // token-shift reports show each token as it reads in the text: '▁is' is ' is', not 'is'
        const [ranked] = await runtimeRankSource(model).rankTokens([
          { instruction: 'Name a prime.', response: 'Seven is a prime number.' },
        ]);
        expect(ranked!.tokens.map((t) => t.text)).toEqual([
          'Se',
          'ven',
          ' is',
          ' a',
          ' prime',
          ' number',
          '.',
        ]);
      } finally {
        await model.dispose();
      }
    });
  },
);
