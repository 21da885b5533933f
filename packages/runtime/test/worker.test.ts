import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTinyModel, SLOW_PREFILL_MODEL } from '@implicit-it/modelkit/test';
import { compileRules, ImplicitItError, RuleConfigError } from '@implicit-it/rules';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GenerationAbortedError,
  GenerationError,
  loadModel,
  loadModelInWorker,
  type Model,
  ModelLoadError,
  type StreamPart,
  type WorkerModel,
} from '../src/index.js';
import { diverseModelDir, PROMPTS } from './helpers.js';

// The worker runs the package's built script (dist/model-worker.js): `pnpm test` builds first.
let dir: string;
let here: Model;
let there: WorkerModel;
beforeAll(async () => {
  dir = await diverseModelDir();
  here = await loadModel(dir, { log: () => {} });
  there = await loadModelInWorker(dir, { log: () => {} });
});
afterAll(async () => {
  await here?.dispose();
  await there?.dispose();
});

const collect = async (parts: AsyncIterable<StreamPart>) => {
  const out: StreamPart[] = [];
  for await (const part of parts) out.push(part);
  return out;
};

describe('a model in a worker thread', () => {
  it('reports the same model as loadModel', () => {
    expect(there.info).toEqual(here.info);
    expect(there.files).toEqual(here.files);
    expect(there.tokenizer.size).toBe(here.tokenizer.size);
  });

  it.each([false, 'hewitt2024'] as const)(
    'generates what the model on this thread does (rules: %s)',
    async (rules) => {
      const options = { maxNewTokens: 24, rules, logprobs: 3, trace: true };
      const mine = await here.generate(PROMPTS, options);
      const theirs = await there.generate(PROMPTS, options);
      expect(theirs).toEqual(mine);
      expect(new Set(theirs[0]!.tokenIds).size).toBeGreaterThan(10);
    },
  );

  it('streams the same parts, with sampling, a compiled RuleSet and a chat prompt', async () => {
    const rules = compileRules('hewitt2024', here.tokenizer.vocabulary);
    const input = { messages: [{ role: 'user' as const, content: 'Name three colors.' }] };
    const options = { maxNewTokens: 20, temperature: 0.8, topP: 0.9, seed: 7, rules, logprobs: true };
    expect(await collect(there.stream(input, options))).toEqual(await collect(here.stream(input, options)));
  });

  it('prefills calls made together in one batch, as the model on this thread does', async () => {
    // three streams started in one tick (a server's concurrent choices): a row that joined the batch a
    // step later would be decoded in other kernel shapes, and its log-probs would differ in their last
    // float32 digits
    const options = { maxNewTokens: 12, rules: false as const, logprobs: 2 };
    const together = async (model: Model | WorkerModel) =>
      Promise.all(PROMPTS.slice(0, 3).map((p) => collect(model.stream(p, options))));
    const mine = await together(here);
    const theirs = await together(there);
    expect(theirs).toEqual(mine);
  });

  it('scores continuations as the model on this thread does', async () => {
    const items = PROMPTS.map((p, i) => ({
      prompt: { instruction: p },
      continuation: i % 2 ? 'Sure, here it is.' : [5, 6, 7],
    }));
    for (const rules of [false, 'hewitt2024'] as const) {
      const options = { rules, ranks: true, top: 2, batchSize: 2 };
      const scored = await there.score(items, options);
      expect(scored[0]!.top![0]).toHaveLength(2);
      expect(scored[0]!.top![0]![0]!.token).toBe(there.tokenizer.tokenText(scored[0]!.top![0]![0]!.id));
      expect(scored).toEqual(await here.score(items, options));
    }
  });

  it('refuses what cannot cross to the thread, naming the option', async () => {
    const processor = { process: () => {} };
    await expect(there.generate('Hi', { processors: [processor] })).rejects.toThrow(
      /^processors: logits processors are functions, which cannot be sent to the worker thread/,
    );
    const custom = compileRules('hewitt2024', here.tokenizer.vocabulary, {
      custom: [{ name: 'mine', score: () => {} }],
    });
    await expect(there.generate('Hi', { rules: custom })).rejects.toThrow(
      /^rules: a RuleSet with custom rules \(mine\) holds functions/,
    );
    // a custom-rule set runs on this thread's model
    await expect(here.generate('Hi', { rules: custom, maxNewTokens: 2 })).resolves.toHaveLength(1);
  });

  it('checks requests as loadModel does, with the same errors', async () => {
    const bad = [
      { maxNewTokens: -1 },
      { top_p: 0.5 } as object,
      { logitBias: { 999999: 1 } },
      { rules: 'hewit2024' },
      { format: 'xml' as never },
      // compiled for another vocabulary: its config alone crossed before, compiled there again
      {
        rules: compileRules('hewitt2024', {
          size: 300,
          eosIds: [0],
          idsOf: () => [],
          surfaceOf: () => undefined,
        }),
      },
    ];
    for (const options of bad) {
      const mine = (await here.generate('Hi', options).catch((e: Error) => e)) as Error;
      const theirs = (await there.generate('Hi', options).catch((e: Error) => e)) as Error;
      expect(theirs).toBeInstanceOf(GenerationError);
      const fields = (e: Error) => [
        e.constructor,
        e.message,
        (e as GenerationError).code,
        (e as GenerationError).param,
      ];
      expect(fields(theirs)).toEqual(fields(mine));
      // a refused rules option's cause is the rules package's error, on both
      const cause = (e: Error) => e.cause && fields(e.cause as Error);
      expect(cause(theirs)).toEqual(cause(mine));
    }
    await expect(collect(there.stream({ promptIds: [] }))).rejects.toThrow('the prompt has no tokens');
    await expect(collect(there.stream('Hi', { rules: 'hewit2024' }))).rejects.toMatchObject({
      code: 'runtime.bad_option',
      param: 'rules',
      message: expect.stringMatching(
        /^rules: unknown rule set "hewit2024" \(did you mean "hewitt2024"\?\): expected a preset \(hewitt2024, /,
      ),
    });
    // stream() names itself in an unknown option's error, here as on the thread
    for (const model of [here, there]) {
      await expect(collect(model.stream('Hi', { top_p: 0.5 } as object))).rejects.toThrow(
        /^top_p: not an option of stream\(\) \(did you mean topP\?\); its options are format, /,
      );
      await expect(collect(model.stream('Hi', { batchSize: 2 } as object))).rejects.toThrow(
        /^batchSize: not an option of stream\(\), which decodes one prompt; generate\(\) takes a list/,
      );
    }
  });

  it('stops a generation its signal aborts, with the signal reason, and goes on serving', async () => {
    const controller = new AbortController();
    const parts: StreamPart[] = [];
    const reason = new Error('client left');
    const run = (async () => {
      for await (const part of there.stream(PROMPTS[0]!, {
        maxNewTokens: 200,
        ignoreEos: true,
        signal: controller.signal,
      })) {
        parts.push(part);
        if (parts.filter((p) => p.type === 'token').length === 3) controller.abort(reason);
      }
    })();
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GenerationAbortedError);
    expect((error as Error).message).toBe('generation aborted: client left');
    expect((error as Error).cause).toBe(reason);
    // stopped long before its 200 tokens (the steps already under way when the abort crossed still come)
    expect(parts.filter((p) => p.type === 'token').length).toBeLessThan(100);
    // breaking out of the loop stops it too
    let n = 0;
    for await (const part of there.stream(PROMPTS[1]!, { maxNewTokens: 200, ignoreEos: true }))
      if (part.type === 'token' && ++n === 2) break;
    expect(there.load).toEqual({ queued: 0, decoding: 0 });
    const [again] = await there.generate(PROMPTS[2]!, { maxNewTokens: 8 });
    expect(again!.tokenIds).toEqual((await here.generate(PROMPTS[2]!, { maxNewTokens: 8 }))[0]!.tokenIds);
  });

  it('calls onProgress here, and a throwing one ends the call with its error', async () => {
    const seen: number[] = [];
    await there.generate(PROMPTS, { maxNewTokens: 4, batchSize: 1, onProgress: (done) => seen.push(done) });
    expect(seen).toEqual([1, 2, 3, 4]);
    const oops = new Error('stop here');
    await expect(
      there.generate(PROMPTS, {
        maxNewTokens: 4,
        batchSize: 1,
        onProgress: () => {
          throw oops;
        },
      }),
    ).rejects.toBe(oops);
  });

  it('keeps this thread free while the model runs', async () => {
    // the longest gap between ticks of a 5 ms timer while one 1,500-position prompt is prefilled whole
    // (about 40 GFLOP): on this thread onnxruntime holds it for the whole run, in the worker never
    const gapDuring = async (model: Model | WorkerModel) => {
      let last = performance.now();
      let gap = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        gap = Math.max(gap, now - last);
        last = now;
      }, 5);
      const ids = Array.from({ length: 1500 }, (_, i) => 3 + (i % 500));
      await model.generate({ promptIds: ids }, { maxNewTokens: 1 });
      clearInterval(timer);
      return Math.max(gap, performance.now() - last);
    };
    const { dir: larger } = await createTinyModel(SLOW_PREFILL_MODEL);
    const whole = await loadModel(larger, { log: () => {}, prefillChunk: 0 });
    const wholeThere = await loadModelInWorker(larger, { log: () => {}, prefillChunk: 0 });
    try {
      const blocked = await gapDuring(whole);
      const free = await gapDuring(wholeThere);
      expect(blocked).toBeGreaterThan(3 * free);
    } finally {
      await whole.dispose();
      await wholeThere.dispose();
    }
  });
});

describe('loading and disposing a model in a worker thread', () => {
  it('fails as loadModel does on a directory that is not a model', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'implicit-it-worker-'));
    try {
      writeFileSync(join(empty, 'config.json'), '{}');
      const mine = (await loadModel(empty, { log: () => {} }).catch((e: Error) => e)) as Error;
      const theirs = (await loadModelInWorker(empty, { log: () => {} }).catch((e: Error) => e)) as Error;
      expect(theirs).toBeInstanceOf(ModelLoadError);
      expect(theirs.message).toBe(mine.message);
      expect((theirs as ModelLoadError).file).toBe((mine as ModelLoadError).file);
      expect(ImplicitItError.isInstance(theirs)).toBe(true);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('fails a load the thread refuses with the error loadModel gives, its cause included', async () => {
    // checked against the tokenizer in the thread: an id past the vocabulary (512 ids)
    const rules = { eos: { ids: [9999] } };
    const mine = (await loadModel(dir, { log: () => {}, rules }).catch((e: Error) => e)) as GenerationError;
    const theirs = (await loadModelInWorker(dir, { log: () => {}, rules }).catch(
      (e: Error) => e,
    )) as GenerationError;
    expect(theirs).toBeInstanceOf(GenerationError);
    expect([theirs.code, theirs.param, theirs.message]).toEqual([
      'runtime.bad_option',
      'rules',
      'loadModelInWorker: rules: eos.ids[0]: id 9999 is outside the vocabulary [0, 512)',
    ]);
    expect(theirs.message).toBe(mine.message.replace(/^loadModel:/, 'loadModelInWorker:'));
    expect([mine.code, mine.param]).toEqual([theirs.code, theirs.param]);
    const cause = theirs.cause as RuleConfigError;
    expect(cause).toBeInstanceOf(RuleConfigError);
    expect([cause.name, cause.code, cause.path, cause.message]).toEqual([
      'RuleConfigError',
      'rules.invalid_config',
      'eos.ids[0]',
      'eos.ids[0]: id 9999 is outside the vocabulary [0, 512)',
    ]);
    const mineCause = mine.cause as RuleConfigError;
    expect([mineCause.constructor, mineCause.code, mineCause.path, mineCause.message]).toEqual([
      cause.constructor,
      cause.code,
      cause.path,
      cause.message,
    ]);
  });

  it('takes a compiled RuleSet as its default rules, as loadModel does', async () => {
    const rules = compileRules('hewitt2024', here.tokenizer.vocabulary);
    const mine = await loadModel(dir, { log: () => {}, rules });
    const theirs = await loadModelInWorker(dir, { log: () => {}, rules });
    try {
      const [expected] = await here.generate(PROMPTS[0]!, { maxNewTokens: 16, rules: 'hewitt2024' });
      const [base] = await here.generate(PROMPTS[0]!, { maxNewTokens: 16 });
      expect(expected!.tokenIds).not.toEqual(base!.tokenIds);
      expect(mine.rules()).toBe(rules);
      // the load option as given, on either kind of model (a server serves it as the model's default)
      expect(mine.defaultRules).toBe(rules);
      expect(theirs.defaultRules).toBe(rules);
      expect(there.defaultRules).toBeUndefined();
      expect((await mine.generate(PROMPTS[0]!, { maxNewTokens: 16 }))[0]!.tokenIds).toEqual(
        expected!.tokenIds,
      );
      expect((await theirs.generate(PROMPTS[0]!, { maxNewTokens: 16 }))[0]!.tokenIds).toEqual(
        expected!.tokenIds,
      );
    } finally {
      await mine.dispose();
      await theirs.dispose();
    }
  });

  it('refuses a compiled RuleSet of another vocabulary, and one with custom rules in a thread', async () => {
    const other = compileRules('hewitt2024', {
      size: 300,
      eosIds: [0],
      idsOf: () => [],
      surfaceOf: () => undefined,
    });
    for (const [load, call] of [
      [loadModel, 'loadModel'],
      [loadModelInWorker, 'loadModelInWorker'],
    ] as const)
      await expect(load(dir, { log: () => {}, rules: other })).rejects.toMatchObject({
        name: 'GenerationError',
        code: 'runtime.bad_option',
        param: 'rules',
        message: `${call}: rules: a RuleSet compiled for a vocabulary of 300 ids, but this model's tokenizer has 512; compile it with this model's (compileRules(spec, (await loadTokenizer(dir)).vocabulary)), or pass the spec`,
      });
    // custom rules are functions: they run on this thread's model, and cannot cross to a thread
    let called = 0;
    const custom = compileRules('hewitt2024', here.tokenizer.vocabulary, {
      custom: [{ name: 'mine', score: () => void called++ }],
    });
    const mine = await loadModel(dir, { log: () => {}, rules: custom });
    await mine.generate('Hi', { maxNewTokens: 2 });
    await mine.dispose();
    expect(called).toBeGreaterThan(0);
    const refused = (await loadModelInWorker(dir, { log: () => {}, rules: custom }).catch(
      (e) => e,
    )) as GenerationError;
    expect(refused).toBeInstanceOf(GenerationError);
    expect([refused.code, refused.param, refused.message]).toEqual([
      'runtime.bad_option',
      'rules',
      'loadModelInWorker: rules: a RuleSet with custom rules (mine) holds functions, which cannot be sent to the worker thread running this model; load it with loadModel to use them',
    ]);
    // as a request's RuleSet with custom rules is refused on a WorkerModel
    const request = (await there.generate('Hi', { rules: custom }).catch((e) => e)) as GenerationError;
    expect(refused.message).toBe(`loadModelInWorker: ${request.message}`);
  });

  it('fails the load, or the request that logged, with the error of a log that throws, as loadModel', async () => {
    const boom = new Error('log sink failed');
    const failing = (prefix: string) => (line: string) => {
      if (line.startsWith(prefix)) throw boom;
    };
    // the last line of a load
    await expect(loadModel(dir, { log: failing('prompts prefilled ') })).rejects.toBe(boom);
    await expect(loadModelInWorker(dir, { log: failing('prompts prefilled ') })).rejects.toBe(boom);
    // a request whose rule set has an entry that matches no token: its note goes to the log
    let on = false;
    const log = (line: string) => {
      if (on) failing('rules ')(line);
    };
    const mine = await loadModel(dir, { log });
    const theirs = await loadModelInWorker(dir, { log });
    on = true;
    try {
      for (const model of [mine, theirs]) {
        const entries = (text: string) => ({ uniform: { entries: [{ text, score: -1 }] } });
        await expect(model.generate('Hi', { maxNewTokens: 4, rules: entries('no such 1') })).rejects.toBe(
          boom,
        );
        const parts: StreamPart[] = [];
        const streamed = (async () => {
          for await (const part of model.stream('Hi', { maxNewTokens: 4, rules: entries('no such 2') }))
            parts.push(part);
        })();
        await expect(streamed).rejects.toBe(boom);
        expect(parts).toEqual([]);
        await expect(
          model.score([{ prompt: 'Hi', continuation: 'x' }], { rules: entries('no such 3') }),
        ).rejects.toBe(boom);
        // and goes on serving; the set was kept, so its note is not logged (nor thrown) again
        expect(await model.generate('Hi', { maxNewTokens: 2 })).toHaveLength(1);
        expect(await model.generate('Hi', { maxNewTokens: 2, rules: entries('no such 1') })).toHaveLength(1);
      }
    } finally {
      await mine.dispose();
      await theirs.dispose();
    }
  });

  it('notes the unresolved entries of a spec, not of a compiled RuleSet (its caller has them), as loadModel', async () => {
    const spec = {
      uniform: {
        entries: [
          { text: 'no such text', score: -1 },
          { text: '!', score: 1 },
        ],
      },
    };
    const noted: string[][] = [[], []];
    const mine = await loadModel(dir, { log: (line) => noted[0]!.push(line) });
    const theirs = await loadModelInWorker(dir, { log: (line) => noted[1]!.push(line) });
    try {
      const set = compileRules(spec, mine.tokenizer.vocabulary);
      expect(set.unresolved.map((u) => u.text)).toEqual(['no such text']);
      for (const [i, model] of [mine, theirs].entries()) {
        noted[i]!.length = 0;
        // a compiled set: generate, stream and score, twice
        for (let round = 0; round < 2; round++) {
          await model.generate('Hi', { maxNewTokens: 2, rules: set });
          for await (const _ of model.stream('Hi', { maxNewTokens: 2, rules: set }));
          await model.score([{ prompt: 'Hi', continuation: ' x' }], { rules: set });
        }
        expect(noted[i]).toEqual([]);
        // the same rules as a spec: noted once
        await model.generate('Hi', { maxNewTokens: 2, rules: spec });
        await model.generate('Hi', { maxNewTokens: 2, rules: spec });
        expect(noted[i]).toEqual([
          'rules given: 1 entry matches no token of this vocabulary and is left out: uniform "no such text" (no vocabulary item has the surface text "no such text")',
        ]);
      }
    } finally {
      await mine.dispose();
      await theirs.dispose();
    }
  });

  it('refuses bad load options before starting a thread, naming the call', async () => {
    await expect(loadModelInWorker(dir, { prefillChunk: -1 })).rejects.toThrow(
      'loadModelInWorker: prefillChunk must be a whole number of positions (0: no chunks), got -1',
    );
  });

  it('keeps a prefix cache in the thread: usage and figures come back with the results', async () => {
    const model = await loadModelInWorker(dir, { log: () => {}, prefixCache: 8 << 20 });
    expect(model.prefixCacheStats).toEqual({
      entries: 0,
      bytes: 0,
      maxBytes: 8 << 20,
      hits: 0,
      reusedTokens: 0,
    });
    const ids = Array.from({ length: 80 }, (_, i) => ((i * 31) % 400) + 5);
    const opts = { maxNewTokens: 6, rules: 'hewitt2024' } as const;
    await model.generate({ promptIds: ids.slice(0, 50), scopeStart: 0 }, opts);
    const [out] = await model.generate({ promptIds: ids, scopeStart: 0 }, opts);
    expect(out!.usage.cachedTokens).toBe(50);
    // the two prompts, each with its reply (the second did not go on as the first reply did)
    expect(model.prefixCacheStats).toMatchObject({ entries: 2, hits: 1, reusedTokens: 50 });
    const [fresh] = await here.generate({ promptIds: ids, scopeStart: 0 }, opts);
    expect(out!.tokenIds).toEqual(fresh!.tokenIds);
    expect(there.prefixCacheStats).toBeNull();
    // a stream's parts bring the figures too: its hit shows before it ends
    const parts = model.stream({ promptIds: [...ids, 7, 8], scopeStart: 0 }, { ...opts, maxNewTokens: 20 });
    for await (const _ of parts) {
      expect(model.prefixCacheStats).toMatchObject({ hits: 2, reusedTokens: 50 + 80 });
      break;
    }
    // emptied in the thread; the counters stay
    await model.clearPrefixCache();
    expect(model.prefixCacheStats).toMatchObject({ entries: 0, bytes: 0, hits: 2 });
    const [again] = await model.generate({ promptIds: ids, scopeStart: 0 }, opts);
    expect(again!.usage.cachedTokens).toBe(0);
    await model.dispose();
  });

  it('forwards the load log and ends running generations on dispose', async () => {
    const lines: string[] = [];
    const model = await loadModelInWorker(dir, { log: (line) => lines.push(line) });
    expect(lines.some((l) => l.startsWith('execution provider: cpu'))).toBe(true);
    const running = model.generate(PROMPTS[0]!, { maxNewTokens: 500, ignoreEos: true });
    await new Promise((r) => setTimeout(r, 50));
    const outcome = running.catch((e: Error) => e);
    await model.dispose();
    expect(await outcome).toBeInstanceOf(GenerationAbortedError);
    expect(((await outcome) as Error).message).toBe('generation aborted: the model was disposed');
    await expect(model.generate('Hi')).rejects.toThrow('this model was disposed');
  });
});
