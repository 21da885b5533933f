import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  finishedAnnotationsDifferences,
  type JudgeClient,
  type JudgeRequest,
  judgePairs,
  type ModelOutput,
  writeModelOutputs,
} from '../src/index.js';

// An option given as undefined (a spread of optional settings, a TypeScript consumer's
// `T | undefined`) is one not given: it never replaces a default with nothing.
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'eval-undefined-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A judge that answers `m` with logprobs and records the requests it is sent. */
function recordingJudge(): JudgeClient & { requests: JudgeRequest[] } {
  const requests: JudgeRequest[] = [];
  return {
    id: 'recording-judge',
    requests,
    async complete(request) {
      requests.push(request);
      return {
        choices: [
          {
            message: { content: 'm' },
            logprobs: {
              content: [
                {
                  token: 'm',
                  logprob: Math.log(0.7),
                  top_logprobs: [
                    { token: 'm', logprob: Math.log(0.7) },
                    { token: 'M', logprob: Math.log(0.3) },
                  ],
                },
              ],
            },
            finish_reason: 'stop',
          },
        ],
      };
    },
  };
}

const rows = (generator: string, n: number, tag = ''): ModelOutput[] =>
  Array.from({ length: n }, (_, i) => ({
    instruction: `instruction ${i}${tag}`,
    output: `${generator} answer ${i}`,
    generator,
  }));

describe('judgePairs: undefined options keep their defaults', () => {
  it('request fields left undefined are sent as the defaults, and recorded as them', async () => {
    const dir = tmp();
    const [baseline, model] = [rows('base', 2), rows('mine', 2)];
    const judge = recordingJudge();
    const out = join(dir, 'annotations.json');
    await judgePairs({
      judge,
      baseline,
      model,
      cacheDir: join(dir, 'cache'),
      out,
      request: {
        max_tokens: undefined,
        temperature: undefined,
        top_logprobs: undefined,
        logprobs: undefined,
      },
      files: { baseline: undefined, model: undefined },
      seed: undefined,
      annotatorName: undefined,
    });
    expect(judge.requests).toHaveLength(2);
    for (const r of judge.requests) {
      expect({ ...r, messages: undefined }).toEqual({
        messages: undefined,
        max_tokens: 1,
        temperature: 1,
        logprobs: true,
        top_logprobs: 5,
      });
    }
    // the record is that of the defaults: the same settings as a call without the undefined fields
    expect(finishedAnnotationsDifferences({ judge, baseline, model, out })).toEqual([]);
    expect(
      finishedAnnotationsDifferences({ judge, baseline, model, out, request: { temperature: undefined } }),
    ).toEqual([]);
  });

  it('files left undefined keep the paths given as baseline and model in messages', async () => {
    const dir = tmp();
    const baselineFile = join(dir, 'baseline.json');
    const modelFile = join(dir, 'model.json');
    await writeModelOutputs(baselineFile, rows('base', 2));
    await writeModelOutputs(modelFile, rows('mine', 2, ' (other)'));
    const error = await judgePairs({
      judge: recordingJudge(),
      baseline: baselineFile,
      model: modelFile,
      cacheDir: join(dir, 'cache'),
      files: { baseline: undefined, model: undefined },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ file: modelFile });
    expect(String((error as Error).message)).toContain(`no output in the baseline ${baselineFile}`);
  });
});
