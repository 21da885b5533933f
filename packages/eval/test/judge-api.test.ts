import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type RunningServer, serve } from '@implicit-it/api';
import { createModel, forceGreedyToken, randomWeights, resolveConfig } from '@implicit-it/modelkit';
import { loadModel, type Model } from '@implicit-it/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isSwitched,
  judgeMessages,
  judgePairs,
  type ModelOutput,
  openAIJudge,
  readAnnotations,
} from '../src/index.js';

// The judge protocol against this project's own API server (@implicit-it/api on 127.0.0.1) serving a
// modelkit model through @implicit-it/runtime: real HTTP, real top_logprobs. The model's two
// strongest first tokens are "M" then "m" (two residual channels forced), so it is a position-biased
// judge whose preferences are checked against the runtime's own log-probs for the same prompt.
let root: string;
let model: Model;
let server: RunningServer;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'eval-judge-api-'));
  // the judge prompt is longer than the tiny preset's 512 positions
  const config = resolveConfig({ preset: 'tiny', maxPositionEmbeddings: 2048 });
  const dir0 = (
    await createModel({ preset: 'tiny', maxPositionEmbeddings: 2048, seed: 5, out: join(root, 'probe') })
  ).dir;
  const probe = await loadModel(dir0, { log: () => {} });
  const [M] = probe.tokenizer.encode('M', { addSpecialTokens: false });
  const [m] = probe.tokenizer.encode('m', { addSpecialTokens: false });
  await probe.dispose();
  const weights = forceGreedyToken(
    config,
    forceGreedyToken(config, randomWeights(config, 5), M!, { channel: 0, strength: 1 }),
    m!,
    { channel: 1, strength: 0.9 },
  );
  const dir = (
    await createModel({ preset: 'tiny', maxPositionEmbeddings: 2048, weights, out: join(root, 'judge') })
  ).dir;
  model = await loadModel(dir, { log: () => {} });
  server = await serve({
    models: [{ id: 'judge', model }],
    rules: false,
    apiKey: 'sk-local',
    port: 0,
    hostname: '127.0.0.1',
    log: () => {},
  });
}, 120_000);
afterAll(async () => {
  await server?.close();
  await model?.dispose();
  rmSync(root, { recursive: true, force: true });
});

function pairs(n: number) {
  const baseline: ModelOutput[] = [];
  const mine: ModelOutput[] = [];
  for (let i = 0; i < n; i++) {
    const instruction = `Question ${i}: what is ${i} + ${i}?`;
    baseline.push({ instruction, output: `It is ${2 * i}.`, generator: 'reference' });
    mine.push({
      instruction,
      output: `The answer is ${2 * i}, because ${i} + ${i} = ${2 * i}.`,
      generator: 'tiny',
    });
  }
  return { baseline, mine };
}

describe('judgePairs against @implicit-it/api serving a modelkit model', () => {
  it('reads real top_logprobs, maps them through the random order, and answers a rerun from the cache', async () => {
    const { baseline, mine } = pairs(8);
    const judge = openAIJudge({ baseURL: `${server.url}/v1`, model: 'judge', apiKey: 'sk-local' });
    const cacheDir = join(root, 'cache-a');
    const r = await judgePairs({ judge, baseline, model: mine, cacheDir });
    expect(r.requests).toBe(8);
    expect(new Set(r.annotations.map((a) => a.is_switched_outputs)).size).toBe(2);
    for (const [i, a] of r.annotations.entries()) {
      const switched = isSwitched(mine[i]!.instruction);
      const [first, second] = switched
        ? [mine[i]!.output, baseline[i]!.output]
        : [baseline[i]!.output, mine[i]!.output];
      // the same prompt through the runtime directly: log-probs of the first answer token
      const [g] = await model.generate(
        { messages: judgeMessages(mine[i]!.instruction, first, second) },
        { maxNewTokens: 1, logprobs: 5, rules: false },
      );
      const top = g!.logprobs![0]!.top;
      const lp = (id: number) => top.find((t) => t.id === id)!.logprob;
      const [M] = model.tokenizer.encode('M', { addSpecialTokens: false });
      const [m] = model.tokenizer.encode('m', { addSpecialTokens: false });
      const pM = Math.exp(lp(M!));
      const pm = Math.exp(lp(m!));
      const inFrame = 2 - pm / (pm + pM);
      expect(a.preference_source).toBe('logprobs');
      expect(a.preference!).toBeCloseTo(switched ? 3 - inFrame : inFrame, 5);
    }
    const again = await judgePairs({ judge, baseline, model: mine, cacheDir });
    expect(again).toMatchObject({ requests: 0, cacheHits: 8 });
    expect(again.annotations).toEqual(r.annotations);
  }, 120_000);

  it('resumes after the judging process is killed with SIGKILL', async () => {
    const { baseline, mine } = pairs(60);
    const dir = join(root, 'kill');
    const cacheDir = join(dir, 'cache');
    const out = join(dir, 'annotations.json');
    rmSync(dir, { recursive: true, force: true });
    const dist = resolve(import.meta.dirname, '../dist/index.js');
    expect(existsSync(dist), 'build the package first (turbo runs build before test)').toBe(true);
    writeFileSync(join(root, 'baseline.json'), JSON.stringify(baseline));
    writeFileSync(join(root, 'model.json'), JSON.stringify(mine));
    const child = spawn(
      process.execPath,
      [
        resolve(import.meta.dirname, 'fixtures/judge-api-child.mjs'),
        dist,
        `${server.url}/v1`,
        join(root, 'baseline.json'),
        join(root, 'model.json'),
        cacheDir,
        out,
      ],
      { stdio: 'inherit' },
    );
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
    const cached = () =>
      existsSync(cacheDir)
        ? readdirSync(cacheDir, { recursive: true }).filter((f) => String(f).endsWith('.json')).length
        : 0;
    const deadline = Date.now() + 60_000;
    while (cached() < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const k = cached();
    expect(k).toBeGreaterThanOrEqual(5);
    expect(k).toBeLessThan(60);
    expect(existsSync(out)).toBe(false);
    const judge = openAIJudge({ baseURL: `${server.url}/v1`, model: 'judge', apiKey: 'sk-local' });
    const resumed = await judgePairs({ judge, baseline, model: mine, cacheDir, out });
    expect(resumed).toMatchObject({ cacheHits: k, requests: 60 - k });
    expect(readAnnotations(out).every((a) => a.preference_source === 'logprobs')).toBe(true);
  }, 120_000);
});
