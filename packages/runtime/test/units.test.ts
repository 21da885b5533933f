import { compileRules, createVocabulary, ImplicitItError, RuleConfigError } from '@implicit-it/rules';
import { describe, expect, it } from 'vitest';
import { maskRuns } from '../src/decode-engine.js';
import { halfToFloat } from '../src/float16.js';
import {
  createRng,
  GenerationAbortedError,
  GenerationError,
  ModelLoadError,
  rankOf,
  sampleToken,
  topEntries,
  transformersRulesProcessor,
} from '../src/index.js';
import { applyRules, RulesProcessor } from '../src/logits-processor.js';
import { StopMatcher } from '../src/stop-matcher.js';
import { errorData, errorFrom, MAX_CAUSES } from '../src/worker-protocol.js';

describe('StopMatcher', () => {
  it('holds back a possible stop-string prefix and cuts before the stop string', () => {
    const m = new StopMatcher(['\nUser:']);
    expect(m.push('Hello')).toEqual({ emit: 'Hello', stopped: false });
    expect(m.push(' there\nUs')).toEqual({ emit: ' there', stopped: false });
    expect(m.push('ually')).toEqual({ emit: '\nUsually', stopped: false });
    expect(m.push('\nUser: hi')).toEqual({ emit: '', stopped: true });
    expect(m.value).toBe('Hello there\nUsually');
  });
  it('finds a stop string split over several deltas and the earliest of several', () => {
    const m = new StopMatcher(['END', 'ND!']);
    expect(m.push('abcE').emit).toBe('abc');
    expect(m.push('N')).toEqual({ emit: '', stopped: false });
    expect(m.push('D!')).toEqual({ emit: '', stopped: true });
    expect(m.value).toBe('abc');
  });
  it('finish releases held text', () => {
    const m = new StopMatcher(['xyz']);
    m.push('abx');
    expect(m.finish()).toBe('x');
  });
});

describe('sampling', () => {
  const row = Float32Array.from([0.1, 3, 2.9, -1, 2.95]);
  it('topEntries and rankOf', () => {
    expect(topEntries(row, 3).map(([i]) => i)).toEqual([1, 4, 2]);
    expect([rankOf(row, 1), rankOf(row, 2), rankOf(row, 3)]).toEqual([1, 3, 5]);
  });
  it('topEntries: the k largest of a sort by value, the lower index first among equals, NaN left out', () => {
    const rng = createRng(7);
    for (let t = 0; t < 3000; t++) {
      const n = 1 + Math.floor(rng() * 30);
      const step = [0.5, 1, 1000][t % 3]!; // coarse steps make ties
      const values = Float32Array.from({ length: n }, () => {
        const u = rng();
        return u < 0.1
          ? Number.NaN
          : u < 0.2
            ? Number.NEGATIVE_INFINITY
            : Math.round((rng() - 0.5) * 4 * step) / step;
      });
      const sorted = [...values.entries()]
        .filter(([, v]) => !Number.isNaN(v))
        .sort(([i, a], [j, b]) => b - a || i - j);
      for (const k of [0, 1, 3, n, n + 2]) expect(topEntries(values, k)).toEqual(sorted.slice(0, k));
      expect(topEntries(values, 2.5)).toEqual(sorted.slice(0, 2));
    }
  });
  it('top-k sampling of a row with a NaN logit draws among the others', () => {
    // topEntries once listed the NaN last among the top 3, which made it the top-k floor and left no
    // candidate (sampleToken returned -1)
    const rng = createRng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++)
      seen.add(sampleToken(Float32Array.of(1, 2, Number.NaN, -3), { temperature: 1, topK: 3 }, rng));
    expect([...seen].sort()).toEqual([0, 1]);
  });
  it('greedy at temperature 0; seeded sampling follows the distribution', () => {
    expect(sampleToken(row, {}, createRng(1))).toBe(1);
    const rng = createRng(123);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleToken(row, { temperature: 1 }, rng)]!++;
    const z = [...row].reduce((a, v) => a + Math.exp(v), 0);
    for (const [i, c] of counts.entries()) expect(c / 20000).toBeCloseTo(Math.exp(row[i]!) / z, 1);
  });
  it('top-k and top-p restrict the candidates', () => {
    const rng = createRng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sampleToken(row, { temperature: 1, topK: 2 }, rng));
    expect([...seen].sort()).toEqual([1, 4]);
    seen.clear();
    for (let i = 0; i < 2000; i++) seen.add(sampleToken(row, { temperature: 1, topP: 0.3 }, rng));
    expect([...seen]).toEqual([1]);
  });
});

describe('float16', () => {
  it.each([
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x8000, -0],
    [0x7c00, Number.POSITIVE_INFINITY],
    [0x3555, 0.333251953125],
  ])('%s -> %s', (h, f) => expect(halfToFloat(h)).toBe(f));
});

describe('maskRuns', () => {
  it("gives the runs of a row's cached positions, in order", () => {
    expect(maskRuns([0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1])).toEqual([
      [2, 3],
      [6, 2],
      [10, 1],
    ]);
    expect(maskRuns([1, 1])).toEqual([[0, 2]]);
    expect(maskRuns([0, 0])).toEqual([]);
  });
});

describe('applyRules', () => {
  const surfaces = Array.from({ length: 4096 }, (_, i) => (i === 1 ? ' I' : i === 2 ? '\n' : `t${i}`));
  const rules = compileRules('hewitt2024', createVocabulary({ surfaces, eosIds: [0] }));
  const init = { promptIds: [5, 2, 7], scopeStart: 0, promptLength: 3 };

  /** Float32Arrays constructed while `f` runs. */
  const float32Made = (f: () => void) => {
    const Real = globalThis.Float32Array;
    let made = 0;
    globalThis.Float32Array = class extends Real {
      // biome-ignore lint/suspicious/noExplicitAny: the constructor's overloads
      constructor(...args: any[]) {
        super(...(args as []));
        made++;
      }
    } as Float32ArrayConstructor;
    try {
      f();
    } finally {
      globalThis.Float32Array = Real;
    }
    return made;
  };

  it('allocates nothing at a step whose logits cover the rules (the engine calls it every step and row)', () => {
    const row = new Float32Array(4096);
    const processor = new RulesProcessor(rules, init);
    const state = rules.createState(init);
    // a default parameter allocated a vocabulary-sized scratch row at every call
    expect(
      float32Made(() => {
        for (let step = 0; step < 8; step++) {
          processor.apply(row);
          applyRules(rules, row, state);
        }
      }),
    ).toBe(0);
    expect(row[2]).toBe(16 * (1 - 1.5)); // "\n" +1 and used (-1.5), at each of the 16 calls: the rules ran
  });

  it('scores a row narrower than the rules as if the missing ids were -Infinity', () => {
    const narrow = new Float32Array(4000);
    const full = new Float32Array(4096).fill(Number.NEGATIVE_INFINITY);
    full.fill(0, 0, 4000);
    applyRules(rules, narrow, rules.createState(init));
    rules.apply(full, rules.createState(init));
    expect(narrow).toEqual(full.subarray(0, 4000));
  });
});

describe('transformersRulesProcessor', () => {
  it('refuses a rule spec or a prompt it cannot use before transformers.js runs it', async () => {
    const rules = compileRules('hewitt2024', createVocabulary({ surfaces: ['</s>', ' I'], eosIds: [0] }));
    // a spec used to fail inside generate(): "rules.createState is not a function"
    await expect(
      transformersRulesProcessor('hewitt2024' as never, { scopeStart: 0, promptLength: 1 }),
    ).rejects.toThrow(
      new TypeError(
        `transformersRulesProcessor: rules must be a compiled RuleSet (compileRules(spec, tokenizer.vocabulary), or a model's model.rules(spec)), got "hewitt2024"`,
      ),
    );
    await expect(transformersRulesProcessor(rules, { scopeStart: 0 } as never)).rejects.toThrow(
      new TypeError(
        'transformersRulesProcessor: prompt must be { scopeStart, promptLength } (integers, as tokenizer.buildPrompt returns them), got {"scopeStart":0}',
      ),
    );
    await expect(
      transformersRulesProcessor(rules, [
        { scopeStart: 0, promptLength: 2 },
        { scopeStart: '1', promptLength: 2 },
      ] as never),
    ).rejects.toThrow(
      new TypeError(
        'transformersRulesProcessor: prompt[1] must be { scopeStart, promptLength } (integers, as tokenizer.buildPrompt returns them), got {"scopeStart":"1","promptLength":2}',
      ),
    );
    expect(await transformersRulesProcessor(rules, { scopeStart: 0, promptLength: 1 })).toHaveProperty(
      '_call',
    );
  });
});

describe('errors crossing the worker thread boundary (errorData, errorFrom)', () => {
  // what the worker posts is structured-cloned: a field that cannot be cloned would fail the post
  const crossed = (error: unknown) => errorFrom(structuredClone(errorData(error)));

  it('rebuilds the class, code, param, message and the cause chain', () => {
    const config = new RuleConfigError('eos.ids[0]', 'id 9999 is outside the vocabulary [0, 512)');
    const error = new GenerationError(
      'runtime.bad_option',
      `loadModelInWorker: rules: ${config.message}`,
      'rules',
      {
        cause: config,
      },
    );
    const back = crossed(error) as GenerationError;
    expect(back).toBeInstanceOf(GenerationError);
    expect([back.name, back.code, back.param, back.message]).toEqual([
      'GenerationError',
      'runtime.bad_option',
      'rules',
      'loadModelInWorker: rules: eos.ids[0]: id 9999 is outside the vocabulary [0, 512)',
    ]);
    const cause = back.cause as RuleConfigError;
    expect(cause).toBeInstanceOf(RuleConfigError);
    expect([cause.name, cause.code, cause.path, cause.message]).toEqual([
      'RuleConfigError',
      'rules.invalid_config',
      'eos.ids[0]',
      'eos.ids[0]: id 9999 is outside the vocabulary [0, 512)',
    ]);
    expect(Object.getOwnPropertyDescriptor(back, 'cause')?.enumerable).toBe(false);
    expect(cause.cause).toBeUndefined();
  });

  it('keeps the data fields of any error, leaves out what cannot cross, and bounds the chain', () => {
    const system = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {
      errno: -2,
      code: 'ENOENT',
      syscall: 'open',
      path: 'x',
      retry: () => {},
      at: new Date(0),
      info: { rows: [1, 2], note: null },
    });
    const back = crossed(
      new ModelLoadError('runtime.load_failed', 'x: cannot read', { file: 'x', cause: system }),
    );
    expect(back).toBeInstanceOf(ModelLoadError);
    expect((back as ModelLoadError).file).toBe('x');
    const cause = back.cause as Error & Record<string, unknown>;
    expect(cause).toBeInstanceOf(Error);
    expect(ImplicitItError.isInstance(cause)).toBe(false);
    expect(cause.message).toBe("ENOENT: no such file or directory, open 'x'");
    expect({ ...cause }).toEqual({
      name: 'Error',
      errno: -2,
      code: 'ENOENT',
      syscall: 'open',
      path: 'x',
      info: { rows: [1, 2], note: null },
    });
    // other implicit-it errors keep their name and code (isInstance holds); a cause that is a value stays one
    const other = Object.assign(new ImplicitItError('eval.bad_input', 'bad', { cause: 'why' }), {
      name: 'EvalInputError',
      file: 'a.jsonl',
    });
    const otherBack = crossed(other) as ImplicitItError & { file: string };
    expect([otherBack.name, otherBack.code, otherBack.file, otherBack.cause]).toEqual([
      'EvalInputError',
      'eval.bad_input',
      'a.jsonl',
      'why',
    ]);
    expect(ImplicitItError.isInstance(otherBack)).toBe(true);
    // a cycle ends after MAX_CAUSES causes
    const loop = new Error('loop');
    loop.cause = loop;
    let depth = 0;
    for (let e: unknown = crossed(loop); e instanceof Error; e = e.cause) depth++;
    expect(depth).toBe(MAX_CAUSES + 1);
  });

  it('rebuilds an abort with its reason', () => {
    const back = crossed(new GenerationAbortedError(new Error('the model was disposed')));
    expect(back).toBeInstanceOf(GenerationAbortedError);
    expect(back.message).toBe('generation aborted: the model was disposed');
    expect((back.cause as Error).message).toBe('the model was disposed');
  });
});
