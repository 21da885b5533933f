import { ImplicitItError } from '@implicit-it/rules';
import type { GenerationResult, StreamPart } from '@implicit-it/runtime';
import { ApiError, shuttingDown, toApiError } from './errors.js';
import type { Metrics } from './metrics.js';
import {
  type ChoiceResult,
  ChunkAligner,
  ResponseWriter,
  requestUsage,
  type TokenInfo,
  type Usage,
} from './openai-format.js';
import { candidateCount, candidates, choiceCount, choiceInput, type Plan, pickBest } from './plan.js';
import type { Release, WorkQueue } from './work-queue.js';

/** What running a plan needs from the app. */
export interface RunContext {
  /** The slots and queue of the request's model. */
  queue: WorkQueue;
  /** The request's model (its id), for messages. */
  model: string;
  metrics: Metrics;
  log: (line: string) => void;
  /** The route label for metrics. */
  route: string;
  /** When the request arrived (performance.now()). */
  started: number;
  /** Aborted when the client disconnects. */
  signal: AbortSignal;
  /** Aborted when the server stops (`ApiApp.shutdown`): generations end with 503 `server_shutting_down`. */
  shutdown: AbortSignal;
  /** The response's `X-Request-Id`, for log lines. */
  requestId: string;
  /** Log a line when a stream ends (`ApiOptions.accessLog`). */
  accessLog: boolean;
  /** Who sent the request, for that line (`from 10.0.0.5 (X-Forwarded-For ...)`), where known. */
  client?: string | undefined;
  /** Told the request's token counts once it has generated, for the access log line of a JSON answer. */
  onUsage: (usage: Usage) => void;
  /**
   * Milliseconds a stream may wait for its client to accept data before its generation is stopped
   * and its slots freed (`ApiOptions.streamStallTimeout`; 0: no limit).
   */
  stallTimeout: number;
  /**
   * Milliseconds a stream waits for the model (for its slots, a long prefill, a slow step) before it
   * sends a `: keep-alive` comment, and again each as long (`ApiOptions.streamKeepAlive`); a stream
   * still without its first part after as long is committed (200 and its headers sent) with one.
   * 0: none, and a stream is committed at its first part.
   */
  keepAlive: number;
  /**
   * The connection, where the host gives it (`@hono/node-server`'s `outgoing`): a stalled stream
   * destroys it; elsewhere its body is errored, which the host answers by closing the connection.
   */
  connection?: { destroy(): void };
}

/** The requests whose client leaving was counted: each once, whichever path sees it first. */
const abortsCounted = new WeakSet<RunContext>();

/** Counts the request in `implicit_it_client_aborts_total`, once however many paths see its client leave. */
function countClientAbort(ctx: RunContext): void {
  if (abortsCounted.has(ctx)) return;
  abortsCounted.add(ctx);
  ctx.metrics.inc('implicit_it_client_aborts_total');
}

/** The request field that holds the prompt: errors about the prompt name it. */
const promptParam = (plan: Plan) => (plan.kind === 'chat' ? 'messages' : 'prompt');

/** The API error of a generation's failure; server errors (500) are logged with the request id. */
function failure(ctx: RunContext, plan: Plan, error: unknown): ApiError {
  if (ctx.shutdown.aborted) return shuttingDown();
  const apiError = toApiError(error, promptParam(plan));
  if (apiError.status >= 500 && apiError.code !== 'server_shutting_down')
    ctx.log(`${ctx.route} (${ctx.requestId}): ${(error as Error)?.stack ?? String(error)}`);
  return apiError;
}

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`);
const DONE = encoder.encode('data: [DONE]\n\n');
/** An SSE comment: clients (the openai ones included) skip it; proxies see bytes arrive. */
const KEEP_ALIVE = encoder.encode(': keep-alive\n\n');

/** Seconds a client told 429 should wait: about one queue's worth of average work, 1 to 60. */
function retryAfter(queue: WorkQueue): string {
  return String(Math.min(60, Math.max(1, Math.ceil(queue.depth / queue.concurrency))));
}

/** The request's slots: one per candidate (choice), at most the server's concurrency. */
const slotsOf = (ctx: RunContext, plan: Plan) => Math.min(candidateCount(plan), ctx.queue.concurrency);

/**
 * The request's slots (`slotsOf`); refused, the request is over and `abort` is unlinked: 503
 * `server_shutting_down` when the server stopped while it waited (its client is still there and is
 * told so, as running requests are), 499 when its client left (counted in
 * `implicit_it_client_aborts_total`), 429 when the queue is full.
 */
async function acquire(ctx: RunContext, plan: Plan, abort: ReturnType<typeof linkedAbort>): Promise<Release> {
  let release: Release | null;
  try {
    release = await ctx.queue.acquire(abort.signal, slotsOf(ctx, plan));
  } catch (error) {
    abort.unlink();
    // whichever signal aborted first gave `abort` its reason
    if (ctx.shutdown.aborted && (error === ctx.shutdown.reason || !ctx.signal.aborted)) throw shuttingDown();
    countClientAbort(ctx);
    throw new ApiError(499, 'the client closed the request while it was queued', { code: 'client_closed' });
  }
  if (release === null) {
    abort.unlink();
    throw busy(ctx.queue, ctx.metrics, ctx.model);
  }
  return release;
}

/** The 429 of a model's full queue (counted in `implicit_it_rejected_total`). */
export function busy(queue: WorkQueue, metrics: Metrics, model: string): ApiError {
  metrics.inc('implicit_it_rejected_total', { model });
  return new ApiError(
    429,
    `The model ${JSON.stringify(model)} is busy: ${queue.active} ${queue.active === 1 ? 'generation is' : 'generations are'} running and ${queue.depth} ${queue.depth === 1 ? 'request is' : 'requests are'} waiting for it (its limit). Retry after the Retry-After header's seconds.`,
    { type: 'rate_limit_error', code: 'queue_full', headers: { 'Retry-After': retryAfter(queue) } },
  );
}

/**
 * Aborted when the client leaves or the server stops. `unlink` when the request is over: the
 * server's shutdown signal lives as long as the app and must not collect a listener per request.
 */
function linkedAbort(ctx: RunContext): AbortController & { unlink(): void } {
  const abort = new AbortController();
  const listeners = [ctx.signal, ctx.shutdown].map((signal) => {
    const listener = () => abort.abort(signal.reason);
    if (signal.aborted) abort.abort(signal.reason);
    else signal.addEventListener('abort', listener, { once: true });
    return () => signal.removeEventListener('abort', listener);
  });
  return Object.assign(abort, {
    unlink: () => {
      for (const remove of listeners) remove();
    },
  });
}

/**
 * Counts a request's prompt tokens as it starts, each prompt once however many choices it has (as
 * `usage` does; the runtime prefills the choices of one prompt once). Generated tokens are counted
 * one by one.
 */
function countPrompt(ctx: RunContext, plan: Plan): void {
  ctx.metrics.inc('implicit_it_prompt_tokens_total', { model: ctx.model }, promptTokens(plan));
}

/** A plan's prompt tokens, each prompt once however many choices it has (as `usage` counts them). */
const promptTokens = (plan: Plan) => plan.inputs.reduce((sum, input) => sum + input.promptIds.length, 0);

/** A part of one candidate's (choice's) stream. */
interface ChoicePart {
  index: number;
  part: StreamPart;
}

/**
 * Runs the candidates of a plan, `slots` at once (concurrent calls: the runtime decodes them in one
 * batch), and yields their parts as they come, each with its candidate's index (without `best_of`,
 * its choice's). A candidate that ends lets the next one in, in order; once none is left to start,
 * its slot is given back (`release(1)`). When one fails, or the caller stops early, `abort` stops the
 * others, and they are ended before this ends.
 */
async function* choiceParts(
  plan: Plan,
  abort: AbortController,
  slots: number,
  release: Release,
): AsyncGenerator<ChoicePart> {
  const list = candidates(plan);
  const gens: AsyncGenerator<StreamPart>[] = [];
  type Next =
    | { index: number; ok: true; result: IteratorResult<StreamPart> }
    | { index: number; ok: false; error: unknown };
  // settled, never rejected: a choice's failure must not be left unhandled while another is awaited
  const next = (index: number): Promise<Next> =>
    gens[index]!.next().then(
      (result) => ({ index, ok: true, result }),
      (error: unknown) => ({ index, ok: false, error }),
    );
  const pending = new Map<number, Promise<Next>>();
  const start = () => {
    const index = gens.length;
    const { input, options } = list[index]!;
    gens.push(plan.served.model.stream(input, { ...options, signal: abort.signal }));
    pending.set(index, next(index));
  };
  while (gens.length < Math.min(slots, list.length)) start();
  let finished = false;
  try {
    while (pending.size > 0) {
      const settled = await Promise.race(pending.values());
      if (!settled.ok) throw settled.error;
      const { index, result } = settled;
      if (result.done) {
        pending.delete(index);
        if (gens.length < list.length) start();
        else release(1);
        continue;
      }
      pending.set(index, next(index));
      yield { index, part: result.value };
    }
    finished = true;
  } finally {
    if (!finished) {
      if (!abort.signal.aborted) abort.abort(new Error('another choice of the request failed'));
      // an aborted stream settles its pending step; then it can be ended
      await Promise.all([...pending.values()]);
      await Promise.all(gens.map((g) => g.return(undefined).catch(() => {})));
    }
  }
}

/** Runs a plan without streaming: one JSON response. */
export async function runComplete(plan: Plan, ctx: RunContext): Promise<Response> {
  const abort = linkedAbort(ctx);
  const release = await acquire(ctx, plan, abort);
  const writer = new ResponseWriter(plan);
  countPrompt(ctx, plan);
  /** Tokens generated so far, for the access log line of a request that ends early. */
  let generated = 0;
  try {
    const count = candidateCount(plan);
    const tokens: TokenInfo[][] = Array.from({ length: count }, () => []);
    const results: (ChoiceResult | undefined)[] = Array.from({ length: count }, () => undefined);
    const prompts: ChoiceResult['promptLogprobs'][] = [];
    let sawToken = false;
    // stream() rather than generate(): the same path as streaming, and tokens carry their trace
    for await (const { index, part } of choiceParts(plan, abort, slotsOf(ctx, plan), release)) {
      if (part.type === 'token') {
        if (!sawToken) {
          sawToken = true;
          ctx.metrics.observe('implicit_it_time_to_first_token_seconds', { model: ctx.model }, seconds(ctx));
        }
        ctx.metrics.inc('implicit_it_completion_tokens_total', { model: ctx.model });
        generated++;
        tokens[index]!.push(part);
      } else if (part.type === 'prompt-logprobs') prompts[index] = part.logprobs;
      else if (part.type === 'finish') {
        const { text, finishReason, usage } = part;
        const promptLogprobs = prompts[index];
        results[index] = {
          text,
          finishReason,
          usage,
          tokens: tokens[index]!,
          ...(promptLogprobs ? { promptLogprobs } : {}),
        };
      }
    }
    if (results.some((r) => r === undefined)) throw new Error('a generation ended without a finish part');
    const all = results as ChoiceResult[];
    // usage counts every candidate's tokens, as OpenAI bills best_of
    // built a choice at a time, letting other requests run: a large logprobs response takes seconds
    const { json, usage } = await writer.completeJson(pickBest(plan, all), all);
    ctx.onUsage(usage);
    return new Response(json, { headers: { 'Content-Type': 'application/json' } });
  } catch (error) {
    if (ctx.signal.aborted) countClientAbort(ctx);
    // ended early (its client left, the server stopped): the access log tells the work it took, its
    // prompts (each once) and the tokens generated until then, as a stream's line does
    const prompt = promptTokens(plan);
    ctx.onUsage({ prompt_tokens: prompt, completion_tokens: generated, total_tokens: prompt + generated });
    throw failure(ctx, plan, error);
  } finally {
    release();
    abort.unlink();
  }
}

const seconds = (ctx: RunContext) => (performance.now() - ctx.started) / 1000;

/**
 * A line of the access log (`ApiOptions.accessLog`): `POST /v1/completions 200 412 ms req_...`, with
 * the model a generation request named (` smol`), `, 12 prompt + 40 completion tokens` for a
 * request that generated (its `usage`), and who sent it where known (` from 10.0.0.5`, with a
 * proxy's ` (X-Forwarded-For 203.0.113.7)` as it came).
 */
export const accessLogLine = (
  method: string,
  path: string,
  status: number,
  elapsed: number,
  requestId: string,
  usage?: Pick<Usage, 'prompt_tokens' | 'completion_tokens'>,
  model?: string,
  client?: string,
) =>
  `${method} ${path} ${status} ${Math.round(elapsed * 1000)} ms ${requestId}${model === undefined ? '' : ` ${model}`}${usage === undefined ? '' : `, ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`}${client === undefined ? '' : ` ${client}`}`;

/** A stream's generation once it has its slots and its first part. */
interface Started {
  release: Release;
  parts: AsyncGenerator<ChoicePart>;
  first: IteratorResult<ChoicePart>;
}

/**
 * A stream's slots, then its first part (an echo's prompt, a token, or its end). Refused or failed,
 * its slots are given back, `abort` is unlinked, and it rejects with the `ApiError` to answer.
 */
async function startStream(
  plan: Plan,
  ctx: RunContext,
  abort: ReturnType<typeof linkedAbort>,
): Promise<Started> {
  const release = await acquire(ctx, plan, abort);
  countPrompt(ctx, plan);
  const parts = choiceParts(plan, abort, slotsOf(ctx, plan), release);
  try {
    return { release, parts, first: await parts.next() };
  } catch (error) {
    release();
    abort.unlink();
    if (ctx.signal.aborted) countClientAbort(ctx);
    throw failure(ctx, plan, error);
  }
}

/**
 * Runs a plan as server-sent events. Until the stream is committed (200 and its headers sent), a
 * refusal or failure is answered as a JSON error with its status (a full queue's 429, a prompt the
 * model refuses); afterwards as a final `data: {"error":...}` event. It is committed at its first
 * part, or, when that takes `ctx.keepAlive` ms (waiting for slots, a long prefill), then, with a
 * `: keep-alive` comment: a reverse proxy (nginx's `proxy_read_timeout`, 60 s) would otherwise end a
 * request that sent nothing for that long. While it waits for the model, before its first part or
 * between two, it sends another comment each `ctx.keepAlive` ms. A client that disconnects cancels
 * the body: the generation is aborted at its next step (or leaves the queue) and its slots are freed.
 */
export async function runStream(plan: Plan, ctx: RunContext): Promise<Response> {
  const abort = linkedAbort(ctx);
  const starting = startStream(plan, ctx, abort);
  const writer = new ResponseWriter(plan);
  /** Its slots and first part, once it has them; until then, `starting` is awaited by the body. */
  let started: Started | undefined;
  if (ctx.keepAlive > 0) {
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<null>((resolve) => {
      deadline = setTimeout(() => resolve(null), ctx.keepAlive);
    });
    // a refusal or failure within the time is thrown here: a status of its own
    started = (await Promise.race([starting, waited]).finally(() => clearTimeout(deadline))) ?? undefined;
  } else started = await starting;

  let ended = false;
  let cancelled = false;
  let stalled = false;
  let sawToken = false;
  /** Tokens generated so far, for the access log line of a stream that ends early. */
  let generated = 0;
  /** Armed while the stream waits for its client to take what it has (between pulls). */
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  let streamController: ReadableStreamDefaultController<Uint8Array> | undefined;
  const end = (status: 'ok' | 'aborted' | 'error' | 'stalled') => {
    if (ended) return;
    ended = true;
    clearTimeout(stallTimer);
    if (stalled) status = 'stalled';
    else if (cancelled) status = 'aborted';
    started?.release();
    abort.unlink();
    if (status === 'aborted') countClientAbort(ctx);
    if (status === 'stalled') ctx.metrics.inc('implicit_it_stream_stalls_total');
    const elapsed = seconds(ctx);
    ctx.metrics.observe('implicit_it_request_duration_seconds', { route: ctx.route }, elapsed);
    if (ctx.accessLog) {
      const how =
        status === 'ok'
          ? 'finished'
          : status === 'aborted'
            ? 'left by its client'
            : status === 'stalled'
              ? `stopped: its client accepted no data for ${stallSeconds} s`
              : 'ended by an error';
      // the usage of a finished stream; of one ended early, its prompts (each once) and the tokens
      // generated until then
      const usage =
        status === 'ok' && open === 0
          ? requestUsage(usages, plan.n)
          : { prompt_tokens: promptTokens(plan), completion_tokens: generated };
      ctx.log(
        `${accessLogLine('POST', ctx.route, 200, elapsed, ctx.requestId, usage, ctx.model, ctx.client)} (stream ${how})`,
      );
    }
  };
  const stallSeconds = ctx.stallTimeout / 1000;
  /**
   * The client accepted nothing for `stallTimeout` ms (the socket's buffers are full: it stopped
   * reading): its generation, paused by the backpressure, would hold its slots for ever. It is
   * stopped, its slots freed, and the connection closed.
   */
  const onStall = () => {
    stallTimer = undefined;
    if (ended) return;
    stalled = true;
    abort.abort(new Error(`the client accepted no data for ${stallSeconds} s`));
    ctx.log(
      `stream stalled (${ctx.requestId}): its client accepted no data for ${stallSeconds} s; its generation is stopped and its slots freed`,
    );
    // no step is pending between pulls: the generations end at once (armed only once started)
    void started?.parts
      .return(undefined)
      .catch(() => {})
      .then(() => end('stalled'));
    if (ctx.connection) ctx.connection.destroy();
    else {
      try {
        streamController?.error(new Error('stream stalled'));
      } catch {}
    }
  };
  /** The stream has handed its chunks over: the client has `stallTimeout` ms to take them. */
  const awaitReader = () => {
    if (ctx.stallTimeout > 0 && !ended) {
      stallTimer = setTimeout(onStall, ctx.stallTimeout);
      stallTimer.unref?.();
    }
  };
  // no best_of here: a plan that streams has its candidates as choices
  const count = choiceCount(plan);
  /** Each choice's text and tokens not sent yet: each chunk carries the tokens that made its text. */
  const { tokenizer, info } = plan.served.model;
  const eosIds = new Set(info.eosIds);
  const aligners = Array.from(
    { length: count },
    (_, i) => new ChunkAligner(tokenizer, eosIds, choiceInput(plan, i).promptIds),
  );
  const usages: GenerationResult['usage'][] = [];
  let open = count;

  /** Chunks for one part; true when the stream is over (every choice finished). */
  const handle = ({ index, part }: ChoicePart, out: Uint8Array[]): boolean => {
    if (part.type === 'prompt-logprobs') {
      // echo with log-probs: the prompt's chunk, once its prefill has them (before any token)
      const echo = writer.echoChunk(index, part.logprobs);
      if (echo) out.push(sse(echo));
    } else if (part.type === 'token') {
      if (!sawToken) {
        sawToken = true;
        ctx.metrics.observe('implicit_it_time_to_first_token_seconds', { model: ctx.model }, seconds(ctx));
      }
      ctx.metrics.inc('implicit_it_completion_tokens_total', { model: ctx.model });
      generated++;
      aligners[index]!.token(part);
    } else if (part.type === 'text-delta') {
      const chunk = aligners[index]!.text(part.text);
      if (chunk) out.push(sse(writer.deltaChunk(index, chunk.text, chunk.tokens)));
    } else {
      const { chunk, rest } = aligners[index]!.finish();
      if (chunk) out.push(sse(writer.deltaChunk(index, chunk.text, chunk.tokens)));
      out.push(sse(writer.finishChunk(index, part.finishReason, rest)));
      usages[index] = part.usage;
      if (--open > 0) return false;
      if (plan.includeUsage) out.push(sse(writer.usageChunk(usages)));
      out.push(DONE);
      return true;
    }
    return false;
  };

  /** A committed stream's first chunks: each choice's opening, and its first part's. True when over. */
  const opening = (first: IteratorResult<ChoicePart>, out: Uint8Array[]): boolean => {
    for (let index = 0; index < count; index++) {
      // echo without log-probs: the prompt's chunk at once (with them, when they come)
      const chunk =
        writer.roleChunk(index) ?? (plan.logprobs === null ? writer.echoChunk(index, null) : null);
      if (chunk) out.push(sse(chunk));
    }
    return first.done === true || handle(first.value, out);
  };
  /** Sends `out` (nothing when cancelled meanwhile), and ends the stream when it is `over`. */
  const send = (
    controller: ReadableStreamDefaultController<Uint8Array>,
    out: Uint8Array[],
    over: boolean,
  ) => {
    try {
      for (const chunk of out) controller.enqueue(chunk);
      if (over) controller.close();
    } catch {
      // cancelled meanwhile
    }
    if (over) end('ok');
    else if (out.length > 0) awaitReader();
  };
  /**
   * The stream ends with `error` as its last event (the client is told; logged unless `logged`), or
   * without one when its client left (nobody to tell), or with 503 `server_shutting_down` when the
   * server stops.
   */
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, error: unknown, logged = false) => {
    if (ctx.shutdown.aborted) {
      // the server stops: the client is still there, and is told why its stream ends
      try {
        controller.enqueue(sse(shuttingDown().body));
        controller.close();
      } catch {}
      end('error');
      return;
    }
    // the client went away (a failing choice also aborts `abort`, to stop the others: that is
    // not the client leaving, and the client is told)
    if (
      ctx.signal.aborted ||
      cancelled ||
      (ImplicitItError.isInstance(error) && error.code === 'runtime.aborted')
    ) {
      end('aborted');
      return;
    }
    const apiError = toApiError(error, promptParam(plan));
    // `logged`: startStream's refusal or failure (its ApiError), which logged a server error
    if (!logged) ctx.log(`stream failed (${ctx.requestId}): ${(error as Error)?.stack ?? String(error)}`);
    try {
      controller.enqueue(sse(apiError.body));
      controller.close();
    } catch {}
    end('error');
  };
  /**
   * Sends a keep-alive comment each `ctx.keepAlive` ms until the returned function is called: while
   * a pull waits for the model, whose first part (or next) may take a while.
   */
  const keepAlive = (controller: ReadableStreamDefaultController<Uint8Array>): (() => void) => {
    if (ctx.keepAlive === 0) return () => {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = () => {
      if (ended) return;
      try {
        controller.enqueue(KEEP_ALIVE);
      } catch {
        return; // cancelled meanwhile
      }
      timer = setTimeout(tick, ctx.keepAlive);
      timer.unref?.();
    };
    timer = setTimeout(tick, ctx.keepAlive);
    timer.unref?.();
    return () => clearTimeout(timer);
  };

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      streamController = controller;
      if (started) {
        const out: Uint8Array[] = [];
        send(controller, out, opening(started.first, out));
      }
      // committed while still waiting for the model: the headers go out with a first comment
      else controller.enqueue(KEEP_ALIVE);
    },
    async pull(controller) {
      // the client took what was queued (a pull comes when the queue has room): not stalled. While
      // this pull waits for the model (a long prefill), no timer runs: the client is not at fault
      clearTimeout(stallTimer);
      stallTimer = undefined;
      if (ended || stalled) return;
      const stopKeepAlive = keepAlive(controller);
      try {
        if (!started) {
          let got: Started;
          try {
            got = await starting;
          } catch (error) {
            if (!cancelled) fail(controller, error, true);
            return;
          }
          // cancelled meanwhile: `cancel` ends its generation
          if (cancelled) return;
          started = got;
          const out: Uint8Array[] = [];
          const over = opening(got.first, out);
          send(controller, out, over);
          if (over || out.length > 0) return;
        }
        const { parts } = started;
        // one pull enqueues at least one chunk or ends the stream
        for (;;) {
          let next: IteratorResult<ChoicePart>;
          try {
            next = await parts.next();
          } catch (error) {
            fail(controller, error);
            return;
          }
          const out: Uint8Array[] = [];
          const over = next.done === true || handle(next.value, out);
          send(controller, out, over);
          if (over || out.length > 0) return;
        }
      } finally {
        stopKeepAlive();
      }
    },
    async cancel() {
      cancelled = true;
      abort.abort(new Error('client disconnected'));
      // the slots are freed once decoding has stopped and the tensors are released (a stream still
      // waiting for them leaves the queue)
      // a stream that got them as its client left (its first part came with the cancel) holds them
      // as a started one does: `end` gives them back
      started ??= await starting.catch(() => undefined);
      await started?.parts.return(undefined).catch(() => {});
      end('aborted');
    },
  });

  return new Response(body, {
    headers: {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    },
  });
}
