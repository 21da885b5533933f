import { describe, expect, it, vi } from 'vitest';
import { distinctPrompts, lengthGroups } from '../src/decode-engine.js';
import { GenerationAbortedError, inputSeed, loadModel } from '../src/index.js';
import { diverseModelDir, PROMPTS, streamInBackground } from './helpers.js';

describe('continuous batching', () => {
  it('requests that join a running batch (longer and shorter prompts) give exactly their single-row output', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {}, maxBatchSize: 3 });
    const opts = { maxNewTokens: 24, rules: 'hewitt2024' } as const;
    const alone = [];
    for (const p of PROMPTS) alone.push((await model.generate(p, opts))[0]!);

    // the first request starts alone; the others arrive while it decodes, one of them must wait for room
    const first = streamInBackground(model, PROMPTS[0]!, opts, 5);
    await first.started;
    const loads: number[] = [];
    const others = Promise.all(
      PROMPTS.slice(1).map((p) => model.generate(p, opts).then(([r]) => r!.tokenIds)),
    );
    loads.push(model.load.queued + model.load.decoding);
    const results = [await first.ids, ...(await others)];
    for (const [i, ids] of results.entries()) expect(ids).toEqual(alone[i]!.tokenIds);
    expect(loads[0]).toBe(4); // 1 decoding + 3 queued, 2 of which join at the next step
    await model.dispose();
  });

  it('the prompts of one generate() call are prefilled together, in one pass', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const run = vi.spyOn(model.session, 'run');
    await model.generate(PROMPTS, { maxNewTokens: 3, ignoreEos: true });
    const prefills = run.mock.calls.filter(([step]) => step.past === null).map(([step]) => step.batch);
    expect(prefills).toEqual([4]); // not [1, 3]: the first prompt alone, the rest after it
    expect(run).toHaveBeenCalledTimes(3); // the prefill gives each row its first token, 2 steps the rest
    await model.dispose();
  });

  it('rows with the same prompt share one prefill, and each samples as it would alone', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const run = vi.spyOn(model.session, 'run');
    // a server's n = 3 of one prompt and n = 2 of another, sampled: 5 rows, 2 distinct prompts
    const inputs = [PROMPTS[0]!, PROMPTS[0]!, PROMPTS[0]!, PROMPTS[1]!, PROMPTS[1]!];
    const opts = { maxNewTokens: 16, temperature: 1, seed: 9, logprobs: 2, rules: 'hewitt2024' } as const;
    const together = await model.generate(inputs, opts);
    const prefills = run.mock.calls.filter(([step]) => step.past === null).map(([step]) => step.batch);
    expect(prefills).toEqual([2]);
    run.mockRestore();
    // the rows of one prompt start from one copy of its logits (each samples its own token from them)
    const first = together.map((r) => r.logprobs![0]!.top);
    expect(first[1]).toEqual(first[0]);
    expect(first[2]).toEqual(first[0]);
    expect(first[4]).toEqual(first[3]);
    // each row as the same call with that row alone would give it (the same seed for input i), the
    // log-probs to float32 rounding (a batch decodes in other kernel shapes than one row)
    for (const [i, input] of inputs.entries()) {
      const [alone] = await model.generate(input, { ...opts, seed: inputSeed(9, i) });
      expect(together[i]!.tokenIds).toEqual(alone!.tokenIds);
      for (const [j, lp] of together[i]!.logprobs!.entries())
        expect(lp.logprob).toBeCloseTo(alone!.logprobs![j]!.logprob, 4);
    }
    expect(new Set(together.slice(0, 3).map((r) => r.text)).size).toBeGreaterThan(1);
    await model.dispose();
  });

  it('distinctPrompts maps each row to the first row with its prompt', () => {
    const rows = [[1, 2], [3], [1, 2], [1], [3]].map((promptIds) => ({ req: { promptIds } }));
    const { distinct, source } = distinctPrompts(rows);
    expect(distinct).toEqual([rows[0], rows[1], rows[3]]);
    expect(source).toEqual([0, 1, 0, 2, 1]);
    // and the most alternatives any row of each prompt wants its prompt's log-probs with
    const scored = [1, null, 3, null, 0].map((k, i) => ({ req: { ...rows[i]!.req, promptLogprobs: k } }));
    expect(distinctPrompts(scored).top).toEqual([3, 0, null]);
  });

  it('one aborted request leaves the others in its batch untouched', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const opts = { maxNewTokens: 20 } as const;
    const [want] = await model.generate(PROMPTS[1]!, opts);
    const controller = new AbortController();
    const doomed = model.generate(PROMPTS[0]!, {
      ...opts,
      maxNewTokens: 400,
      ignoreEos: true,
      signal: controller.signal,
    });
    const survivor = model.generate(PROMPTS[1]!, opts);
    setTimeout(() => controller.abort(new Error('client went away')), 30);
    await expect(doomed).rejects.toBeInstanceOf(GenerationAbortedError);
    expect((await survivor)[0]!.tokenIds).toEqual(want!.tokenIds);
    expect(model.load).toEqual({ queued: 0, decoding: 0 });
    await model.dispose();
  });

  it('generate with many prompts and a per-call limit returns results in input order', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {}, maxBatchSize: 2 });
    const progress: number[] = [];
    const all = await model.generate([...PROMPTS, ...PROMPTS], {
      maxNewTokens: 10,
      batchSize: 3,
      onProgress: (d) => progress.push(d),
    });
    for (const [i, r] of all.entries()) {
      const [single] = await model.generate(PROMPTS[i % 4]!, { maxNewTokens: 10 });
      expect(r.tokenIds).toEqual(single!.tokenIds);
    }
    expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await model.dispose();
  });

  it('dispose() ends running generations at the next step and lets scoring finish, then frees the session', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const [want] = await model.score([{ prompt: PROMPTS[0]!, continuation: ' a b c d' }]);
    const running = expect(model.generate(PROMPTS, { maxNewTokens: 400, ignoreEos: true })).rejects.toThrow(
      'generation aborted: the model was disposed',
    );
    const parts: string[] = [];
    const streamed = expect(
      (async () => {
        for await (const part of model.stream(PROMPTS[1]!, { maxNewTokens: 400, ignoreEos: true }))
          parts.push(part.type);
      })(),
    ).rejects.toBeInstanceOf(GenerationAbortedError);
    await new Promise((r) => setTimeout(r, 50));
    const scoring = model.score([{ prompt: PROMPTS[0]!, continuation: ' a b c d' }]);
    await model.dispose();
    await running;
    await streamed;
    expect(parts).not.toContain('finish');
    expect((await scoring)[0]!.logprobs).toEqual(want!.logprobs);
    await expect(model.generate('Hi')).rejects.toMatchObject({ code: 'runtime.released' });
  });

  it('refuses a maxBatchSize that could never decode a row', async () => {
    const dir = await diverseModelDir();
    for (const bad of [0, -1, Number.NaN, 1.5])
      await expect(loadModel(dir, { log: () => {}, maxBatchSize: bad })).rejects.toThrow(
        `loadModel: maxBatchSize must be a whole number of rows, at least 1, got ${bad}`,
      );
  });

  it('a per-call limit below the prompts settles when the engine runs dry between rows', async () => {
    // batchSize 1: each row is submitted by the callback of the one before, while the finished loop
    // winds down (it used to stay queued forever)
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const single = [];
    for (const p of PROMPTS) single.push((await model.generate(p, { maxNewTokens: 4 }))[0]!.tokenIds);
    for (const batchSize of [1, 2]) {
      const all = await model.generate(PROMPTS, { maxNewTokens: 4, batchSize });
      expect(all.map((r) => r.tokenIds)).toEqual(single);
    }
    // a generate() started from inside onProgress
    const nested = await new Promise<number[]>((resolve, reject) => {
      let started = false;
      model
        .generate(PROMPTS.slice(0, 2), {
          maxNewTokens: 4,
          onProgress: () => {
            if (started) return;
            started = true;
            model.generate(PROMPTS[2]!, { maxNewTokens: 4 }).then(([r]) => resolve(r!.tokenIds), reject);
          },
        })
        .catch(reject);
    });
    expect(nested).toEqual(single[2]);
    expect(model.load).toEqual({ queued: 0, decoding: 0 });
    await model.dispose();
  });

  it('a request whose own processing fails rejects alone, when it joins or later; the batch goes on', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const opts = { maxNewTokens: 12 } as const;
    const [want] = await model.generate(PROMPTS[1]!, opts);
    const failing = (atStep: number) => ({
      process(_row: Float32Array, ctx: { step: number }) {
        if (ctx.step === atStep) throw new Error(`processor bug at step ${atStep}`);
      },
    });
    for (const atStep of [0, 3]) {
      const doomed = model.generate(PROMPTS[0]!, { ...opts, processors: [failing(atStep)] });
      const innocent = model.generate(PROMPTS[1]!, opts);
      await expect(doomed).rejects.toThrow(`processor bug at step ${atStep}`);
      expect((await innocent)[0]!.tokenIds).toEqual(want!.tokenIds);
    }
    // a processor that leaves nothing to pick: a clear error, greedy or sampled
    const nan = { process: (row: Float32Array) => row.fill(Number.NaN) };
    for (const temperature of [0, 1]) {
      await expect(
        model.generate(PROMPTS[0]!, { ...opts, temperature, processors: [nan] }),
      ).rejects.toMatchObject({
        code: 'runtime.no_token',
        param: 'processors',
      });
    }
    expect(model.load).toEqual({ queued: 0, decoding: 0 });
    expect((await model.generate(PROMPTS[1]!, opts))[0]!.tokenIds).toEqual(want!.tokenIds);
    await model.dispose();
  });

  it('rows admitted together are grouped by prompt length: one long prompt is not padding for short ones', () => {
    const row = (n: number) => ({ req: { promptIds: new Array<number>(n).fill(1) } });
    const lengths = (groups: { req: { promptIds: number[] } }[][]) =>
      groups.map((g) => g.map((r) => r.req.promptIds.length));
    // the audit's case: seven short prompts and a 1,417-token one arriving together
    expect(lengths(lengthGroups([row(1417), ...new Array(7).fill(0).map(() => row(19))]))).toEqual([
      [19, 19, 19, 19, 19, 19, 19],
      [1417],
    ]);
    // padding within 64 positions (or a quarter of the real ones) stays one pass
    expect(lengths(lengthGroups([row(30), row(10), row(50)]))).toEqual([[10, 30, 50]]);
    expect(lengths(lengthGroups([row(300), row(400), row(350)]))).toEqual([[300, 350, 400]]);
    expect(lengths(lengthGroups([row(10), row(200), row(210)]))).toEqual([[10], [200, 210]]);
    expect(lengthGroups([])).toEqual([]);
  });

  it('a long prompt joining the batch is prefilled in chunks with decoding steps between them', async () => {
    const dir = await diverseModelDir();
    const model = await loadModel(dir, { log: () => {}, prefillChunk: 8 });
    const opts = { maxNewTokens: 40, ignoreEos: true } as const;
    const long = { promptIds: Array.from({ length: 120 }, (_, i) => 20 + (i % 300)) };
    const [aloneA] = await model.generate(PROMPTS[0]!, opts);
    const [aloneB] = await model.generate(long, { maxNewTokens: 5 });
    const run = vi.spyOn(model.session, 'run');
    const first = streamInBackground(model, PROMPTS[0]!, opts, 3);
    await first.started;
    run.mockClear();
    const [joined] = await model.generate(long, { maxNewTokens: 5 });
    const kinds = run.mock.calls.map(([step]) =>
      step.seq === 1 ? `step of ${step.batch}` : `prefill ${step.seq}`,
    );
    // 120 positions in chunks of 8: 15 runs, each followed by one step of the running row but the last
    const prefills = kinds.filter((k) => k.startsWith('prefill'));
    expect(prefills).toEqual(new Array(15).fill('prefill 8'));
    const between = kinds.slice(kinds.indexOf('prefill 8'), kinds.lastIndexOf('prefill 8') + 1);
    expect(between).toEqual(new Array(29).fill(0).map((_, i) => (i % 2 === 0 ? 'prefill 8' : 'step of 1')));
    expect(kinds.slice(kinds.lastIndexOf('prefill 8') + 1)).toContain('step of 2'); // then decoded together
    expect(joined!.tokenIds).toEqual(aloneB!.tokenIds);
    expect(await first.ids).toEqual(aloneA!.tokenIds);
    await model.dispose();
  });

  it('a failed prefill of new rows fails them alone: the running batch and its cache go on', async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {} });
    const opts = { maxNewTokens: 30, ignoreEos: true } as const;
    const [alone] = await model.generate(PROMPTS[0]!, opts);
    const first = streamInBackground(model, PROMPTS[0]!, opts, 3);
    await first.started;
    const run = model.session.run.bind(model.session);
    const spy = vi.spyOn(model.session, 'run').mockImplementation((step) => {
      if (step.past === null) return Promise.reject(new Error('out of memory (simulated)'));
      return run(step);
    });
    await expect(model.generate(PROMPTS[3]!, { maxNewTokens: 4 })).rejects.toThrow(
      'out of memory (simulated)',
    );
    spy.mockRestore();
    expect(await first.ids).toEqual(alone!.tokenIds);
    // and the engine takes new rows again
    const [after] = await model.generate(PROMPTS[1]!, { maxNewTokens: 4 });
    expect(after!.tokenIds).toHaveLength(4);
    // one admission of three length groups, the middle one's prefill failing: it alone fails, the
    // longer group after it is still tried
    const medium = { promptIds: new Array<number>(120).fill(300) };
    const long = { promptIds: new Array<number>(230).fill(301) };
    const solo = await Promise.all([PROMPTS[2]!, long].map((p) => model.generate(p, { maxNewTokens: 4 })));
    vi.spyOn(model.session, 'run').mockImplementation((step) => {
      if (step.past === null && step.inputIds[0] === 300n)
        return Promise.reject(new Error('out of memory (simulated)'));
      return run(step);
    });
    const results = await Promise.allSettled(
      [PROMPTS[2]!, medium, long].map((p) => model.generate(p, { maxNewTokens: 4 })),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('out of memory (simulated)');
    for (const k of [0, 2] as const)
      expect((results[k] as PromiseFulfilledResult<{ tokenIds: number[] }[]>).value[0]!.tokenIds).toEqual(
        solo[k === 0 ? 0 : 1]![0]!.tokenIds,
      );
    await model.dispose();
  });

  it("a short request arriving during a long prompt's prefill is prefilled between its chunks, not after it", async () => {
    const model = await loadModel(await diverseModelDir(), { log: () => {}, prefillChunk: 8 });
    const long = { promptIds: new Array<number>(160).fill(300) };
    const [aloneLong] = await model.generate(long, { maxNewTokens: 4 });
    const [aloneShort] = await model.generate(PROMPTS[2]!, { maxNewTokens: 3 });
    const run = model.session.run.bind(model.session);
    let longChunks = 0;
    let short: Promise<number> | undefined;
    vi.spyOn(model.session, 'run').mockImplementation((step) => {
      if (step.seq > 1 && step.inputIds.every((id) => id === 300n)) {
        longChunks++;
        // the short request arrives while the long prompt's third chunk runs
        if (longChunks === 3)
          short = model.generate(PROMPTS[2]!, { maxNewTokens: 3 }).then(([r]) => {
            expect(r!.tokenIds).toEqual(aloneShort!.tokenIds);
            return longChunks; // how far the long prefill had come when the short one finished
          });
      }
      return run(step);
    });
    const [joined] = await model.generate(long, { maxNewTokens: 4 });
    expect(joined!.tokenIds).toEqual(aloneLong!.tokenIds);
    expect(longChunks).toBe(20);
    expect(await short!).toBeLessThan(10); // done long before the long prompt's 20 chunks
    await model.dispose();
  });
});
