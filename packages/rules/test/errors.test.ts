import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  ABLATIONS,
  argmax,
  compileRules,
  createVocabulary,
  eosBonus,
  HEWITT2024_UNIFORM,
  ImplicitItError,
  idVocabulary,
  meantOption,
  PRESETS,
  parseRuleSetConfig,
  productOfExperts,
  RULE_DEFAULTS,
  RULE_NAMES,
  RuleConfigError,
  RuleInputError,
  RuleSet,
  resolveRuleSpec,
  ruleSetJsonSchema,
  shownValue,
} from '../src/index.js';

const vocab = idVocabulary({ size: 100, eosIds: [2] });

const toSorted = (m: Map<number, number>) => [...m].sort((a, b) => a[0] - b[0]);

describe('bad rule specs', () => {
  it('an unknown preset names the valid choices', () => {
    expect(() => resolveRuleSpec('hewit2024')).toThrow(
      /unknown rule set "hewit2024" \(did you mean "hewitt2024"\?\): expected a preset \(hewitt2024, hewitt2024-llama2-ids, hewitt2024-prose\), "none"/,
    );
    expect(() => resolveRuleSpec('Hewitt2024')).toThrow('(did you mean "hewitt2024"?)');
    // a misspelt part of a subset: the subset with that part mended
    expect(() => resolveRuleSpec('eos-uniformm-start')).toThrow('(did you mean "eos-uniform-start"?)');
    expect(() => resolveRuleSpec('eos-uniformm')).toThrow('(did you mean "eos-uniform"?)');
    expect(() => resolveRuleSpec('paper')).toThrow(/^unknown rule set "paper": expected/);
    // a name with quotes is shown as JSON
    expect(() => resolveRuleSpec('{"eos":true}')).toThrow('unknown rule set "{\\"eos\\":true}"');
  });

  it('a spec that is neither a name, false nor an object says what a spec is', () => {
    expect(() => resolveRuleSpec(true as never)).toThrow(
      'expected a rule-set name (a preset such as "hewitt2024", a subset such as "eos-uniform", or "none"), false, or a rule-set object, got true (for the paper\'s rules, pass "hewitt2024")',
    );
    expect(() => resolveRuleSpec(['eos'] as never)).toThrow('or a rule-set object, got ["eos"]');
    expect(() => resolveRuleSpec('eos-eos')).toThrow('rule set "eos-eos" names eos twice');
  });

  it.each([
    [42, 'expected a rule-set object, got number 42'],
    [[], 'expected a rule-set object, got an empty array'],
    [[{ eos: true }], 'expected a rule-set object, got an array'],
    [{ eos: 'yes' }, 'eos: expected true, false or an options object, got "yes"'],
    [{ eos: { rampLength: -3 } }, 'eos.rampLength: expected a positive number, got -3'],
    [{ eos: { rampLength: 2.5 } }, 'eos.rampLength: expected an integer, got 2.5'],
    [{ eos: { maxBonus: '15' } }, 'eos.maxBonus: expected a finite number, got "15"'],
    [{ eos: { afterRamp: 'keep' } }, 'eos.afterRamp: expected one of "zero", "hold", got "keep"'],
    [{ eos: { ids: [] } }, 'eos.ids: expected a non-empty array of ids, got an empty array'],
    [{ eos: { ids: [-1] } }, 'eos.ids[0]: expected at least 0, got -1'],
    [{ eos: { ids: [2, 'x'] } }, 'eos.ids[1]: expected a finite number, got "x"'],
    [{ eos: { ids: [2, undefined] } }, 'eos.ids[1]: expected an id, got undefined'],
    [{ used: { scope: 'all' } }, 'used.scope: expected one of "conversation", "response", got "all"'],
    [{ used: { penalty: null } }, 'used.penalty: expected a finite number, got null'],
    [
      { used: { penalty: -1e39 } },
      'used.penalty: expected a number in [-1e6, 1e6] (it is added to float32 logits), got -1e+39',
    ],
    [
      { eos: { maxBonus: 1e308 } },
      'eos.maxBonus: expected a number in [-1e6, 1e6] (it is added to float32 logits), got 1e+308',
    ],
    [{ uniform: { entries: [{ text: 'x' }] } }, 'uniform.entries[0].score: required'],
    [{ uniform: { entries: [{ score: 1 }] } }, 'uniform.entries[0]: expected "text" or "id"'],
    // a misspelt text or id is named, not only missed
    [
      { uniform: { entries: [{ txt: ' I', score: -5 }] } },
      'uniform.entries[0].txt: unknown field; expected one of text, id, score (did you mean "text"?)',
    ],
    [
      { uniform: { entries: [{ token: ' I', score: -5 }] } },
      'uniform.entries[0].token: unknown field; expected one of text, id, score',
    ],
    [
      { uniform: { entries: [{ id: 1, score: 1, text: 5 }] } },
      'uniform.entries[0].text: expected a non-empty string, got number 5',
    ],
    [
      { uniform: { entries: [{ id: 1, score: 1, txt: 'x' }] } },
      'uniform.entries[0].txt: unknown field; expected one of id, score, text (did you mean "text"?)',
    ],
    [
      { uniform: { entries: [{ text: '', score: 1 }] } },
      'uniform.entries[0].text: expected a non-empty string, got ""',
    ],
    [{ eso: true }, 'eso: unknown field; expected one of eos, uniform, used, start (did you mean "eos"?)'],
    [{ colour: true }, 'colour: unknown field; expected one of eos, uniform, used, start'],
    [
      { diversity: true },
      'diversity: unknown field; expected one of eos, uniform, used, start (the used-token rule ("diversity" in the reference code and in subset names) is the field "used")',
    ],
    [
      { eos: { ramp_length: 100 } },
      'eos.ramp_length: unknown field; expected one of rampLength, maxBonus, afterRamp, ids (did you mean "rampLength"?)',
    ],
    [
      { uniform: { entries: { text: 'x', score: 1 } } },
      'uniform.entries: expected an array of {text, score} or {id, score}, got an object {"text":"x","score":1}',
    ],
    [
      { start: { weigth: 2 } },
      'start.weigth: unknown field; expected one of weight, exclamationBonus, newlinePenalty (did you mean "weight"?)',
    ],
  ])('%j -> %s', (input, message) => {
    const run = () => parseRuleSetConfig(input);
    expect(run).toThrow(RuleConfigError);
    expect(run).toThrow(message);
  });

  it('a compiled RuleSet where a spec is expected says what it got and what is taken, not "vocabSize: unknown field"', () => {
    const set = compileRules('hewitt2024', vocab);
    const message =
      'got a compiled RuleSet where a rule spec is expected (a preset or subset name such as "hewitt2024", false, or a rule-set object such as {"eos":true}): pass the spec it was compiled from, or give the RuleSet where a compiled one is taken';
    for (const run of [
      () => resolveRuleSpec(set as never),
      () => compileRules(set as never, vocab),
      () => parseRuleSetConfig(set),
    ]) {
      expect(run).toThrow(RuleConfigError);
      expect(run).toThrow(message);
    }
    // its config is a spec
    expect(compileRules(set.config, vocab).enabled).toEqual(set.enabled);
  });

  it('the path of a bad EOS id names the list item, as the API reports it', () => {
    expect(() => parseRuleSetConfig({ eos: { ids: [2, 2.5] } })).toThrow(
      expect.objectContaining({ path: 'eos.ids[1]' }),
    );
  });

  it('errors carry a path, a stable code and work with isInstance', () => {
    try {
      parseRuleSetConfig({ used: { scope: 1 } });
      expect.unreachable();
    } catch (e) {
      expect(ImplicitItError.isInstance(e)).toBe(true);
      expect((e as RuleConfigError).path).toBe('used.scope');
      expect((e as RuleConfigError).code).toBe('rules.invalid_config');
      expect((e as Error).name).toBe('RuleConfigError');
    }
  });

  it('ids out of range in a config name the entry', () => {
    expect(() => compileRules({ uniform: { entries: [{ id: 100, score: 1 }] } }, vocab)).toThrow(
      'uniform.entries[0].id: id 100 is outside the vocabulary [0, 100)',
    );
    expect(() => compileRules({ eos: { ids: [7, 500] } }, vocab)).toThrow(
      'eos.ids[1]: id 500 is outside the vocabulary',
    );
  });

  it('unresolvable surface text is reported, not guessed', () => {
    const v = createVocabulary({ surfaces: ['</s>', '!', '\n'], eosIds: [0] });
    const set = compileRules('hewitt2024', v);
    expect(set.unresolved.map((u) => u.text)).toEqual([
      '<',
      ' <',
      '|',
      ' I',
      'I',
      ' We',
      'What',
      ' should',
      ' *',
      ' -',
      '   ',
      ' #',
      ' ##',
    ]);
    expect(set.unresolved[10]).toEqual({
      rule: 'uniform',
      text: '   ',
      reason: 'no vocabulary item has the surface text "   "',
    });
  });
});

describe('bad per-sequence input', () => {
  const rules = compileRules('hewitt2024-llama2-ids', idVocabulary({ size: 32000, eosIds: [2] }));
  it.each([
    [{ promptIds: [1, 2], scopeStart: -1 }, 'scopeStart must be an integer in [0, promptLength=2], got -1'],
    [{ promptIds: [1, 2], scopeStart: 3 }, 'scopeStart must be an integer in [0, promptLength=2], got 3'],
    [
      { promptIds: [1, 2], scopeStart: 0, promptLength: -1 },
      'promptLength must be a non-negative integer, got -1',
    ],
    [
      { promptIds: [1, 2], scopeStart: 0, promptLength: 5 },
      'promptLength 5 is larger than the 2 prompt ids given',
    ],
    [
      { promptIds: [1, 32000], scopeStart: 0 },
      'promptIds[1] = 32000 is outside the vocabulary [0, 32000): tokenize the prompt with the tokenizer whose vocabulary the rules were compiled against',
    ],
    [
      { promptIds: [1, 32000, 5], scopeStart: 0, promptLength: 2 },
      'promptIds[1] = 32000 is outside the vocabulary [0, 32000)',
    ],
    [
      { promptIds: [1, 2.5], scopeStart: 0 },
      'promptIds[1]: a token id is a non-negative integer below 2^31, got 2.5',
    ],
    [
      { promptIds: [1, 2, -3], scopeStart: 0, promptLength: 2 },
      'promptIds[2]: a token id is a non-negative integer below 2^31, got -3',
    ],
  ])('%j -> %s', (init, message) => {
    expect(() => rules.createState(init)).toThrow(RuleInputError);
    expect(() => rules.createState(init)).toThrow(message);
  });

  it('createState refuses a field it does not know (a misspelt promptLength) and a null length', () => {
    expect(() => rules.createState({ promptIds: [1, 2], scopeStart: 0, prompt_length: 1 } as never)).toThrow(
      'createState: unknown field "prompt_length" (did you mean "promptLength"?); expected promptIds, scopeStart, promptLength',
    );
    expect(() =>
      rules.createState({ promptIds: [1, 2], scopeStart: 0, promptLength: null } as never),
    ).toThrow('promptLength must be a non-negative integer, got null');
    expect(() => rules.createState({ promptIds: [1, 2], scopeStart: '1' } as never)).toThrow(
      'scopeStart must be an integer in [0, promptLength=2], got "1"',
    );
    expect(() => rules.createState({ promptIds: [1, 2 ** 31], scopeStart: 0 })).toThrow(
      'promptIds[1]: a token id is a non-negative integer below 2^31, got 2147483648',
    );
  });

  it('bigint ids anywhere in the prompt, and appended, are read as numbers', () => {
    const mixed = rules.createState({ promptIds: [1, 306n, 13] as never, scopeStart: 0 });
    mixed.append(29902n);
    const plain = rules.createState({ promptIds: [1, 306, 13], scopeStart: 0 });
    plain.append(29902);
    expect(mixed.responseIds()).toEqual([29902]);
    expect(rules.scores(mixed)).toEqual(rules.scores(plain));
    expect(() => mixed.append(-1n)).toThrow(
      'append: a token id is a non-negative integer below 2^31, got -1',
    );
  });

  it('append rejects negative and fractional ids', () => {
    const s = rules.createState({ promptIds: [1], scopeStart: 0 });
    expect(() => s.append(-4)).toThrow('append: a token id is a non-negative integer below 2^31, got -4');
    expect(() => s.append(1.5)).toThrow('got 1.5');
  });

  it('apply rejects a short logits row and a foreign state', () => {
    const s = rules.createState({ promptIds: [1], scopeStart: 0 });
    expect(() => rules.apply(new Float32Array(10), s)).toThrow(
      'logits row has 10 entries, fewer than the vocabulary size 32000',
    );
    const other = compileRules('none', idVocabulary({ size: 32000, eosIds: [2] }));
    expect(() =>
      rules.apply(new Float32Array(32000), other.createState({ promptIds: [1], scopeStart: 0 })),
    ).toThrow('state was not created by this rule set');
  });

  it('vocabularies validate their EOS ids', () => {
    expect(() => idVocabulary({ size: 10, eosIds: [10] })).toThrow(
      'idVocabulary: eos id 10 is outside the vocabulary [0, 10)',
    );
    expect(() => idVocabulary({ size: 0, eosIds: [] })).toThrow('size must be a positive integer, got 0');
  });

  it('vocabulary constructors check the shape of what they are given (RuleInputError naming it)', () => {
    const cases: [() => unknown, string][] = [
      [
        () => createVocabulary(['</s>', ' I'] as never),
        'createVocabulary: expected { surfaces, eosIds }, got an array (pass it as { surfaces: [...], eosIds: [...] })',
      ],
      [
        () => createVocabulary({ surfaces: { '</s>': 0 } as never, eosIds: [0] }),
        'createVocabulary: surfaces must be an array of each id\'s surface text (string, or null for none), got {"</s>":0}',
      ],
      [
        () => createVocabulary({ surfaces: ['a'] } as never),
        'createVocabulary: eosIds must be an array of token ids (e.g. [2]), got undefined',
      ],
      // a string id: said so, not "outside the vocabulary"
      [
        () => createVocabulary({ surfaces: ['a'], eosIds: ['0'] as never }),
        'createVocabulary: eosIds[0] must be an integer token id, got "0"',
      ],
      [
        () => idVocabulary({ size: '10', eosIds: [] } as never),
        'idVocabulary: size must be a positive integer, got "10"',
      ],
      [() => idVocabulary(undefined as never), 'idVocabulary: expected { size, eosIds }, got undefined'],
      // a misspelt pieceOf would leave the start rule scoring surfaces, silently
      [
        () => createVocabulary({ surfaces: ['a'], eosIds: [0], pieceof: () => 'a' } as never),
        'createVocabulary: unknown option "pieceof" (did you mean "pieceOf"?); expected surfaces, eosIds, pieceOf',
      ],
      [
        () => createVocabulary({ surfaces: ['a', 2], eosIds: [0] } as never),
        'createVocabulary: surfaces[1] must be a string, or null for none, got 2',
      ],
      [
        () => createVocabulary({ surfaces: ['a'], eosIds: [0], pieceOf: ['a'] } as never),
        'createVocabulary: pieceOf must be a function (id) => piece, got ["a"]',
      ],
    ];
    for (const [run, message] of cases) {
      expect(run).toThrow(RuleInputError);
      expect(run).toThrow(message);
    }
  });

  it('compileRules checks its vocabulary and its options', () => {
    expect(() => compileRules('hewitt2024', undefined as never)).toThrow(
      'vocabulary: expected a Vocabulary { size, eosIds, idsOf, surfaceOf } (createVocabulary, idVocabulary, or @implicit-it/tokenizers), got none',
    );
    expect(() => compileRules('hewitt2024', { size: 3, eosIds: [0] } as never)).toThrow(
      'vocabulary: expected a Vocabulary { size, eosIds, idsOf, surfaceOf }',
    );
    const rule = { name: 'r', score: () => {} };
    expect(() => compileRules('hewitt2024', vocab, { custum: [rule] } as never)).toThrow(
      'options.custum: unknown option (did you mean "custom"?); expected custom',
    );
    expect(() => compileRules('hewitt2024', vocab, { custom: [rule, { ...rule }] })).toThrow(
      'custom[1].name: "r" is the name of custom[0]: give each custom rule a name of its own',
    );
    expect(() => compileRules('hewitt2024', vocab, { custom: [{ ...rule, name: 'eos' }] })).toThrow(
      'custom[0].name: "eos" is the name of a built-in rule: give each custom rule a name of its own',
    );
  });

  it('HEWITT2024_UNIFORM as entries: a hint to what works, and readonly lists type-check as configs', () => {
    expect(() => compileRules({ uniform: { entries: HEWITT2024_UNIFORM } }, vocab)).toThrow(
      'uniform.entries[0].llama2Id: unknown field; expected one of text, score (HEWITT2024_UNIFORM lists each entry with its Llama-2 id; use `uniform: true`',
    );
    // readonly lists (a vocabulary's eosIds, an `as const` config) are configs as they are
    const ids: readonly number[] = vocab.eosIds;
    const config = { eos: { ids }, uniform: { entries: [{ id: 5, score: -1 }] } } as const;
    const set = compileRules(config, vocab);
    expect(set.scores(set.createState({ promptIds: [1], scopeStart: 0 }))).toEqual(new Map([[5, -1]]));
  });

  it('bigint prompt ids (int64 input_ids) are read as numbers', () => {
    const rules = compileRules('hewitt2024-llama2-ids', idVocabulary({ size: 32000, eosIds: [2] }));
    const fromBigInts = rules.createState({ promptIds: new BigInt64Array([1n, 306n, 13n]), scopeStart: 0 });
    const fromNumbers = rules.createState({ promptIds: [1, 306, 13], scopeStart: 0 });
    expect(fromBigInts.responseIds()).toEqual([]);
    expect(rules.scores(fromBigInts)).toEqual(rules.scores(fromNumbers));
    expect(() => rules.createState({ promptIds: [1n, 32000n], scopeStart: 0 })).toThrow(
      'promptIds[1] = 32000 is outside the vocabulary [0, 32000)',
    );
  });

  it('the compiled config and rule names are frozen (behaviour is compiled from them)', () => {
    const rules = compileRules('hewitt2024', vocab);
    expect(Object.isFrozen(rules.config)).toBe(true);
    expect(Object.isFrozen((rules.config.used as object) ?? {})).toBe(true);
    expect(Object.isFrozen(rules.enabled)).toBe(true);
    expect(Object.isFrozen(rules.unresolved)).toBe(true);
    expect(() => {
      (rules.config as { used?: unknown }).used = false;
    }).toThrow(TypeError);
  });

  it('the exported constants are frozen all the way down', () => {
    for (const constant of [RULE_NAMES, ABLATIONS, PRESETS, HEWITT2024_UNIFORM, RULE_DEFAULTS])
      expect(Object.isFrozen(constant)).toBe(true);
    const schema = ruleSetJsonSchema as { properties: { eos: { oneOf: { properties?: object }[] } } };
    expect(Object.isFrozen(schema.properties.eos.oneOf[1]!.properties)).toBe(true);
    expect(() => {
      (ABLATIONS as unknown as string[]).push('eos');
    }).toThrow(TypeError);
  });

  it('new RuleSet checks its config as compileRules does, and leaves the caller its object', () => {
    expect(() => new RuleSet({ used: { penalty: Number.NaN } }, vocab)).toThrow(
      'used.penalty: expected a finite number, got number NaN',
    );
    expect(() => new RuleSet({ eos: { rampLength: -5, afterRamp: 'hold' } }, vocab)).toThrow(
      'eos.rampLength: expected a positive number, got -5',
    );
    const config = { eos: { rampLength: 10 }, used: true };
    const rules = new RuleSet(config, vocab);
    expect(Object.isFrozen(config.eos)).toBe(false);
    expect(rules.config).toEqual(config);
    expect(rules.enabled).toEqual(['eos', 'diversity']);
  });
});

describe('isInstance', () => {
  it('is per class, by name', () => {
    const config = new RuleConfigError('eos', 'bad');
    const input = new RuleInputError('bad');
    expect(ImplicitItError.isInstance(config)).toBe(true);
    expect(RuleConfigError.isInstance(config)).toBe(true);
    expect(RuleInputError.isInstance(config)).toBe(false);
    expect(RuleInputError.isInstance(input)).toBe(true);
    expect(RuleConfigError.isInstance(new Error('x'))).toBe(false);
    // a copy from another package instance: same marker and name, another prototype
    const foreign = Object.assign(new Error('x'), {
      name: 'RuleConfigError',
      [Symbol.for('implicit-it.error')]: true,
    });
    expect(RuleConfigError.isInstance(foreign)).toBe(true);
  });

  it('works detached from its class, as a callback, and per class there too', () => {
    const errors: unknown[] = [new RuleConfigError('eos', 'bad'), new RuleInputError('bad'), new Error('x')];
    expect(errors.filter(RuleConfigError.isInstance)).toEqual([errors[0]]);
    expect(errors.filter(RuleInputError.isInstance)).toEqual([errors[1]]);
    expect(errors.filter(ImplicitItError.isInstance)).toEqual(errors.slice(0, 2));
    expect(errors.map(RuleInputError.isInstance)).toEqual([false, true, false]);
    // the same function each time it is read; another class's when called as that class's method
    expect(RuleConfigError.isInstance).toBe(RuleConfigError.isInstance);
    expect(ImplicitItError.isInstance.call(RuleInputError, errors[0])).toBe(false);
    // a subclass declared elsewhere (another package's errors) inherits it
    class OtherError extends ImplicitItError {
      constructor() {
        super('other.code', 'other');
        this.name = 'OtherError';
      }
    }
    expect([new OtherError(), ...errors].filter(OtherError.isInstance)).toHaveLength(1);
  });

  it('RuleSet.isInstance: compiled sets of any copy of the package, nothing else', () => {
    const set = compileRules('hewitt2024', idVocabulary({ size: 8, eosIds: [2] }));
    expect(RuleSet.isInstance(set)).toBe(true);
    for (const other of [null, undefined, 'hewitt2024', { eos: {} }, set.config])
      expect(RuleSet.isInstance(other)).toBe(false);
    // another copy's set: the same Symbol.for mark, another prototype
    const foreign = Object.create(null, { [Symbol.for('implicit-it.rule-set')]: { value: true } });
    expect(foreign instanceof RuleSet).toBe(false);
    expect(RuleSet.isInstance(foreign)).toBe(true);
  });
});

describe('uniform entries naming one id twice', () => {
  const again = (i: number, what: string, first: number) =>
    `uniform.entries[${i}]: repeats ${what} from entries[${first}]: list each id and each text once`;

  it.each([
    [
      [
        { id: 5, score: 1 },
        { id: 1738, score: -2 },
        { text: 'x', score: 1 },
        { id: 1738, score: -3 },
      ],
      again(3, 'id 1738', 1),
    ],
    [
      [
        { text: ' I', score: -5 },
        { text: ' I', score: -5 },
      ],
      again(1, 'text " I"', 0),
    ],
  ])('%j is refused when parsed, naming both entries', (entries, message) => {
    expect(() => parseRuleSetConfig({ uniform: { entries } })).toThrow(RuleConfigError);
    expect(() => parseRuleSetConfig({ uniform: { entries } })).toThrow(message);
    expect(() => compileRules({ uniform: { entries } }, idVocabulary({ size: 2000, eosIds: [2] }))).toThrow(
      message,
    );
  });

  it('a text and an id that name one token are refused when compiled', () => {
    const v = createVocabulary({ surfaces: ['</s>', ' I', '!'], eosIds: [0] });
    expect(() =>
      compileRules(
        {
          uniform: {
            entries: [
              { id: 1, score: -5 },
              { text: '!', score: 1 },
              { text: ' I', score: -2 },
            ],
          },
        },
        v,
      ),
    ).toThrow(again(2, 'id 1 (text " I")', 0));
    expect(() =>
      compileRules(
        {
          uniform: {
            entries: [
              { text: ' I', score: -5 },
              { id: 1, score: -2 },
            ],
          },
        },
        v,
      ),
    ).toThrow(again(1, 'id 1', 0));
  });

  it('distinct entries keep their own scores, and the schema says so', () => {
    const set = compileRules(
      {
        uniform: {
          entries: [
            { id: 1, score: -5 },
            { text: '!', score: 1 },
          ],
        },
      },
      createVocabulary({ surfaces: ['</s>', ' I', '!'], eosIds: [0] }),
    );
    expect(Object.fromEntries(set.scores(set.createState({ promptIds: [0], scopeStart: 1 })))).toEqual({
      1: -5,
      2: 1,
    });
    const uniform = ruleSetJsonSchema.properties.uniform.oneOf[1] as unknown as {
      properties: { entries: object };
    };
    const entries = uniform.properties.entries;
    expect(entries).toMatchObject({
      uniqueItems: true,
      description: 'Fixed scores; each id, and each text, at most once (the scores of one id are not added).',
    });
  });
});

describe('rules turned on with true', () => {
  it('{ uniform: true } uses the 15 hewitt2024 entries', () => {
    const surfaces = ['</s>', ' I', 'I', '\n'];
    const set = compileRules({ uniform: true }, createVocabulary({ surfaces, eosIds: [0] }));
    const s = set.createState({ promptIds: [3], scopeStart: 0 });
    expect(Object.fromEntries(set.scores(s))).toEqual({ 1: -5, 2: -5, 3: 1 });
    expect(set.unresolved).toHaveLength(12);
  });
});

describe('uniform entries by id with the text they must have', () => {
  // a vocabulary of Llama-2's size whose ids are not Llama-2's: 306 is "ly", " I" is 339
  const surfaces = Array.from({ length: 32000 }, (_, id) => `w${id}`);
  surfaces[306] = 'ly';
  surfaces[339] = ' I';
  surfaces[2] = null as unknown as string;
  const other = createVocabulary({
    surfaces,
    eosIds: [2],
    pieceOf: (id) => (id === 2 ? '</s>' : surfaces[id]),
  });

  it('an id the vocabulary spells otherwise is refused, naming the id that has the text', () => {
    expect(() => compileRules({ uniform: { entries: [{ id: 306, score: -5, text: ' I' }] } }, other)).toThrow(
      'uniform.entries[0]: id 306 is "ly" in this vocabulary, not " I" (" I" is id 339 here): ' +
        'the ids of "hewitt2024-llama2-ids" are Llama-2\'s; for another tokenizer use "hewitt2024", which finds the same tokens by their text',
    );
    expect(() => compileRules({ uniform: { entries: [{ id: 7, score: 1, text: 'x' }] } }, other)).toThrow(
      'uniform.entries[0]: id 7 is "w7" in this vocabulary, not "x": ' +
        "the ids were written for another tokenizer; give the entry by text, or this vocabulary's id",
    );
    expect(() => compileRules({ uniform: { entries: [{ id: 2, score: 1, text: 'x' }] } }, other)).toThrow(
      'uniform.entries[0]: id 2 has no surface text (its piece is "</s>") in this vocabulary, not "x"',
    );
  });

  it('hewitt2024-llama2-ids compiles only where its ids are Llama-2 tokens, or cannot be checked', () => {
    expect(() => compileRules('hewitt2024-llama2-ids', other)).toThrow(RuleConfigError);
    expect(() => compileRules('hewitt2024-llama2-ids', other)).toThrow(
      'uniform.entries[0]: id 29966 is "w29966" in this vocabulary, not "<"',
    );
    // a vocabulary spelling the 15 ids as Llama-2 does: the same ids as hewitt2024 finds by text
    const llamaLike = [...surfaces];
    llamaLike[339] = 'w339';
    for (const { llama2Id, text } of HEWITT2024_UNIFORM) llamaLike[llama2Id] = text;
    const vocab = createVocabulary({ surfaces: llamaLike, eosIds: [2] });
    const byId = compileRules('hewitt2024-llama2-ids', vocab);
    const byText = compileRules('hewitt2024', vocab);
    const state = (set: RuleSet) => set.createState({ promptIds: [5], scopeStart: 0 });
    expect(toSorted(byId.scores(state(byId)))).toEqual(toSorted(byText.scores(state(byText))));
    // an idVocabulary knows no texts: the ids are taken as given
    expect(compileRules('hewitt2024-llama2-ids', idVocabulary({ size: 32000, eosIds: [2] })).enabled).toEqual(
      ['eos', 'uniform', 'diversity'],
    );
  });

  it('the preset lists each id with its text, and the text survives a JSON round trip', () => {
    const entries = (PRESETS['hewitt2024-llama2-ids']().uniform as { entries: object[] }).entries;
    expect(entries[3]).toEqual({ id: 306, score: -5, text: ' I' });
    const config = parseRuleSetConfig(JSON.parse(JSON.stringify({ uniform: { entries: [entries[3]] } })));
    expect(config.uniform).toEqual({ entries: [{ id: 306, score: -5, text: ' I' }] });
    expect(() => compileRules(config, other)).toThrow('id 306 is "ly"');
  });
});

describe('vocabularyMismatch: whether a compiled set fits a vocabulary', () => {
  it('says why a vocabulary of the same size is another tokenizer, and nothing for its own', () => {
    const own = createVocabulary({ surfaces: ['</s>', ' I', 'I', '\n', '!'], eosIds: [0] });
    const set = compileRules('hewitt2024', own);
    expect(set.vocabularyMismatch(own)).toBeUndefined();
    // a copy of the same vocabulary (loaded again) fits
    expect(
      set.vocabularyMismatch(createVocabulary({ surfaces: ['</s>', ' I', 'I', '\n', '!'], eosIds: [0] })),
    ).toBeUndefined();
    const moved = createVocabulary({ surfaces: ['</s>', 'I', ' I', '\n', '!'], eosIds: [0] });
    expect(set.vocabularyMismatch(moved)).toBe('it found " I" at id 1, and this vocabulary has it at id 2');
    const otherEos = createVocabulary({ surfaces: ['</s>', ' I', 'I', '\n', '!'], eosIds: [4] });
    expect(set.vocabularyMismatch(otherEos)).toBe("its EOS ids are [0], and this vocabulary's are [4]");
    expect(set.vocabularyMismatch(idVocabulary({ size: 6, eosIds: [0] }))).toBe(
      'it was compiled for a vocabulary of 5 ids, and this one has 6',
    );
    // ids given in the config are its own, not the vocabulary's: only the size is compared
    const byId = compileRules({ eos: { ids: [0] }, uniform: { entries: [{ id: 1, score: 1 }] } }, own);
    expect(byId.vocabularyMismatch(otherEos)).toBeUndefined();
  });
});

describe('audit: inputs that used to pass silently or crash with a TypeError', () => {
  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'eos-constructor'])(
    'rule set name %j is unknown, not an empty or broken rule set',
    (name) => {
      expect(() => resolveRuleSpec(name)).toThrow(RuleConfigError);
      expect(() => resolveRuleSpec(name)).toThrow(`unknown rule set "${name}"`);
    },
  );

  it('an EOS id named twice gets the bonus once', () => {
    const twice = compileRules({ eos: { ids: [2, 2] } }, vocab);
    const s = twice.createState({ promptIds: [1], scopeStart: 0 });
    for (let i = 0; i < 125; i++) s.append(5);
    expect(Object.fromEntries(twice.scores(s))).toEqual({ 2: 7.5 });
    const dupVocab = compileRules('eos', idVocabulary({ size: 10, eosIds: [2, 2] }));
    const d = dupVocab.createState({ promptIds: [1], scopeStart: 0 });
    for (let i = 0; i < 125; i++) d.append(5);
    expect(dupVocab.denseScores(d)[2]).toBe(7.5);
  });

  it("eosIds are the ids the EOS rule raises: the config's, else the vocabulary's, none with it off", () => {
    expect(compileRules({ eos: { ids: [5, 5, 7] } }, vocab).eosIds).toEqual([5, 7]);
    expect(compileRules('hewitt2024-llama2-ids', idVocabulary({ size: 32000, eosIds: [9] })).eosIds).toEqual([
      2,
    ]);
    expect(compileRules('eos', idVocabulary({ size: 10, eosIds: [3, 4] })).eosIds).toEqual([3, 4]);
    expect(compileRules('uniform-diversity', vocab).eosIds).toEqual([]);
  });

  it('an id a vocabulary returns outside its size is an error naming the surface', () => {
    const broken = {
      size: 10,
      eosIds: [0],
      idsOf: (s: string) => (s === ' I' ? [12] : []),
      surfaceOf: () => undefined,
    };
    expect(() => compileRules('hewitt2024', broken)).toThrow(
      'vocabulary: idsOf(" I") returned id 12, outside the vocabulary [0, 10)',
    );
  });

  it('state lookups reject fractional and NaN indices', () => {
    const rules = compileRules('hewitt2024', vocab);
    const s = rules.createState({ promptIds: [6, 7], scopeStart: 0 });
    expect(s.isUsed(6)).toBe(true);
    expect(s.isUsed(6.5)).toBe(false);
    expect(() => s.tokenAt(0.5)).toThrow(RuleInputError);
    expect(() => s.tokenAt(Number.NaN)).toThrow(
      'tokenAt(NaN): expected an index in [0, 2), the context so far',
    );
    expect(() => s.append('7' as never)).toThrow(
      'append: a token id is a non-negative integer below 2^31, got "7"',
    );
  });

  it('createState says what it was given instead of its { promptIds, scopeStart }', () => {
    const rules = compileRules('hewitt2024', vocab);
    const refused = (init: unknown) => () => rules.createState(init as never);
    expect(refused(undefined)).toThrow(
      new RuleInputError('createState: expected { promptIds, scopeStart, promptLength? }, got undefined'),
    );
    expect(refused([1, 2])).toThrow(
      new RuleInputError(
        'createState: expected { promptIds, scopeStart, promptLength? }, got an array (pass it as { promptIds: [...], scopeStart })',
      ),
    );
    // a prompt from @implicit-it/tokenizers' buildPrompt
    expect(refused({ ids: [1, 2], scopeStart: 1, promptLength: 2, text: 'ab' })).toThrow(
      new RuleInputError(
        'createState: got { ids, ... } (a built prompt?): the ids are promptIds, as in { promptIds: prompt.ids, scopeStart: prompt.scopeStart }',
      ),
    );
    expect(refused({ scopeStart: 0 })).toThrow(
      new RuleInputError('createState: expected { promptIds, scopeStart, promptLength? }, got no promptIds'),
    );
  });

  it('bad arguments are implicit-it errors with the fix, not TypeErrors', () => {
    const rules = compileRules('hewitt2024', vocab);
    const s = rules.createState({ promptIds: [1], scopeStart: 0 });
    expect(() => rules.apply(null as never, s)).toThrow(RuleInputError);
    expect(() => rules.apply(null as never, s)).toThrow(
      'expected a logits row (Float32Array or Float64Array), got null',
    );
    expect(() => rules.createState({ promptIds: 5 as never, scopeStart: 0 })).toThrow(
      'createState: promptIds must be a list of token ids (an array or typed array), got 5',
    );
    expect(() => compileRules('hewitt2024', vocab, { custom: {} as never })).toThrow(
      'custom: expected a list of { name: string, score(ctx, add) }',
    );
    expect(() => compileRules(undefined as never, vocab)).toThrow('or a rule-set object, got undefined');
    // swapped arguments, and a missing state, say so
    expect(() => rules.apply(s as never, new Float32Array(100) as never)).toThrow(
      'the arguments are (logits, state): the logits row comes first',
    );
    expect(() => rules.apply(new Float32Array(100), undefined as never)).toThrow(
      'expected a rule state as the second argument (from ruleSet.createState), got none',
    );
    expect(() => eosBonus(10, { ramp_length: 100 } as never)).toThrow(
      'eosBonus: options.ramp_length: unknown field; expected one of rampLength, maxBonus, afterRamp, ids (did you mean "rampLength"?)',
    );
    expect(() => productOfExperts([0, 1], [0])).toThrow(RuleInputError);
    expect(() => argmax([])).toThrow('argmax: the row is empty, so it has no largest entry');
  });

  it('a custom rule must score with finite numbers', () => {
    const nan = compileRules('none', vocab, {
      custom: [{ name: 'nan', score: (_c, add) => add(3, Number.NaN) }],
    });
    const s = nan.createState({ promptIds: [1], scopeStart: 0 });
    expect(() => nan.apply(new Float32Array(100), s)).toThrow(
      'custom rule "nan" scored id 3 with NaN: a score is a finite number',
    );
    const str = compileRules('none', vocab, {
      custom: [{ name: 'str', score: (_c, add) => add(3, '1' as never) }],
    });
    expect(() => str.scores(str.createState({ promptIds: [1], scopeStart: 0 }))).toThrow(
      'scored id 3 with "1"',
    );
    // an id that is not an integer is a mistake; an integer outside the vocabulary is ignored
    const badId = compileRules('none', vocab, {
      custom: [{ name: 'bad-id', score: (_c, add) => add('3' as never, 1) }],
    });
    expect(() => badId.scores(badId.createState({ promptIds: [1], scopeStart: 0 }))).toThrow(
      'custom rule "bad-id" scored "3": an id is an integer (ids outside the vocabulary are ignored)',
    );
    const outside = compileRules('none', vocab, {
      custom: [{ name: 'outside', score: (_c, add) => add(100, 1) }],
    });
    expect(outside.scores(outside.createState({ promptIds: [1], scopeStart: 0 })).size).toBe(0);
    const big = compileRules('none', vocab, {
      custom: [{ name: 'big', score: (_c, add) => add(3, 1n as never) }],
    });
    expect(() => big.scores(big.createState({ promptIds: [1], scopeStart: 0 }))).toThrow(
      'custom rule "big" scored id 3 with 1n: a score is a finite number',
    );
  });

  it('apply takes float rows only: an integer row would round the scores away', () => {
    const rules = compileRules('hewitt2024', vocab);
    const s = rules.createState({ promptIds: [1], scopeStart: 0 });
    for (const [row, name] of [
      [new Int32Array(100), 'Int32Array'],
      [Array.from({ length: 100 }, () => 0), 'Array'],
    ] as const)
      expect(() => rules.apply(row as never, s)).toThrow(
        `expected a logits row (Float32Array or Float64Array), got ${name}`,
      );
    // a row of another realm (a vm context, a test environment) is a row; a look-alike is not
    const foreign = runInNewContext('new Float32Array(100)') as Float32Array;
    expect(foreign instanceof Float32Array).toBe(false);
    const local = new Float32Array(100);
    rules.apply(foreign, s);
    rules.apply(local, s);
    expect(Array.from(foreign)).toEqual(Array.from(local));
    expect(local.some((x) => x !== 0)).toBe(true);
    const lookAlike = { length: 100, [Symbol.toStringTag]: 'Float32Array' };
    expect(() => rules.apply(lookAlike as never, s)).toThrow('got Object');
  });

  it("a hand-written Vocabulary's mistakes are blamed on it", () => {
    const base = createVocabulary({ surfaces: ['</s>', ' I', 'a'], eosIds: [0] });
    const badEos = { ...base, eosIds: [1.5] };
    expect(() => compileRules('hewitt2024', badEos)).toThrow(
      'vocabulary.eosIds[0]: id 1.5 is outside the vocabulary [0, 3)',
    );
    // the config's own ids keep their path
    expect(() => compileRules({ eos: { ids: [7] } }, base)).toThrow(
      'eos.ids[0]: id 7 is outside the vocabulary [0, 3)',
    );
    const noList = { ...base, idsOf: () => undefined as never };
    expect(() => compileRules('hewitt2024', noList)).toThrow(
      'vocabulary: idsOf("<") returned undefined: expected an array of ids (empty when no item has the text)',
    );
  });

  it('null surfaces (JSON vocab lists) are items without a surface', () => {
    const v = createVocabulary({ surfaces: ['</s>', null, 'a'], eosIds: [0] });
    expect(v.surfaceOf(1)).toBeUndefined();
    const start = compileRules({ start: true }, v);
    expect(Object.fromEntries(start.scores(start.createState({ promptIds: [2], scopeStart: 0 })))).toEqual({
      0: -5,
      2: 5,
    });
  });

  it('isInstance works when class names are minified', () => {
    // a bundler renames the class (function name) but not the name the constructor sets
    class u extends RuleConfigError {}
    Object.defineProperty(RuleConfigError, 'name', { value: 'u', configurable: true });
    try {
      expect(RuleConfigError.isInstance(new u('eos', 'bad'))).toBe(true);
      expect(RuleConfigError.isInstance(new RuleConfigError('eos', 'bad'))).toBe(true);
      expect(RuleInputError.isInstance(new RuleConfigError('eos', 'bad'))).toBe(false);
    } finally {
      Object.defineProperty(RuleConfigError, 'name', { value: 'RuleConfigError', configurable: true });
    }
  });
});

describe('meantOption (the "did you mean" of unknown option names)', () => {
  const known = ['hiddenSize', 'dtypes', 'learningRate', 'epochs', 'seed'];
  it('finds another case or snake_case of a name, else the nearest one within one or two edits', () => {
    expect(meantOption('learning_rate', known)).toBe('learningRate');
    expect(meantOption('HIDDEN-SIZE', known)).toBe('hiddenSize');
    expect(meantOption('hiddenSzie', known)).toBe('hiddenSize'); // a swap of neighbours is one edit
    expect(meantOption('epoch', known)).toBe('epochs');
    expect(meantOption('dtype', known)).toBe('dtypes');
    expect(meantOption('sed', known)).toBe('seed'); // short names: one edit at most
    expect(meantOption('sd', known)).toBeUndefined();
    expect(meantOption('temperature', known)).toBeUndefined();
    expect(meantOption('anything', [])).toBeUndefined();
  });

  it('prefers the nearest name to the first one listed', () => {
    expect(meantOption('seedx', ['speed', 'seed'])).toBe('seed'); // 2 edits from speed, 1 from seed
    expect(meantOption('seedx', ['speed'])).toBe('speed');
  });
});

describe('shownValue (values in error messages)', () => {
  it('quotes strings, keeps NaN and Infinity, and never throws', () => {
    expect(shownValue('2')).toBe('"2"');
    expect(shownValue(2)).toBe('2');
    expect(shownValue([1, 'a'])).toBe('[1,"a"]');
    expect(shownValue(Number.NaN)).toBe('NaN');
    expect(shownValue(Number.NEGATIVE_INFINITY)).toBe('-Infinity');
    expect(shownValue(undefined)).toBe('undefined');
    expect(shownValue(10n)).toBe('10n');
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(shownValue(cycle)).toBe('[object Object]');
  });
});
