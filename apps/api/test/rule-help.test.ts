import { type RuleSpec, resolveRuleSpec } from '@implicit-it/rules';
import { describe, expect, it } from 'vitest';
import { ruleHelp } from '../src/playground/rule-help.js';

// The text beside each rule's box on the playground says what ticking the box sends: the server's
// options for a rule it has on, "off in <name>" and what ticking adds for one it leaves off.
const help = (rules: RuleSpec, rulesName: string, ruleDefaults: RuleSpec = 'eos-uniform-diversity-start') =>
  ruleHelp({ rules: resolveRuleSpec(rules), rulesName, ruleDefaults: resolveRuleSpec(ruleDefaults) });

describe('ruleHelp', () => {
  it("describes hewitt2024's rules, and the start rule it leaves off as ticking adds it", () => {
    expect(help('hewitt2024', 'hewitt2024')).toEqual({
      eos: 'end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
      uniform: '15 fixed scores: "<" -4, " <" -4, "|" -4, " I" -5, ...',
      used: '-1.5 for each token already used in the instruction or the answer (scope conversation)',
      start:
        'off in hewitt2024; ticking adds: favours words at the first steps: the first token\'s word score x5, "!" +15 as the second, "\\n" -10 as the third',
    });
  });

  it("follows the server's options: hewitt2024-prose holds the EOS bonus and scopes the penalty to the answer", () => {
    const prose = help('hewitt2024-prose', 'hewitt2024-prose');
    expect(prose.eos).toBe('end-of-sequence score rises from 0 to 15 over 250 tokens, then stays 15');
    expect(prose.used).toBe('-1.5 for each token already used in the answer (scope response)');
    expect(prose.start).toMatch(/^off in hewitt2024-prose; ticking adds: favours words/);
  });

  it('describes a rule-set JSON as given: its entries, its penalty, the rules it leaves off', () => {
    const custom = help(
      { uniform: { entries: [{ text: 'm', score: 30 }] }, used: { penalty: -3 } },
      'server rules',
    );
    expect(custom).toEqual({
      eos: 'off in server rules; ticking adds: end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
      uniform: '1 fixed score: "m" +30',
      used: '-3 for each token already used in the instruction or the answer (scope conversation)',
      start: expect.stringMatching(/^off in server rules; ticking adds: favours words at the first steps: /),
    });
    // every option of each rule, and entries with spaces, newlines and ids shown as such
    const all = help(
      {
        eos: { rampLength: 100, maxBonus: -4, afterRamp: 'hold', ids: [2, 7] },
        uniform: {
          entries: [
            { text: '\n\n', score: 2.5 },
            { id: 306, score: -5 },
            { id: 13, score: 1, text: '\n' },
            { text: ' the', score: 0 },
            { text: 'x', score: 1 },
          ],
        },
        used: { penalty: 2, scope: 'response' },
        start: { weight: 2, exclamationBonus: -1, newlinePenalty: 3 },
      },
      'mine',
    );
    expect(all).toEqual({
      eos: 'end-of-sequence (ids 2, 7) score falls from 0 to -4 over 100 tokens, then stays -4',
      uniform: '5 fixed scores: "\\n\\n" +2.5, id 306 -5, id 13 "\\n" +1, " the" 0, ...',
      used: '+2 for each token already used in the answer (scope response)',
      start:
        'favours words at the first steps: the first token\'s word score x2, "!" -1 as the second, "\\n" +3 as the third',
    });
  });

  it('reads true and empty options as the defaults, and the preset given by ids by its ids', () => {
    const defaults = ruleHelp({
      rules: { eos: true, uniform: true, used: {}, start: true },
      rulesName: 'x',
      ruleDefaults: {},
    });
    expect(defaults).toEqual({
      ...help('hewitt2024', 'hewitt2024'),
      start: expect.stringMatching(/^favours words at the first steps: the first token's word score x5/),
    });
    expect(help('hewitt2024-llama2-ids', 'hewitt2024-llama2-ids')).toMatchObject({
      eos: 'end-of-sequence (id 2) score rises from 0 to 15 over 250 tokens, then 0',
      uniform: '15 fixed scores: id 29966 "<" -4, id 529 " <" -4, id 29989 "|" -4, id 306 " I" -5, ...',
    });
    expect(help({ uniform: { entries: [] } }, 'empty').uniform).toBe('no fixed scores (an empty list)');
  });

  it('says a rule is off on a server without rules, and what ticking adds where ruleDefaults leaves a rule out', () => {
    const none = help(false, 'none', { eos: { rampLength: 10 }, used: { scope: 'response' } });
    expect(none).toEqual({
      eos: 'off on this server; ticking adds: end-of-sequence score rises from 0 to 15 over 10 tokens, then 0',
      // (the page sends `true` for a rule ruleDefaults lacks: the rule's defaults)
      uniform: 'off on this server; ticking adds: 15 fixed scores: "<" -4, " <" -4, "|" -4, " I" -5, ...',
      used: 'off on this server; ticking adds: -1.5 for each token already used in the answer (scope response)',
      start: expect.stringMatching(/^off on this server; ticking adds: favours words/),
    });
  });
});
