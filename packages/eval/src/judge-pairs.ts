import { throwIfRunAborted } from './abort.js';
import type { Annotation } from './annotations.js';
import { writeAnnotations } from './annotations.js';
import { doneRecordDifferences, readDoneRecord, refuseToReplace, writeRecorded } from './done-record.js';
import { EvalInputError, JudgeRequestError, requireStringOption } from './errors.js';
import { sha256 } from './hash.js';
import { JudgeCache } from './judge-cache.js';
import { preferenceFromChoice } from './judge-preference.js';
import { isSwitched, judgeMessages } from './judge-prompt.js';
import type { ProgressCallbacks } from './model-interfaces.js';
import { type ModelOutput, readModelOutputs } from './model-outputs.js';
import type { ChatCompletionResponse, JudgeClient, JudgeRequest } from './openai-judge.js';
import { excerpt } from './runtime-adapters.js';

/** The key of a judging record (`${out}.done`) that says what the annotations cover. */
const COVERAGE = 'coverage';

/** HTTP statuses of a judge refusing one request for what it holds (not the key, the rate, the server). */
const REFUSED_REQUEST = new Set([400, 413, 422]);

/**
 * Refusals in a row, with no answer at all before them (none asked, none cached), after which the run
 * stops: a judge that refuses every request refuses its settings (a parameter it does not take), not
 * the pairs, and judging on would ask once per pair for nothing.
 */
const REFUSALS_WITHOUT_ANSWER = 5;

/**
 * `o` without its fields left undefined: spread over defaults, a field given as undefined (a spread
 * of a caller's optional settings) would replace the default with nothing, where it means not given.
 */
const definedFields = <T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };

/**
 * Options of `judgePairs`.
 *
 * @example
 * const options: JudgePairsOptions = {
 *   judge: openAIJudge({ baseURL: OPENAI_BASE_URL, model: 'gpt-4-turbo' }),
 *   baseline: baselineFile, model: file, cacheDir: '.cache/judge', concurrency: 16,
 * };
 */
export interface JudgePairsOptions extends ProgressCallbacks {
  judge: JudgeClient;
  /** The reference outputs (alpaca_eval's `output_1`, e.g. gpt4_1106_preview), or a path to them. */
  baseline: readonly ModelOutput[] | string;
  /** The evaluated model's outputs (`output_2`), or a path to them. */
  model: readonly ModelOutput[] | string;
  /** The files the outputs came from, for messages (default: the paths given as `baseline` and `model`). */
  files?: { baseline?: string | undefined; model?: string | undefined } | undefined;
  /** Directory of the judge cache: a rerun answers every cached (judge, prompt) for free. */
  cacheDir: string;
  /** Where to write `annotations.json` (optional). */
  out?: string | undefined;
  /** Seed of the output order (default 0). */
  seed?: number | string | undefined;
  /** Judgements started at once (default 8; the judge client's own limits still apply). */
  concurrency?: number | undefined;
  /** The `annotator` field (default `weighted_judge:${judge.id}`). */
  annotatorName?: string | undefined;
  /** Request parameters; defaults are alpaca_eval's weighted GPT-4-turbo method: 1 token, temperature 1, top 5 logprobs. */
  request?: { [K in Exclude<keyof JudgeRequest, 'messages'>]?: JudgeRequest[K] | undefined } | undefined;
  /**
   * Write over an `out` that holds something else: annotations of another judge (`judge.id`,
   * `annotatorName`, `request`), baseline, `seed` or generator of the model's outputs (as its `.done`
   * record says), or a file without such a record. Default false: refused before any request,
   * naming what differs (an `EvalInputError`). Annotations of the same settings are judged again
   * (from the cache: a rerun, or outputs that changed since, pays only for what is missing).
   */
  replace?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * What `judgePairs` did.
 *
 * @example
 * const r: JudgePairsResult = await judgePairs({ judge, baseline: baselineFile, model: file, cacheDir: 'cache' });
 * console.log(`${r.requests} asked, ${r.requests - r.refused.length} answered, ${r.cacheHits} cached, ${r.unreadable} unreadable`);
 */
export interface JudgePairsResult {
  annotations: Annotation[];
  /**
   * Judge requests this run sent (a request retried after a 429 or 5xx counts once): answered (each
   * answer cached) or refused, `requests - refused.length` of them answered.
   */
  requests: number;
  /** Judgements answered from the cache. */
  cacheHits: number;
  /** Pairs with identical outputs: a draw (1.5) without asking the judge. */
  identical: number;
  /** Judgements read from the discrete answer because the response had no usable logprobs. */
  discreteFallbacks: number;
  /** Judgements whose answer could not be read (preference null). */
  unreadable: number;
  /**
   * The pairs the judge refused (HTTP 400, 413 or 422: a prompt longer than its context, a content
   * filter), by index in the model's outputs, with the judge's message: not judged (preference null,
   * `preference_source: 'refused'`, `judge_error` in their annotation), left out of the win rate,
   * and not cached, so that a rerun asks for them again.
   */
  refused: { index: number; instruction: string; status: number; message: string }[];
}

/**
 * Each model output with the baseline output of its instruction: in order when both files list the
 * same instructions, else by instruction. A model instruction without a baseline output is an
 * `EvalInputError` naming both files (`files.model`, `files.baseline`), so that a caller judging
 * several outputs files can check them all before the first request is paid for.
 *
 * @example
 * const pairs = pairOutputs(readModelOutputs(baselineFile), readModelOutputs(file), { baseline: baselineFile, model: file });
 */
export function pairOutputs(
  baseline: readonly ModelOutput[],
  model: readonly ModelOutput[],
  files: { baseline?: string | undefined; model?: string | undefined } = {},
): (readonly [ModelOutput, ModelOutput])[] {
  const aligned =
    baseline.length === model.length && baseline.every((b, i) => b.instruction === model[i]!.instruction);
  if (aligned) return model.map((m, i) => [baseline[i]!, m] as const);
  const byInstruction = new Map(baseline.map((b) => [b.instruction, b]));
  const missing = model.filter((m) => !byInstruction.has(m.instruction));
  if (missing.length > 0) {
    const against = files.baseline ? `the baseline ${files.baseline}` : 'the baseline';
    throw new EvalInputError(
      files.model ?? '',
      `${missing.length} of the ${model.length} instructions have no output in ${against} (first: ${JSON.stringify(missing[0]!.instruction.slice(0, 80))}); give baseline outputs for the same instruction set`,
      { field: 'instruction' },
    );
  }
  return model.map((m) => [byInstruction.get(m.instruction)!, m] as const);
}

/**
 * Pairwise judgements of a model's outputs against baseline outputs, alpaca_eval's
 * `weighted_alpaca_eval_gpt4_turbo` way: for each instruction the two outputs are shown as `m` and
 * `M` in an order seeded by the instruction, the judge answers with one token, and the preference
 * is 2 - P(m) / (P(m) + P(M)) from `top_logprobs`, mapped back so that 1 means the baseline
 * (`output_1`) is better and 2 the model (`output_2`). Without logprobs the discrete answer is used
 * and `onWarning` says so. Calls are cached on disk by (judge, prompt), so a rerun, or a run resumed
 * after being killed, pays only for what is missing; the first progress report counts the pairs
 * answered without a request (cached, or identical outputs) as `done` and `resumed`. Every model
 * instruction needs a baseline output (see `pairOutputs`), checked before the first request, and
 * `model` at least one output. A pair whose request the judge refuses for what it holds (HTTP 400,
 * 413 or 422, such as a prompt longer than the judge model's context, or a content filter) is not
 * judged, as alpaca_eval leaves an annotation it could not get: its annotation keeps a null
 * preference (left out of the win rate), `preference_source: 'refused'` and the judge's message
 * (`judge_error`); the run goes on with the others, `refused` and `onWarning` name such pairs, and
 * as the refusal is not cached a rerun asks for them again. Five refusals before any answer (none
 * asked, none cached) stop the run: a judge that refuses everything refuses its settings. Any other
 * request that fails for good (a bad key: 401, 403; no such model or endpoint: 404; a server that
 * stays down) ends the run with its error: the requests still in flight are aborted (their retries
 * with them), and what was answered stays cached for the rerun. Aborting `signal` stops the run the
 * same way and rejects with `RunAbortedError` (code `eval.aborted`, `cause` the signal's reason),
 * its message saying how many judgements the cache keeps for the same call to resume. Writes alpaca_eval's `annotations.json` to `out`, then `${out}.done`, the
 * record of the judging (judge, request, seed, baseline, the outputs' generator): an `out` that holds
 * annotations of other settings, or a file without that record, is refused before any request
 * unless `replace` (see `finishedAnnotationsDifferences`).
 *
 * @example
 * const { annotations } = await judgePairs({
 *   judge: openAIJudge({ baseURL: 'https://api.openai.com/v1', model: 'gpt-4-turbo' }),
 *   baseline: '../shared/data/alpaca_eval/gpt4_1106_preview.model_outputs.json',
 *   model: 'run/outputs/eos-uniform-diversity.json',
 *   cacheDir: 'run/.judge-cache', out: 'run/annotations/eos-uniform-diversity.json',
 * });
 * console.log(winRate(annotations).win_rate);
 */
export async function judgePairs(options: JudgePairsOptions): Promise<JudgePairsResult> {
  requireStringOption(
    options.cacheDir,
    'cacheDir',
    "the directory of the judge cache (e.g. 'run/.judge-cache')",
  );
  requireStringOption(
    options.judge?.id,
    'judge.id',
    'the id of the judge, which keys its cache and names the annotator',
  );
  const baseline =
    typeof options.baseline === 'string' ? readModelOutputs(options.baseline) : options.baseline;
  const model = typeof options.model === 'string' ? readModelOutputs(options.model) : options.model;
  if (model.length === 0) {
    // annotations of nothing: a win rate of NaN, and an empty annotations.json that looks like a run
    throw new EvalInputError(
      options.files?.model ?? (typeof options.model === 'string' ? options.model : ''),
      'model: no outputs to judge',
      { field: 'model' },
    );
  }
  const pairs = pairOutputs(baseline, model, {
    ...(typeof options.baseline === 'string' ? { baseline: options.baseline } : {}),
    ...(typeof options.model === 'string' ? { model: options.model } : {}),
    ...definedFields(options.files ?? {}),
  });
  // a win rate over part of the instruction set, or over repeated instructions, looks like any other
  const distinct = new Set(model.map((m) => m.instruction)).size;
  if (distinct < model.length)
    options.onWarning?.(
      `${model.length - distinct} of the model's ${model.length} outputs repeat an instruction: each is judged, so the win rate weighs those instructions more`,
    );
  const baselineSet = new Set(baseline.map((b) => b.instruction));
  if (distinct < baselineSet.size)
    options.onWarning?.(
      `the model's outputs cover ${distinct} of the baseline's ${baselineSet.size} instructions: the win rate is over that subset, not the whole set`,
    );
  // annotations of another judge, baseline or model are refused before the first request is paid for
  const doneRecord = options.out ? judgeRecord(options, baseline, model) : undefined;
  if (options.out)
    refuseToReplace(options.out, doneRecord!, {
      journalPath: undefined,
      replace: options.replace,
      what: 'annotations',
      ignore: [COVERAGE],
    });
  const cache = new JudgeCache(options.cacheDir);
  const params = requestParams(options);
  const annotator = annotatorOf(options);
  const result: JudgePairsResult = {
    annotations: new Array(pairs.length),
    requests: 0,
    cacheHits: 0,
    identical: 0,
    discreteFallbacks: 0,
    unreadable: 0,
    refused: [],
  };
  const report = (done: number, resumed: number) =>
    options.onProgress?.({ phase: 'judge', done, total: pairs.length, resumed });

  /** The annotation of pair `index` before the judge's answer, and the request that asks for it. */
  function prepare(index: number) {
    const [base, mine] = pairs[index]!;
    const annotation: Annotation = {
      instruction: mine.instruction,
      output_1: base.output,
      generator_1: base.generator,
      dataset: mine.dataset ?? base.dataset ?? '',
      output_2: mine.output,
      generator_2: mine.generator,
      annotator,
      preference: null,
    };
    const switched = isSwitched(mine.instruction, options.seed ?? 0);
    const [first, second] = switched ? [mine.output, base.output] : [base.output, mine.output];
    const request: JudgeRequest = { messages: judgeMessages(mine.instruction, first, second), ...params };
    return {
      annotation,
      identical: base.output === mine.output,
      switched,
      request,
      key: sha256({ judge: options.judge.id, request }),
    };
  }

  function record(index: number, job: ReturnType<typeof prepare>, response: ChatCompletionResponse) {
    const choice = response.choices[0];
    const judged = preferenceFromChoice(choice);
    if (judged.source === 'discrete') result.discreteFallbacks++;
    if (judged.source === 'none') result.unreadable++;
    const inFrame = Number.isNaN(judged.preference) ? null : judged.preference;
    result.annotations[index] = {
      ...job.annotation,
      preference: inFrame === null ? null : job.switched ? 3 - inFrame : inFrame,
      preference_source: judged.source,
      is_switched_outputs: job.switched,
      raw_completion: choice ?? null,
    };
  }

  // what needs no request (identical outputs, cached answers) first: the first report counts it as
  // `resumed`, for the progress bar's rate, though not all of it is an earlier run's work (identical
  // outputs need no judge, and the cache answers what any run asked)
  const asks: { index: number; job: ReturnType<typeof prepare> }[] = [];
  for (let index = 0; index < pairs.length; index++) {
    const job = prepare(index);
    if (job.identical) {
      result.identical++;
      result.annotations[index] = { ...job.annotation, preference: 1.5, preference_source: 'identical' };
      continue;
    }
    const cached = cache.get(job.key)?.response as ChatCompletionResponse | undefined;
    if (cached) {
      result.cacheHits++;
      record(index, job, cached);
    } else asks.push({ index, job });
  }
  const resumed = result.cacheHits + result.identical;
  let done = resumed;
  report(done, resumed);

  // one failure stops the run: the requests still in flight (and their retries) are aborted rather
  // than left running, and paid for, after judgePairs has already failed
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  const modelFile = options.files?.model ?? (typeof options.model === 'string' ? options.model : undefined);

  /** Output #`index` of the model's outputs file, for messages. */
  const which = (index: number, instruction: string) =>
    `output #${index}${modelFile ? ` of ${modelFile}` : ''} (instruction ${excerpt(instruction)})`;

  async function judgeOne({ index, job }: (typeof asks)[number]): Promise<void> {
    let response: ChatCompletionResponse;
    try {
      response = await options.judge.complete(job.request, { signal: stop.signal });
    } catch (error) {
      if (!JudgeRequestError.isInstance(error) || !REFUSED_REQUEST.has(error.status ?? 0)) throw error;
      result.requests++;
      refusedPair(index, job, error);
      return;
    }
    result.requests++;
    await cache.set(job.key, { judge: options.judge.id, request: job.request, response });
    record(index, job, response);
  }

  /**
   * A judge's refusal of one pair's request (400, 413, 422: the request itself, such as a prompt
   * longer than the judge's context, or a content filter): the pair is not judged (preference null,
   * the judge's message kept), and not cached, so that a rerun asks again. Refusals with no answer
   * at all before them end the run (`REFUSALS_WITHOUT_ANSWER`): the judge refuses its settings.
   */
  function refusedPair(index: number, job: ReturnType<typeof prepare>, error: JudgeRequestError): void {
    const status = error.status!;
    result.refused.push({ index, instruction: job.annotation.instruction, status, message: error.message });
    result.annotations[index] = {
      ...job.annotation,
      preference_source: 'refused',
      is_switched_outputs: job.switched,
      judge_error: error.message,
    };
    if (
      result.requests === result.refused.length &&
      result.cacheHits === 0 &&
      result.refused.length >= REFUSALS_WITHOUT_ANSWER
    ) {
      throw new JudgeRequestError(
        error.url,
        `the judge refused each of the first ${result.refused.length} requests and answered none (the last, for ${which(index, job.annotation.instruction)}: ${error.message}): ` +
          "a judge that refuses every request refuses how it is asked (the model's name, a request parameter such as logprobs it does not take), not the pairs, so the run stops",
        { status, isRetryable: false, cause: error },
      );
    }
  }

  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.max(1, options.concurrency ?? 8) }, async () => {
    while (next < asks.length && !failure) {
      try {
        options.signal?.throwIfAborted();
        await judgeOne(asks[next++]!);
      } catch (error) {
        // the first error is the run's; the others are the aborts it caused. What is cached stays.
        if (!failure) {
          failure = { error };
          stop.abort(error);
        }
        return;
      }
      done++;
      report(done, resumed);
    }
  });
  await Promise.all(workers);
  options.signal?.removeEventListener('abort', onAbort);
  if (failure) {
    // stopped through `signal`: as the other runs, whatever the requests in flight rejected with
    throwIfRunAborted(
      options.signal,
      'judging',
      () =>
        `${result.requests - result.refused.length + result.cacheHits} judgements (of ${pairs.length} pairs) are kept in the judge cache ${options.cacheDir}, from which the same call resumes`,
    );
    throw failure.error;
  }
  if (result.discreteFallbacks > 0) {
    options.onWarning?.(
      `${result.discreteFallbacks} of ${pairs.length} judgements had no usable top_logprobs; their preference is the discrete answer (1 or 2), not a weighted one. Use a judge endpoint that returns logprobs for alpaca_eval's weighted method.`,
    );
  }
  if (result.unreadable > 0) {
    options.onWarning?.(
      `${result.unreadable} of ${pairs.length} judgements could not be read (no m/M in logprobs or answer); their preference is null and they are left out of the win rate.`,
    );
  }
  if (result.refused.length > 0) {
    result.refused.sort((a, b) => a.index - b.index);
    const shown = result.refused
      .slice(0, 5)
      .map((r) => `${which(r.index, r.instruction)}: ${r.message}`)
      .join('; ');
    const more = result.refused.length > 5 ? `; and ${result.refused.length - 5} more` : '';
    options.onWarning?.(
      `${result.refused.length} of ${pairs.length} pairs were not judged: the judge refused their request (# counts outputs from 0): ${shown}${more}. ` +
        `They are left out of the win rate (preference null${options.out ? `, "judge_error" in ${options.out}` : ''}), which is over the other ${pairs.length - result.refused.length}; ` +
        'a rerun asks for them again (judge with a model that takes them, such as one with a longer context, or leave those outputs out)',
    );
  }
  if (options.out)
    await writeRecorded(
      options.out,
      // what the annotations cover, for reports (not a setting: more outputs are judged into them)
      { ...doneRecord!, [COVERAGE]: { instructions: distinct, baselineInstructions: baselineSet.size } },
      (out) => writeAnnotations(out, result.annotations),
    );
  return result;
}

type JudgeSettings = Pick<JudgePairsOptions, 'seed' | 'annotatorName' | 'request'> & {
  judge: Pick<JudgeClient, 'id'>;
};

/** The request parameters: alpaca_eval's weighted GPT-4-turbo method's, unless `request` says otherwise. */
const requestParams = (options: JudgeSettings): Omit<JudgeRequest, 'messages'> => ({
  max_tokens: 1,
  temperature: 1,
  logprobs: true,
  top_logprobs: 5,
  ...definedFields(options.request ?? {}),
});

const annotatorOf = (options: JudgeSettings) => options.annotatorName ?? `weighted_judge:${options.judge.id}`;

/**
 * What identifies the annotations in `out` (`${out}.done`): the judge and how it is asked, the
 * order's seed, the baseline, and whose outputs they judge (their generator). Not the outputs
 * themselves: annotations follow their outputs file, so that outputs generated again, or more of
 * them, are judged again into the same file, paying only for the pairs not in the cache.
 */
function judgeRecord(
  options: JudgeSettings,
  baseline: readonly ModelOutput[],
  model: readonly ModelOutput[],
): Record<string, unknown> {
  return {
    kind: 'judge',
    version: 1,
    judge: options.judge.id,
    annotator: annotatorOf(options),
    request: requestParams(options),
    seed: options.seed ?? 0,
    baseline: sha256(baseline.map((b) => [b.instruction, b.output, b.generator])),
    generators: [...new Set(model.map((m) => m.generator))].sort(),
  };
}

/**
 * Options of `finishedAnnotationsDifferences`: `judgePairs`'s settings, with `out` required (the
 * judge's `id` is all it reads of the judge).
 *
 * @example
 * const settings: FinishedAnnotationsOptions = { judge, baseline: baselineFile, model: file, out: 'run/annotations/rules.json' };
 */
export type FinishedAnnotationsOptions = JudgeSettings &
  Pick<JudgePairsOptions, 'baseline' | 'model'> & {
    out: string;
  };

/**
 * How the judging recorded in `${out}.done` differs from a `judgePairs` call with these settings:
 * the record's keys that differ (`judge`, `annotator`, `request`, `seed`, `baseline`, `generators`,
 * `version`), an empty list when the settings are the same (`judgePairs` judges again into `out`),
 * undefined without a readable record (no `${out}.done`: `judgePairs` refuses such an `out`
 * unless `replace`). Lets a caller that judges several outputs files check them all before the
 * first request.
 *
 * @example
 * const diff = finishedAnnotationsDifferences({ judge, baseline: baselineFile, model: file, out });
 * if (diff?.length) throw new Error(`${out} holds annotations of another ${diff.join(', ')}`);
 */
export function finishedAnnotationsDifferences(options: FinishedAnnotationsOptions): string[] | undefined {
  const rows = (x: readonly ModelOutput[] | string) => (typeof x === 'string' ? readModelOutputs(x) : x);
  return doneRecordDifferences(
    options.out,
    judgeRecord(options, rows(options.baseline), rows(options.model)),
    [COVERAGE],
  );
}

/**
 * What annotations cover, as their record (`${out}.done`) keeps it: the distinct instructions judged,
 * and the baseline's (`instructions` < `baselineInstructions`: a win rate over a subset). Undefined
 * without a record, or one written before it was kept. For `winRatesOfRun` (not exported by the package).
 */
export function annotationsCoverage(
  out: string,
): { instructions: number; baselineInstructions: number } | undefined {
  const coverage = readDoneRecord(out)?.[COVERAGE] as Record<string, unknown> | undefined;
  const { instructions, baselineInstructions } = coverage ?? {};
  return typeof instructions === 'number' && typeof baselineInstructions === 'number'
    ? { instructions, baselineInstructions }
    : undefined;
}
