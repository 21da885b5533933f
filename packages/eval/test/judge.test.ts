import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  EvalInputError,
  finishedAnnotationsDifferences,
  isRefusedPair,
  isSwitched,
  type JudgeClient,
  JudgeRequestError,
  judgeEndpoint,
  judgeId,
  judgeMessages,
  judgePairs,
  type ModelOutput,
  OPENAI_BASE_URL,
  openAIJudge,
  type Progress,
  pairOutputs,
  preferenceFromChoice,
  RunAbortedError,
  readAnnotations,
  readDoneRecord,
  winRate,
} from '../src/index.js';
import { type JudgeServer, startJudgeServer } from './judge-server.js';

const KEY_ENV = 'IMPLICIT_IT_TEST_JUDGE_KEY';
let server: JudgeServer;
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'eval-judge-'));
  dirs.push(d);
  return d;
};
beforeAll(async () => {
  process.env[KEY_ENV] = 'secret-test-key';
  server = await startJudgeServer({ apiKey: 'secret-test-key' });
});
afterAll(async () => {
  await server.close();
  delete process.env[KEY_ENV];
});
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const judge = () =>
  openAIJudge({
    baseURL: server.baseURL,
    model: 'tiny-judge',
    apiKeyEnv: KEY_ENV,
    baseDelayMs: 2,
    maxDelayMs: 20,
  });

function pairs(n: number, tag = ''): { baseline: ModelOutput[]; model: ModelOutput[] } {
  const baseline: ModelOutput[] = [];
  const model: ModelOutput[] = [];
  for (let i = 0; i < n; i++) {
    const instruction = `Question ${i}${tag}: explain "quotes" and\nnewlines`;
    baseline.push({ instruction, output: 'b'.repeat(5 + ((i * 7) % 13)), generator: 'base', dataset: 'd' });
    model.push({ instruction, output: `m${'é'.repeat((i * 5) % 17)}`, generator: 'mine', dataset: 'd' });
  }
  return { baseline, model };
}

/** What the test server's length-preferring judge must yield after the order is mapped back. */
const expected = (b: string, m: string) => 1 + ([...m].length + 1) / ([...b].length + [...m].length + 2);

describe('preferenceFromChoice (alpaca_eval logprob_parser, is_binarize false)', () => {
  it('is 2 - P(m) / (P(m) + P(M)) over the top logprobs', () => {
    const p = preferenceFromChoice({
      logprobs: {
        content: [
          {
            token: 'M',
            logprob: -0.0001202317,
            top_logprobs: [
              { token: 'M', logprob: -0.0001202317 },
              { token: 'm', logprob: -9.03137 },
              { token: 'The', logprob: -16.0 },
            ],
          },
        ],
      },
    });
    const pm = Math.exp(-9.03137);
    const pM = Math.exp(-0.0001202317);
    expect(p.source).toBe('logprobs');
    expect(p.preference).toBeCloseTo(2 - pm / (pm + pM), 14);
    // claude-2's first published annotation: the outputs were switched, so the stored value is 3 - p
    expect(3 - p.preference).toBeCloseTo(1.0001195986, 9);
  });
  it('treats a label missing from the top list as probability 0, and falls back to the answer', () => {
    expect(
      preferenceFromChoice({
        logprobs: { content: [{ token: 'm', logprob: -1, top_logprobs: [{ token: 'm', logprob: -1 }] }] },
      }),
    ).toEqual({ preference: 1, source: 'logprobs' });
    expect(preferenceFromChoice({ message: { content: 'M' }, logprobs: null })).toEqual({
      preference: 2,
      source: 'discrete',
    });
    expect(preferenceFromChoice({ message: { content: ' m\n' } })).toEqual({
      preference: 1,
      source: 'discrete',
    });
    const none = preferenceFromChoice({ message: { content: 'Both' } });
    expect(none.source).toBe('none');
    expect(Number.isNaN(none.preference)).toBe(true);
  });
  it('reads a label with whitespace around it as the label, summing its variants', () => {
    // a judge whose vocabulary answers " M": 0.9 for M, 0.05 for m (exact matching would read "certainly m")
    const p = preferenceFromChoice({
      message: { content: ' M' },
      logprobs: {
        content: [
          {
            token: ' M',
            logprob: Math.log(0.9),
            top_logprobs: [
              { token: ' M', logprob: Math.log(0.9) },
              { token: 'm', logprob: Math.log(0.05) },
              { token: 'M', logprob: Math.log(0.03) },
              { token: ' M', logprob: Math.log(0.9) }, // listed twice: counted once
            ],
          },
        ],
      },
    });
    expect(p.source).toBe('logprobs');
    expect(p.preference).toBeCloseTo(2 - 0.05 / (0.05 + 0.93), 12);
    // GPT-4 answers "M" and lists " M" too: alpaca_eval (and its published numbers) leave " M" out
    const top = [
      { token: 'M', logprob: Math.log(0.6) },
      { token: 'm', logprob: Math.log(0.2) },
      { token: ' M', logprob: Math.log(0.2) },
    ];
    expect(
      preferenceFromChoice({
        logprobs: { content: [{ token: 'M', logprob: top[0]!.logprob, top_logprobs: top }] },
      }).preference,
    ).toBeCloseTo(2 - 0.2 / 0.8, 12);
    // no exact label listed: the variants
    expect(
      preferenceFromChoice({
        logprobs: { content: [{ token: 'The', logprob: -1, top_logprobs: [{ token: ' m', logprob: -2 }] }] },
      }),
    ).toEqual({ preference: 1, source: 'logprobs' });
  });
});

describe('judge prompt and order', () => {
  it('labels the first output m and the second M, as JSON strings', () => {
    const [system, user] = judgeMessages('Say "hi"', 'A\n"1"', 'B');
    expect(system!.role).toBe('system');
    expect(user!.content).toContain('{"assistant": "m", "answer": "A\\n\\"1\\""}');
    expect(user!.content).toContain('{"assistant": "M", "answer": "B"}');
    expect(user!.content).toContain('{"request": "Say \\"hi\\""}');
  });
  it('randomizes the order per instruction, reproducibly, and by seed', () => {
    const xs = Array.from({ length: 400 }, (_, i) => `instruction ${i}`);
    const switched = xs.filter((x) => isSwitched(x)).length;
    expect(switched).toBeGreaterThan(160);
    expect(switched).toBeLessThan(240);
    expect(xs.map((x) => isSwitched(x))).toEqual(xs.map((x) => isSwitched(x)));
    expect(xs.map((x) => isSwitched(x, 1))).not.toEqual(xs.map((x) => isSwitched(x)));
  });
});

describe('judgePairs over real HTTP (local OpenAI-compatible server on 127.0.0.1)', () => {
  it('maps preferences back through the random order, writes annotations.json, and caches', async () => {
    const dir = tmp();
    const { baseline, model } = pairs(30);
    const out = join(dir, 'annotations.json');
    const before = server.served;
    const r = await judgePairs({ judge: judge(), baseline, model, cacheDir: join(dir, 'cache'), out });
    expect(r.requests).toBe(30);
    expect(server.served - before).toBe(30);
    expect(
      r.annotations.some((a) => a.is_switched_outputs) && r.annotations.some((a) => !a.is_switched_outputs),
    ).toBe(true);
    for (const [i, a] of r.annotations.entries()) {
      expect(a.preference_source).toBe('logprobs');
      expect(a.preference!).toBeCloseTo(expected(baseline[i]!.output, model[i]!.output), 12);
      expect(a).toMatchObject({
        output_1: baseline[i]!.output,
        output_2: model[i]!.output,
        generator_1: 'base',
        generator_2: 'mine',
        annotator: `weighted_judge:tiny-judge@${server.baseURL}`,
      });
    }
    // alpaca_eval's format: our reader (which reads theirs) reads ours, and the statistics agree
    const read = readAnnotations(out);
    expect(winRate(read)).toEqual(winRate(r.annotations));
    // rerun: every call is a cache hit, the server sees nothing
    const again = await judgePairs({ judge: judge(), baseline, model, cacheDir: join(dir, 'cache') });
    expect(again.requests).toBe(0);
    expect(again.cacheHits).toBe(30);
    expect(server.served - before).toBe(30);
    expect(again.annotations).toEqual(r.annotations);
  });

  it('retries 503 and 429, falls back to the discrete answer and says so, keeps unreadable as null', async () => {
    const dir = tmp();
    const baseline: ModelOutput[] = ['[flaky] a', '[rate] b', '[no-logprobs] c', '[garbage] d'].map(
      (instruction) => ({ instruction, output: 'short', generator: 'base' }),
    );
    const model = baseline.map((b) => ({ ...b, output: 'a much longer answer', generator: 'mine' }));
    const warnings: string[] = [];
    const retries: number[] = [];
    const j = openAIJudge({
      baseURL: server.baseURL,
      model: 'tiny-judge',
      apiKeyEnv: KEY_ENV,
      baseDelayMs: 1,
      onRetry: (x) => retries.push(x.status!),
    });
    const r = await judgePairs({
      judge: j,
      baseline,
      model,
      cacheDir: join(dir, 'c'),
      onWarning: (w) => warnings.push(w),
    });
    expect(retries.sort()).toEqual([429, 503]);
    expect(r.annotations.map((a) => a.preference_source)).toEqual([
      'logprobs',
      'logprobs',
      'discrete',
      'none',
    ]);
    expect(r.annotations[2]!.preference).toBe(2);
    expect(r.annotations[3]!.preference).toBeNull();
    expect(r.discreteFallbacks).toBe(1);
    expect(warnings.join('\n')).toMatch(/1 of 4 judgements had no usable top_logprobs/);
    expect(warnings.join('\n')).toMatch(/1 of 4 judgements could not be read/);
    expect(winRate(r.annotations).n_total).toBe(3);
  });

  it('an abort ends a retry backoff at once, a Retry-After of minutes included', async () => {
    let served = 0;
    const busy = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        served++;
        res.writeHead(429, { 'retry-after': '30' }).end('{"error":{"message":"slow down"}}');
      });
    });
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const { port } = busy.address() as AddressInfo;
      const stop = new AbortController();
      const delays: number[] = [];
      const j = openAIJudge({
        baseURL: `http://127.0.0.1:${port}/v1`,
        model: 'tiny-judge',
        onRetry: (x) => {
          delays.push(x.delayMs);
          setTimeout(() => stop.abort(new Error('stopped by the user')), 10);
        },
      });
      const t0 = Date.now();
      const request = { messages: [], max_tokens: 1, temperature: 1, logprobs: true, top_logprobs: 5 };
      await expect(j.complete(request, { signal: stop.signal })).rejects.toThrow('stopped by the user');
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(delays).toEqual([30_000]);
      expect(served).toBe(1);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('a judge that does not answer in time: retried, then an error that names the timeout and how to lengthen it', async () => {
    const silent = createServer((req) => req.resume()); // reads the request, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const { port } = silent.address() as AddressInfo;
      const retries: string[] = [];
      const j = openAIJudge({
        baseURL: `http://127.0.0.1:${port}/v1`,
        model: 'tiny-judge',
        timeoutMs: 100,
        maxRetries: 1,
        baseDelayMs: 10,
        onRetry: (x) => retries.push(x.error),
      });
      const error = await j.complete(oneRequest).catch((e: unknown) => e);
      expect(retries).toEqual(['no answer within 0.1 s']); // a timeout keeps the usual schedule
      expect((error as JudgeRequestError).message).toBe(
        `judge request to http://127.0.0.1:${port}/v1/chat/completions failed after 2 attempts: no answer within 0.1 s; a judge that answers slowly (a long output, a local model) needs a longer \`timeoutMs\` (CLI: --timeout SECONDS)`,
      );
      expect(error).toMatchObject({ isRetryable: true });
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  /** A loopback port that nothing listens on. */
  async function closedPort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as AddressInfo;
    await new Promise((r) => probe.close(r));
    return port;
  }
  const oneRequest = { messages: [], max_tokens: 1, temperature: 1, logprobs: true, top_logprobs: 5 };

  it('a refused connection fails within seconds, twice retried, naming the URL and the cause', async () => {
    const port = await closedPort();
    const retries: { attempt: number; delayMs: number; status?: number; error: string }[] = [];
    const j = openAIJudge({
      baseURL: `http://127.0.0.1:${port}/v1`,
      model: 'tiny-judge',
      onRetry: (x) => retries.push(x),
    });
    const t0 = Date.now();
    const error = await j.complete(oneRequest).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(3000); // the default schedule (6 retries from 1 s) took a minute or two
    expect(JudgeRequestError.isInstance(error)).toBe(true);
    const url = `http://127.0.0.1:${port}/v1/chat/completions`;
    expect((error as JudgeRequestError).message).toBe(
      `judge request to ${url} failed after 3 attempts: cannot connect (connect ECONNREFUSED 127.0.0.1:${port}); check that the judge server is up and that the \`baseURL\` option (CLI: --base-url or $OPENAI_BASE_URL) names it`,
    );
    expect(error).toMatchObject({ url, status: undefined, isRetryable: true });
    expect(retries.map((r) => [r.attempt, r.status, r.error])).toEqual([
      [1, undefined, `cannot connect (connect ECONNREFUSED 127.0.0.1:${port})`],
      [2, undefined, `cannot connect (connect ECONNREFUSED 127.0.0.1:${port})`],
    ]);
    // 0.5 s then 1 s, each with jitter down to half
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(250);
    expect(retries[0]!.delayMs).toBeLessThanOrEqual(500);
    expect(retries[1]!.delayMs).toBeGreaterThanOrEqual(500);
    expect(retries[1]!.delayMs).toBeLessThanOrEqual(1000);
    // maxRetries below two is honoured
    const none = openAIJudge({ baseURL: `http://127.0.0.1:${port}/v1`, model: 'm', maxRetries: 0 });
    await expect(none.complete(oneRequest)).rejects.toThrow(
      `judge request to ${url} failed: cannot connect (connect ECONNREFUSED 127.0.0.1:${port}); check`,
    );
  });

  it('refuses a baseURL that is not an http(s) URL, or no model, when the judge is made', () => {
    const make = (options: unknown) => () => openAIJudge(options as Parameters<typeof openAIJudge>[0]);
    for (const baseURL of [
      'localhost:8080/v1',
      '127.0.0.1:8080/v1',
      'ftp://judge.example/v1',
      '',
      undefined,
    ]) {
      const error = (() => {
        try {
          make({ baseURL, model: 'gpt-4-turbo' })();
        } catch (e) {
          return e;
        }
      })();
      expect(EvalInputError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({
        field: 'baseURL',
        message: `baseURL: expected an http:// or https:// URL up to /v1 (e.g. http://127.0.0.1:8080/v1), got ${JSON.stringify(baseURL)}`,
      });
    }
    for (const model of [undefined, '', ' ']) {
      expect(make({ baseURL: 'http://127.0.0.1:8080/v1', model })).toThrow(
        `model: expected the name of the judge model (e.g. 'gpt-4-turbo'), got ${JSON.stringify(model)}`,
      );
    }
    expect(make(undefined)).toThrow(
      'openAIJudge: expected an object of options ({ baseURL, model }), got undefined',
    );
    expect(make({ baseURL: 'HTTP://127.0.0.1:8080/v1', model: 'm' })().id).toBe('m@http://127.0.0.1:8080/v1');
  });

  it('a host name that does not resolve fails as promptly; a port fetch blocks is not retried', async () => {
    // fetch's errors as undici throws them (a real lookup could wait on an absent resolver)
    const fetchFailed = (cause: Error) => {
      throw new TypeError('fetch failed', { cause });
    };
    const retries: string[] = [];
    const causes = [
      Object.assign(new Error('getaddrinfo ENOTFOUND judge.example'), { code: 'ENOTFOUND' }),
      // every address of a host refused: a message-less AggregateError
      Object.assign(
        new AggregateError([
          new Error('connect ECONNREFUSED ::1:8080'),
          new Error('connect ECONNREFUSED 127.0.0.1:8080'),
        ]),
        { code: 'ECONNREFUSED' },
      ),
    ];
    const details = [
      'getaddrinfo ENOTFOUND judge.example',
      'connect ECONNREFUSED ::1:8080; connect ECONNREFUSED 127.0.0.1:8080',
    ];
    try {
      for (const [k, cause] of causes.entries()) {
        retries.length = 0;
        vi.stubGlobal('fetch', async () => fetchFailed(cause));
        const j = openAIJudge({
          baseURL: 'http://judge.example:8080/v1',
          model: 'm',
          onRetry: (x) => retries.push(x.error),
        });
        await expect(j.complete(oneRequest)).rejects.toThrow(
          `judge request to http://judge.example:8080/v1/chat/completions failed after 3 attempts: cannot connect (${details[k]}); check that the judge server is up`,
        );
        expect(retries).toEqual([`cannot connect (${details[k]})`, `cannot connect (${details[k]})`]);
      }
    } finally {
      vi.unstubAllGlobals();
    }
    retries.length = 0;
    const blocked = openAIJudge({
      baseURL: 'http://127.0.0.1:6000/v1',
      model: 'm',
      onRetry: (x) => retries.push(x.error),
    });
    const error = await blocked.complete(oneRequest).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      'judge request to http://127.0.0.1:6000/v1/chat/completions failed: fetch refuses port 6000, one that browsers block too; serve the judge on another port',
    );
    expect(error).toMatchObject({ isRetryable: false });
    expect(retries).toEqual([]);
  });

  it('a 503 keeps the long schedule: retried from baseDelayMs, doubling, past two retries', async () => {
    let received = 0;
    const busy = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        if (received <= 3) {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"loading"}}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'm' } }] }));
      });
    });
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const { port } = busy.address() as AddressInfo;
      const retries: { attempt: number; delayMs: number; status?: number; error: string }[] = [];
      const j = openAIJudge({
        baseURL: `http://127.0.0.1:${port}/v1`,
        model: 'm',
        baseDelayMs: 40,
        onRetry: (x) => retries.push(x),
      });
      const answer = await j.complete(oneRequest);
      expect(answer.choices[0]!.message).toEqual({ role: 'assistant', content: 'm' });
      expect(received).toBe(4);
      expect(retries.map((r) => [r.attempt, r.status, r.error])).toEqual(
        [1, 2, 3].map((attempt) => [attempt, 503, 'HTTP 503: {"error":{"message":"loading"}}']),
      );
      // 40, 80, 160 ms, each with jitter down to half
      retries.forEach((r, i) => {
        expect(r.delayMs).toBeGreaterThanOrEqual(20 * 2 ** i);
        expect(r.delayMs).toBeLessThanOrEqual(40 * 2 ** i);
      });
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('judges identical outputs a draw without a call, and refuses unmatched instructions', async () => {
    const dir = tmp();
    const same = [{ instruction: 'x', output: 'same', generator: 'a' }];
    const r = await judgePairs({
      judge: judge(),
      baseline: same,
      model: [{ ...same[0]!, generator: 'b' }],
      cacheDir: dir,
    });
    expect(r.requests).toBe(0);
    expect(r.annotations[0]).toMatchObject({ preference: 1.5, preference_source: 'identical' });
    await expect(
      judgePairs({
        judge: judge(),
        baseline: same,
        model: [{ instruction: 'y', output: 'o', generator: 'b' }],
        cacheDir: dir,
      }),
    ).rejects.toThrow(/have no output in the baseline/);
  });

  it('names both files when an instruction has no baseline output, before any request', async () => {
    const dir = tmp();
    const baseline = join(dir, 'ref.json');
    const model = join(dir, 'mine.json');
    writeFileSync(baseline, JSON.stringify([{ instruction: 'x', output: 'b', generator: 'ref' }]));
    writeFileSync(model, JSON.stringify([{ instruction: 'y', output: 'o', generator: 'm' }]));
    const before = server.received;
    const error = await judgePairs({ judge: judge(), baseline, model, cacheDir: dir }).catch((e) => e);
    expect(EvalInputError.isInstance(error)).toBe(true);
    expect((error as EvalInputError).file).toBe(model);
    expect((error as Error).message).toBe(
      `${model}: 1 of the 1 instructions have no output in the baseline ${baseline} (first: "y"); give baseline outputs for the same instruction set`,
    );
    expect(server.received).toBe(before);
    // arrays read by the caller: the files it names
    expect(() =>
      pairOutputs(
        [{ instruction: 'x', output: 'b', generator: 'ref' }],
        [{ instruction: 'y', output: 'o', generator: 'm' }],
        {
          baseline: 'B.json',
          model: 'M.json',
        },
      ),
    ).toThrow(/^M\.json: .* in the baseline B\.json/);
  });

  it('reports what the cache (or identical outputs) answered as resumed, at the first report', async () => {
    const dir = tmp();
    const { baseline, model } = pairs(6, ' progress');
    model[5] = { ...baseline[5]!, generator: 'mine' }; // identical: a draw without a request
    const cacheDir = join(dir, 'cache');
    await judgePairs({ judge: judge(), baseline: baseline.slice(0, 3), model: model.slice(0, 3), cacheDir });
    const reports: Progress[] = [];
    const r = await judgePairs({
      judge: judge(),
      baseline,
      model,
      cacheDir,
      concurrency: 1,
      onProgress: (p) => reports.push(p),
    });
    expect(r).toMatchObject({ cacheHits: 3, identical: 1, requests: 2 });
    expect(reports[0]).toEqual({ phase: 'judge', done: 4, total: 6, resumed: 4 });
    expect(reports.map((p) => p.done)).toEqual([4, 5, 6]);
    expect(reports.every((p) => p.resumed === 4)).toBe(true);
  });

  it('a request that fails for good aborts the ones in flight, and ends the run with its error', async () => {
    const { baseline, model } = pairs(8, ' fail');
    let calls = 0;
    const aborted: unknown[] = [];
    const failing = {
      id: 'failing-judge',
      complete(_request: unknown, { signal }: { signal?: AbortSignal } = {}) {
        const call = calls++;
        return new Promise<never>((_resolve, reject) => {
          if (call === 0) setTimeout(() => reject(new Error('judge down')), 20);
          // the others wait for an answer that never comes, until their signal is aborted
          else
            signal?.addEventListener('abort', () => {
              aborted.push(signal.reason);
              reject(signal.reason);
            });
        });
      },
    };
    await expect(
      judgePairs({ judge: failing, baseline, model, cacheDir: tmp(), concurrency: 4 }),
    ).rejects.toThrow('judge down');
    expect(calls).toBe(4); // no new pair was started after the failure
    expect(aborted).toHaveLength(3);
    expect((aborted[0] as Error).message).toBe('judge down');
  });

  it('an abort, before the first request or while one is in flight, rejects with RunAbortedError; the cache keeps what was answered', async () => {
    const { baseline, model } = pairs(6, ' abort');
    const cacheDir = tmp();
    const controller = new AbortController();
    let calls = 0;
    const answering = {
      id: 'answering-judge',
      complete(_request: unknown, { signal }: { signal?: AbortSignal } = {}) {
        const call = calls++;
        // two answers (discrete: no logprobs), then a request that waits until the user stops the run
        if (call < 2) return Promise.resolve({ choices: [{ message: { role: 'assistant', content: 'm' } }] });
        setTimeout(() => controller.abort(new Error('stopped by the user')), 10);
        return new Promise<never>((_resolve, reject) => {
          signal?.addEventListener('abort', () => reject(signal.reason));
        });
      },
    } as unknown as JudgeClient;
    const settings = { judge: answering, baseline, model, cacheDir, concurrency: 1 };
    const error = await judgePairs({ ...settings, signal: controller.signal }).catch((e: unknown) => e);
    expect(RunAbortedError.isInstance(error)).toBe(true);
    expect((error as RunAbortedError).code).toBe('eval.aborted');
    expect((error as RunAbortedError).message).toBe(
      `judging aborted: stopped by the user; 2 judgements (of 6 pairs) are kept in the judge cache ${cacheDir}, from which the same call resumes`,
    );
    expect(((error as RunAbortedError).cause as Error).message).toBe('stopped by the user');
    expect(calls).toBe(3);
    // aborted before anything is asked: the same error, nothing more asked
    const before = new AbortController();
    before.abort(new Error('interrupted'));
    const early = await judgePairs({ ...settings, signal: before.signal }).catch((e: unknown) => e);
    expect((early as RunAbortedError).message).toBe(
      `judging aborted: interrupted; 2 judgements (of 6 pairs) are kept in the judge cache ${cacheDir}, from which the same call resumes`,
    );
    expect(calls).toBe(3);
  });

  it("a judge's 400 for one pair (a prompt over its context) leaves that pair unjudged, named, and the run goes on; a rerun asks again", async () => {
    const dir = tmp();
    const { baseline, model } = pairs(4, ' refused');
    model[2] = { ...model[2]!, output: `${model[2]!.output} [too-long]` };
    const cacheDir = join(dir, 'cache');
    const out = join(dir, 'annotations.json');
    const warnings: string[] = [];
    const settings = {
      baseline,
      model,
      files: { model: 'run/outputs/rules.json' },
      cacheDir,
      out,
      concurrency: 1,
      onWarning: (m: string) => warnings.push(m),
    };
    const served = server.served;
    const r = await judgePairs({ ...settings, judge: judge() });
    const message = `judge request to ${server.baseURL}/chat/completions failed: HTTP 400: {"error":{"message":"the prompt is longer than the model's context"}}`;
    expect(r.refused).toEqual([{ index: 2, instruction: model[2]!.instruction, status: 400, message }]);
    // 4 sent: 3 answered, 1 refused
    expect(r).toMatchObject({ requests: 4, cacheHits: 0, unreadable: 0 });
    expect(server.served - served).toBe(3);
    expect(r.annotations[2]).toMatchObject({
      instruction: model[2]!.instruction,
      preference: null,
      preference_source: 'refused',
      judge_error: message,
    });
    expect(r.annotations.filter((a) => a.preference !== null)).toHaveLength(3);
    // what judgePairs writes for a refusal is what isRefusedPair (the report, eval winrate) reads as one
    expect(r.annotations.map(isRefusedPair)).toEqual([false, false, true, false]);
    expect(winRate(r.annotations).n_total).toBe(3);
    expect(readAnnotations(out)[2]).toMatchObject({ preference: null, judge_error: message });
    expect(warnings).toEqual([
      `1 of 4 pairs were not judged: the judge refused their request (# counts outputs from 0): output #2 of run/outputs/rules.json (instruction "Question 2 refused: explain \\"quotes\\" and newlines"): ${message}. ` +
        `They are left out of the win rate (preference null, "judge_error" in ${out}), which is over the other 3; ` +
        'a rerun asks for them again (judge with a model that takes them, such as one with a longer context, or leave those outputs out)',
    ]);
    // the refusal is not cached: a rerun asks the judge again for that pair, and only for it
    const received = server.received;
    const again = await judgePairs({ ...settings, judge: judge() });
    expect(again).toMatchObject({ requests: 1, cacheHits: 3 });
    expect(again.refused.map((p) => p.index)).toEqual([2]);
    expect(server.received - received).toBe(1);
    // a judge that takes it now (say, with a longer context): judged, and the annotations complete
    const real = judge();
    const taking: JudgeClient = {
      id: real.id,
      complete: (request, o) =>
        real.complete(
          {
            ...request,
            messages: request.messages.map((m) => ({ ...m, content: m.content.replace(' [too-long]', '') })),
          },
          o,
        ),
    };
    const last = await judgePairs({ ...settings, judge: taking });
    expect(last).toMatchObject({ requests: 1, cacheHits: 3, refused: [] });
    expect(readAnnotations(out).every((a) => typeof a.preference === 'number')).toBe(true);
  });

  it('a judge that refuses every request (its settings, not the pairs) stops the run after 5, answering none', async () => {
    const { baseline, model } = pairs(8, ' all refused');
    for (const m of model) m.output += ' [too-long]';
    const received = server.received;
    const error = await judgePairs({
      judge: judge(),
      baseline,
      model,
      cacheDir: tmp(),
      concurrency: 1,
    }).catch((e: unknown) => e);
    expect(server.received - received).toBe(5);
    expect(JudgeRequestError.isInstance(error)).toBe(true);
    expect((error as JudgeRequestError).status).toBe(400);
    expect((error as Error).message).toBe(
      `the judge refused each of the first 5 requests and answered none (the last, for output #4 (instruction "Question 4 all refused: explain \\"quotes\\" and newlines"): ` +
        `judge request to ${server.baseURL}/chat/completions failed: HTTP 400: {"error":{"message":"the prompt is longer than the model's context"}}): ` +
        "a judge that refuses every request refuses how it is asked (the model's name, a request parameter such as logprobs it does not take), not the pairs, so the run stops",
    );
  });

  it('a 404 (no such endpoint or model) ends the run at once, naming the model and base URL to check', async () => {
    const wrong = openAIJudge({
      baseURL: `${server.baseURL}/nope`,
      model: 'tiny-judge',
      apiKeyEnv: KEY_ENV,
      baseDelayMs: 1,
    });
    const { baseline, model } = pairs(3, ' 404');
    const received = server.received;
    const error = await judgePairs({ judge: wrong, baseline, model, cacheDir: tmp(), concurrency: 1 }).catch(
      (e: unknown) => e,
    );
    expect(server.received - received).toBe(1); // not retried, no other pair asked
    expect((error as JudgeRequestError).status).toBe(404);
    expect((error as Error).message).toBe(
      `judge request to ${server.baseURL}/nope/chat/completions failed: HTTP 404: {"error":{"message":"not found"}} ` +
        `(check the judge model's name, "tiny-judge", and that the base URL ${server.baseURL}/nope names the endpoint up to /v1 (CLI: --judge-model, --base-url))`,
    );
  });

  it('names a missing cacheDir or judge id before any request', async () => {
    const requests: unknown[] = [];
    const judge: JudgeClient = {
      id: 'j',
      complete: async (request) => {
        requests.push(request);
        throw new Error('not asked');
      },
    };
    const outputs = (generator: string, output: string): ModelOutput[] => [
      { instruction: 'q', output, generator },
    ];
    const pairs = { baseline: outputs('base', 'a'), model: outputs('m', 'b') };
    const error = await judgePairs({ judge, ...pairs } as never).catch((e: unknown) => e);
    expect(EvalInputError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      field: 'cacheDir',
      message: "cacheDir: expected the directory of the judge cache (e.g. 'run/.judge-cache'), got undefined",
    });
    const cacheDir = join(mkdtempSync(join(tmpdir(), 'eval-judge-noid-')), 'cache');
    try {
      await expect(
        judgePairs({ judge: { complete: judge.complete } as JudgeClient, ...pairs, cacheDir }),
      ).rejects.toThrow(
        'judge.id: expected the id of the judge, which keys its cache and names the annotator, got undefined',
      );
      expect(existsSync(cacheDir)).toBe(false);
    } finally {
      rmSync(dirname(cacheDir), { recursive: true, force: true });
    }
    expect(requests).toEqual([]);
  });

  it('refuses an empty list of model outputs (a win rate of nothing)', async () => {
    const { baseline } = pairs(2);
    const run = judgePairs({ judge: judge(), baseline, model: [], cacheDir: tmp() });
    await expect(run).rejects.toThrow(EvalInputError);
    await expect(
      judgePairs({ judge: judge(), baseline, model: [], cacheDir: tmp(), files: { model: 'mine.json' } }),
    ).rejects.toThrow(/^mine\.json: model: no outputs to judge$/);
  });

  it('warns when the outputs cover part of the baseline set, or repeat instructions', async () => {
    const baseline = ['a', 'b', 'c'].map((instruction) => ({ instruction, output: 'x', generator: 'base' }));
    const warnings: string[] = [];
    await judgePairs({
      judge: judge(),
      baseline,
      model: [
        { instruction: 'a', output: 'x', generator: 'm' },
        { instruction: 'a', output: 'x', generator: 'm' },
      ],
      cacheDir: tmp(),
      onWarning: (w) => warnings.push(w),
    });
    expect(warnings).toEqual([
      "1 of the model's 2 outputs repeat an instruction: each is judged, so the win rate weighs those instructions more",
      "the model's outputs cover 1 of the baseline's 3 instructions: the win rate is over that subset, not the whole set",
    ]);
    warnings.length = 0;
    await judgePairs({
      judge: judge(),
      baseline,
      model: baseline,
      cacheDir: tmp(),
      onWarning: (w) => warnings.push(w),
    });
    expect(warnings).toEqual([]);
  });

  it('a judge of the same model name at another endpoint is another judge: no cache answers for it', async () => {
    const dir = tmp();
    const other = await startJudgeServer();
    try {
      const { baseline, model } = pairs(4, ' endpoint');
      const cacheDir = join(dir, 'cache');
      // a local stand-in named like the default judge, then the "real" one at another URL
      const stub = openAIJudge({ baseURL: server.baseURL, model: 'gpt-4-turbo', apiKeyEnv: KEY_ENV });
      const first = await judgePairs({ judge: stub, baseline, model, cacheDir });
      expect(first.requests).toBe(4);
      const before = other.served;
      const real = openAIJudge({ baseURL: `${other.baseURL}/`, model: 'gpt-4-turbo' });
      const second = await judgePairs({ judge: real, baseline, model, cacheDir });
      expect(second).toMatchObject({ requests: 4, cacheHits: 0 });
      expect(other.served - before).toBe(4);
      expect(second.annotations[0]!.annotator).toBe(`weighted_judge:gpt-4-turbo@${other.baseURL}`);
      // the same endpoint written differently is the same judge
      const again = openAIJudge({
        baseURL: other.baseURL.replace('http://', 'HTTP://'),
        model: 'gpt-4-turbo',
      });
      expect((await judgePairs({ judge: again, baseline, model, cacheDir })).cacheHits).toBe(4);
    } finally {
      await other.close();
    }
    // OpenAI's own endpoint keeps the model name alone, as alpaca_eval names its judges
    expect(judgeId('https://api.openai.com/v1/', 'gpt-4-turbo')).toBe('gpt-4-turbo');
    expect(openAIJudge({ baseURL: OPENAI_BASE_URL, model: 'gpt-4-turbo' }).id).toBe('gpt-4-turbo');
    expect(judgeEndpoint('https://user:pw@Example.COM:443/v1//?q=1')).toBe('https://example.com/v1');
  });

  it('annotations of another judge, seed, baseline or model are not replaced without replace; the same settings judge again', async () => {
    const dir = tmp();
    const more = pairs(6, ' replace');
    const cacheDir = join(dir, 'cache');
    const out = join(dir, 'annotations.json');
    // the model's first 4 outputs, against the whole baseline
    const settings = {
      judge: judge(),
      baseline: more.baseline,
      model: more.model.slice(0, 4),
      cacheDir,
      out,
    };
    expect(finishedAnnotationsDifferences(settings)).toBeUndefined(); // nothing there yet
    await judgePairs(settings);
    expect(existsSync(`${out}.done`)).toBe(true);
    expect(finishedAnnotationsDifferences(settings)).toEqual([]);
    // the same settings: judged again, from the cache; more outputs of the same model too
    expect((await judgePairs(settings)).cacheHits).toBe(4);
    // the record says what the annotations cover, which is no setting: more outputs are judged into them
    expect(readDoneRecord(out)?.coverage).toEqual({ instructions: 4, baselineInstructions: 6 });
    const grown = await judgePairs({ ...settings, model: more.model });
    expect(grown).toMatchObject({ cacheHits: 4, requests: 2 });
    expect(readDoneRecord(out)?.coverage).toEqual({ instructions: 6, baselineInstructions: 6 });
    expect(finishedAnnotationsDifferences(settings)).toEqual([]);
    const other = openAIJudge({ baseURL: server.baseURL, model: 'other-judge', apiKeyEnv: KEY_ENV });
    const refusals: [Partial<Parameters<typeof judgePairs>[0]>, string][] = [
      [{ judge: other }, 'judge, annotator'],
      [{ seed: 1 }, 'seed'],
      [{ request: { top_logprobs: 20 } }, 'request'],
      [{ baseline: more.baseline.map((b) => ({ ...b, output: `${b.output}!` })) }, 'baseline'],
      [{ model: more.model.map((m) => ({ ...m, generator: 'theirs' })) }, 'generators'],
    ];
    const before = server.served;
    for (const [change, differs] of refusals) {
      const options = { ...settings, model: more.model, ...change };
      expect(finishedAnnotationsDifferences(options)).toEqual(differs.split(', '));
      const error = await judgePairs(options).catch((e: unknown) => e);
      expect(EvalInputError.isInstance(error), differs).toBe(true);
      expect((error as EvalInputError).message).toBe(
        `${out}: holds the finished annotations of another run (different ${differs}), so it is not replaced; pass replace: true to replace it, or choose another out`,
      );
    }
    expect(server.served).toBe(before); // refused before any request
    const replaced = await judgePairs({
      ...settings,
      model: more.model,
      baseline: more.baseline,
      judge: other,
      replace: true,
    });
    expect(readAnnotations(out)[0]!.annotator).toBe(`weighted_judge:other-judge@${server.baseURL}`);
    expect(replaced.requests).toBe(6);
    // a file the judging did not write (no record): not replaced either
    const foreign = join(dir, 'foreign.json');
    writeFileSync(foreign, '[]');
    await expect(judgePairs({ ...settings, out: foreign })).rejects.toThrow(
      `${foreign}: exists, with no record of the run that wrote it (${foreign}.done): it may be anything, so it is not replaced; pass replace: true to replace it, or choose another out`,
    );
  });

  it('fails with a clear error on a bad API key (not retried)', async () => {
    const bad = openAIJudge({
      baseURL: server.baseURL,
      model: 'tiny-judge',
      apiKey: 'wrong',
      baseDelayMs: 1,
    });
    const { baseline, model } = pairs(1, 'key');
    const error = await judgePairs({ judge: bad, baseline, model, cacheDir: tmp() }).catch((e: unknown) => e);
    expect(JudgeRequestError.isInstance(error)).toBe(true);
    expect((error as JudgeRequestError).status).toBe(401);
    expect((error as JudgeRequestError).message).toMatch(/HTTP 401.*check the API key/);
  });

  it('resumes after the judging process is killed with SIGKILL: cached calls are not repeated', async () => {
    const dir = tmp();
    const slow = await startJudgeServer({ delayMs: 25 });
    try {
      const { baseline, model } = pairs(40, ' kill');
      writeFileSync(join(dir, 'baseline.json'), JSON.stringify(baseline));
      writeFileSync(join(dir, 'model.json'), JSON.stringify(model));
      const cacheDir = join(dir, 'cache');
      const out = join(dir, 'annotations.json');
      const dist = resolve(import.meta.dirname, '../dist/index.js');
      expect(existsSync(dist), 'build the package first (turbo runs build before test)').toBe(true);
      const child = spawn(
        process.execPath,
        [
          resolve(import.meta.dirname, 'fixtures/judge-child.mjs'),
          dist,
          slow.baseURL,
          join(dir, 'baseline.json'),
          join(dir, 'model.json'),
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
      const deadline = Date.now() + 20_000;
      while (cached() < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(existsSync(out)).toBe(false);
      const k = cached();
      expect(k).toBeGreaterThanOrEqual(12);
      expect(k).toBeLessThan(40);
      await new Promise((r) => setTimeout(r, 200)); // let the server finish the killed child's in-flight requests
      const servedBefore = slow.served;
      const j = openAIJudge({ baseURL: slow.baseURL, model: 'tiny-judge', concurrency: 2 });
      const resumed = await judgePairs({
        judge: j,
        baseline: join(dir, 'baseline.json'),
        model: join(dir, 'model.json'),
        cacheDir,
        out,
      });
      expect(resumed.cacheHits).toBe(k);
      expect(resumed.requests).toBe(40 - k);
      expect(slow.served - servedBefore).toBe(40 - k);
      for (const [i, a] of resumed.annotations.entries())
        expect(a.preference!).toBeCloseTo(expected(baseline[i]!.output, model[i]!.output), 12);
      const third = await judgePairs({ judge: j, baseline, model, cacheDir });
      expect(third.requests).toBe(0);
      expect(third.annotations).toEqual(readAnnotations(out));
    } finally {
      await slow.close();
    }
  }, 30_000);
});
