import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import {
  createModel,
  forceGreedyToken,
  type ReferenceModel,
  randomWeights,
  referenceForward,
  resolveConfig,
} from '@implicit-it/modelkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  isSwitched,
  judgeMessages,
  judgePairs,
  type ModelOutput,
  openAIJudge,
  winRate,
} from '../src/index.js';
import { type JudgeServer, startJudgeServer } from './judge-server.js';

// The judge protocol with real log-probabilities from a real (tiny) model served over HTTP: a seeded
// modelkit model whose two strongest next tokens after any prompt are "M" and then "m" (two residual
// channels forced with forceGreedyToken), run by modelkit's reference forward pass with its own
// tokenizer. The judge is position-biased (it prefers whichever answer is labelled M), which is what
// alpaca_eval's random order exists for. Stand-in for this project's API server until apps/api exists.
env.allowRemoteModels = false;
env.useFSCache = false;

let root: string;
let server: JudgeServer;
let model: ReferenceModel;
let tokenizer: PreTrainedTokenizer;

/** The Tulu prompt of a chat (system text first in the user turn) as ids, BOS first. */
const promptIds = (messages: { role: string; content: string }[]) => [
  1,
  ...tokenizer.encode(`<|user|>\n${messages.map((m) => m.content).join('\n\n')}\n<|assistant|>\n`, {
    add_special_tokens: false,
  }),
];

/** Log-probabilities of the first answer token, best first. */
function nextTokenLogprobs(messages: { role: string; content: string }[]) {
  const row = referenceForward(model, promptIds(messages)).at(-1)!;
  let max = Number.NEGATIVE_INFINITY;
  for (const x of row) max = Math.max(max, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - max);
  return [...row]
    .map((x, id) => ({ token: tokenizer.decode([id]), logprob: x - max - Math.log(z) }))
    .sort((a, b) => b.logprob - a.logprob);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'eval-judge-mk-'));
  const config = resolveConfig({ preset: 'tiny' });
  const base = randomWeights(config, 5);
  const dir = (await createModel({ preset: 'tiny', weights: base, out: join(root, 'judge') })).dir;
  env.localModelPath = dirname(dir);
  tokenizer = await AutoTokenizer.from_pretrained(basename(dir));
  const [M] = tokenizer.encode('M', { add_special_tokens: false });
  const [m] = tokenizer.encode('m', { add_special_tokens: false });
  const weights = forceGreedyToken(
    config,
    forceGreedyToken(config, base, M!, { channel: 0, strength: 1 }),
    m!,
    { channel: 1, strength: 0.9 },
  );
  model = { config, weights };
  server = await startJudgeServer({ model: nextTokenLogprobs });
}, 60_000);
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

it('judgePairs reads real top_logprobs of a modelkit model over HTTP and maps them through the random order', async () => {
  const instructions = [
    'Name a prime.',
    'Say hi.',
    'Describe rain.',
    'Count to three.',
    'Pick a color.',
    'Greet me.',
    'What is 2+2?',
    'Spell cat.',
  ];
  const baseline: ModelOutput[] = instructions.map((instruction) => ({
    instruction,
    output: 'I am not sure.',
    generator: 'reference',
  }));
  const mine: ModelOutput[] = instructions.map((instruction, i) => ({
    instruction,
    output: `Answer ${i}: here it is.`,
    generator: 'tiny',
  }));
  const judge = openAIJudge({ baseURL: server.baseURL, model: 'modelkit-tiny' });
  const cacheDir = join(root, 'cache');
  const r = await judgePairs({ judge, baseline, model: mine, cacheDir });
  expect(r.requests).toBe(instructions.length);
  expect(new Set(r.annotations.map((a) => a.is_switched_outputs)).size).toBe(2); // both orders occur
  for (const [i, a] of r.annotations.entries()) {
    const switched = isSwitched(instructions[i]!);
    expect(a.is_switched_outputs).toBe(switched);
    const [first, second] = switched
      ? [mine[i]!.output, baseline[i]!.output]
      : [baseline[i]!.output, mine[i]!.output];
    const top = nextTokenLogprobs(judgeMessages(instructions[i]!, first, second));
    expect(top.slice(0, 2).map((t) => t.token)).toEqual(['M', 'm']);
    const pm = Math.exp(top[1]!.logprob);
    const pM = Math.exp(top[0]!.logprob);
    const inFrame = 2 - pm / (pm + pM); // the model prefers the answer labelled M
    expect(a.preference_source).toBe('logprobs');
    expect(a.preference!).toBeCloseTo(switched ? 3 - inFrame : inFrame, 10);
  }
  // a position-biased judge: the model "wins" exactly when it was shown second
  const stats = winRate(r.annotations);
  expect(stats.n_wins).toBe(r.annotations.filter((a) => !a.is_switched_outputs).length);
  const again = await judgePairs({ judge, baseline, model: mine, cacheDir });
  expect(again).toMatchObject({ requests: 0, cacheHits: instructions.length });
}, 60_000);
