import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { zValidator } from '@hono/zod-validator';
import { RuleSet, resolveRuleSpec } from '@implicit-it/rules';
import type { PrefixCacheStats } from '@implicit-it/runtime';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { bearerAuth } from './auth.js';
import { ApiError, shuttingDown, toApiError } from './errors.js';
import { jsonBody } from './json-body.js';
import { Metrics, type Sample } from './metrics.js';
import type { Usage } from './openai-format.js';
import { type ApiOptions, type ResolvedApiOptions, resolveApiOptions } from './options.js';
import { planChat, planCompletion } from './plan.js';
import { type PlaygroundConfig, playgroundPage } from './playground/page.js';
import { codeUnitsPerToken } from './prompt-bound.js';
import { RuleCache } from './rule-cache.js';
import { accessLogLine, busy, type RunContext, runComplete, runStream } from './run-plan.js';
import { chatRequestSchema, completionRequestSchema } from './schemas.js';
import { zodToApiError } from './validation.js';
import { WorkQueue } from './work-queue.js';

type Env = {
  /**
   * What `@hono/node-server` passes (none through `app.request`): the response, to close a stalled
   * stream's connection; the request, whose socket names the peer for the access log.
   */
  Bindings:
    | { outgoing?: { destroy(): void }; incoming?: { socket?: { remoteAddress?: string | undefined } } }
    | undefined;
  Variables: {
    started: number;
    requestId: string;
    usage: Usage | undefined;
    model: string | undefined;
    /** Who sent the request (`clientOf`), read once for the access log. */
    client: string | undefined;
  };
};

/**
 * Who sent a request, for the access log: the peer's address (node-server's socket; none through
 * `app.request`), and a proxy's `X-Forwarded-For` as it came (logged, not trusted: anyone can send
 * one), cut to 100 characters.
 */
function clientOf(env: Env['Bindings'], forwarded: string | undefined): string | undefined {
  const peer = env?.incoming?.socket?.remoteAddress;
  const via = forwarded?.trim().slice(0, 100);
  if (peer === undefined && !via) return undefined;
  return `from ${peer ?? 'unknown'}${via ? ` (X-Forwarded-For ${via})` : ''}`;
}

/** A byte count as a 413 names it: `1048576 bytes (1 MiB)`, `1500 bytes (1.46 KiB)`, `1000 bytes`. */
function bytesText(bytes: number): string {
  const [unit, size] = bytes >= 1024 * 1024 ? ['MiB', 1024 * 1024] : ['KiB', 1024];
  if (bytes < 1024) return `${bytes} bytes`;
  return `${bytes} bytes (${Number((bytes / size).toFixed(2))} ${unit})`;
}

const ROUTES = new Set(['/', '/health', '/metrics', '/v1/models', '/v1/chat/completions', '/v1/completions']);
const routeLabel = (path: string) =>
  ROUTES.has(path) ? path : path.startsWith('/v1/models/') ? '/v1/models/:id' : 'other';

/**
 * What a running app exposes besides its routes (for the CLI, tests and embedding).
 *
 * @example
 * const { active, queued, options }: AppState = app.state;
 * console.log(`${active} running, ${queued} waiting (at most ${options.concurrency} at once)`);
 */
export interface AppState {
  readonly options: ResolvedApiOptions;
  readonly metrics: Metrics;
  /** Generations running now. */
  readonly active: number;
  /** Requests waiting for a slot. */
  readonly queued: number;
}

/**
 * A Hono app with the server's state attached.
 *
 * @example
 * const app: ApiApp = createApp({ models: model, playground: false });
 * const health = await (await app.request('/health')).json();
 * process.once('SIGTERM', () => app.shutdown());
 */
export type ApiApp = Hono<Env> & {
  readonly state: AppState;
  /**
   * Takes no new work: API requests get 503 `server_shutting_down` (with `Retry-After` and
   * `Connection: close`) and `GET /health` 503 with `"status": "shutting_down"`, while requests in
   * flight go on. `serve`'s `close` calls it first; an app mounted elsewhere calls it when its server
   * stops accepting connections, and `shutdown()` once its grace is over.
   */
  drain(): void;
  /**
   * Ends every generation in flight with 503 `server_shutting_down` (an error event in a stream);
   * `serve`'s `close` calls it once its grace is over. New requests are still taken.
   */
  shutdown(): void;
};

/**
 * The OpenAI-compatible API as a Hono app: `POST /v1/chat/completions`, `POST /v1/completions`,
 * `GET /v1/models`, `GET /health`, `GET /metrics` and the playground at `GET /`. Serve it with
 * `serve`, or mount it in your own Hono / fetch-based server (`app.fetch`).
 *
 * @example
 * import { loadModel } from '@implicit-it/runtime';
 * import { createApp } from '@implicit-it/api';
 *
 * const model = await loadModel('./SmolLM2-135M');
 * const app = createApp({ models: [{ id: 'smollm2', model }], rules: 'hewitt2024' });
 * const res = await app.request('/v1/models');
 */
export function createApp(options: ApiOptions): ApiApp {
  const server = resolveApiOptions(options);
  // each model's default rules compiled once, at start-up (a spec refused fails here, not per request)
  const rules = new RuleCache(server.log);
  for (const served of server.models) {
    rules.defaults(served);
    // the most text a token stands for, read from the vocabulary once (prompts far too long for the
    // context are refused with it before they are tokenized)
    codeUnitsPerToken(served.model.tokenizer);
  }
  // each served model has its own slots and queue: its runtime decodes its own batch, so requests
  // for a busy model make those for another neither wait nor answer 429
  const queues = new Map(
    server.models.map((m) => [
      m.id,
      new WorkQueue({ concurrency: server.concurrency, maxQueued: server.maxQueued }),
    ]),
  );
  const sum = (of: (queue: WorkQueue) => number) => {
    let total = 0;
    for (const queue of queues.values()) total += of(queue);
    return total;
  };
  // how long the event loop was held between scrapes: onnxruntime runs a `Model`'s steps (a prefill
  // chunk, a decoding step) on this thread, so a long step delays every response and stream write (a
  // `WorkerModel` runs them in its own thread)
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const metrics = new Metrics(
    () => {
      const mem = process.memoryUsage();
      const delay = (ns: number) => (loopDelay.count > 0 ? ns / 1e9 : 0);
      const loop = {
        nodejs_eventloop_lag_max_seconds: delay(loopDelay.max),
        nodejs_eventloop_lag_p99_seconds: delay(loopDelay.percentile(99)),
        nodejs_eventloop_lag_mean_seconds: delay(loopDelay.mean),
      };
      loopDelay.reset(); // each scrape covers the time since the last one
      return {
        // all models together; per model in implicit_it_model_* (labelled by model)
        implicit_it_queue_depth: sum((q) => q.depth),
        implicit_it_active_generations: sum((q) => q.active),
        implicit_it_concurrency_limit: sum((q) => q.concurrency),
        implicit_it_queue_limit: sum((q) => q.maxQueued),
        process_resident_memory_bytes: mem.rss,
        nodejs_heap_used_bytes: mem.heapUsed,
        ...loop,
      };
    },
    () =>
      server.models.flatMap(({ id, model }) => [
        ...queueSamples(id, queues.get(id)!),
        ...prefixCacheSamples(id, model.prefixCacheStats),
      ]),
    server.models.map((m) => m.id),
  );

  const app = new Hono<Env>();
  const shutdown = new AbortController();
  /** Set by `drain()`: new API requests are refused, /health says shutting_down. */
  let draining = false;
  // each request in flight (running, queued, being planned) listens to it until it ends
  setMaxListeners(sum((q) => q.concurrency + q.maxQueued) + 16, shutdown.signal);

  app.onError((error, c) => {
    let apiError: ApiError;
    if (error instanceof ApiError) apiError = error;
    else if (error instanceof HTTPException) {
      apiError = new ApiError(error.status, error.message || 'bad request', {
        code: error.status === 413 ? 'request_too_large' : 'invalid_request',
      });
    } else {
      apiError = toApiError(error);
      if (apiError.status >= 500)
        server.log(
          `${c.req.method} ${c.req.path} (${c.get('requestId')}): ${(error as Error)?.stack ?? error}`,
        );
    }
    return c.json(apiError.body, apiError.status as ContentfulStatusCode, apiError.headers);
  });
  app.notFound((c) => {
    // a route that exists, asked with another method: 405 with the methods it takes (RFC 9110)
    const path = c.req.path;
    const allowed =
      path === '/v1/chat/completions' || path === '/v1/completions'
        ? ['POST']
        : ['/v1/models', '/health', '/metrics'].includes(path) ||
            path.startsWith('/v1/models/') ||
            (path === '/' && server.playground)
          ? ['GET', 'HEAD']
          : null;
    if (allowed) {
      const e = new ApiError(405, `Method ${c.req.method} is not allowed for ${path}: use ${allowed[0]}`, {
        code: 'method_not_allowed',
        headers: { Allow: allowed.join(', ') },
      });
      return c.json(e.body, 405, e.headers);
    }
    const e = new ApiError(404, `Unknown request URL: ${c.req.method} ${c.req.path}`, {
      code: 'unknown_url',
    });
    return c.json(e.body, 404);
  });

  // every response names its request, as OpenAI's do (the client's X-Request-Id when it sent a valid
  // one): the openai client exposes it as `_request_id`, and server errors are logged with it
  app.use('*', requestId({ generator: () => `req_${randomUUID().replace(/-/g, '')}` }));
  app.use('*', async (c, next) => {
    c.set('started', performance.now());
    if (server.accessLog) c.set('client', clientOf(c.env, c.req.header('X-Forwarded-For')));
    await next();
    // the completion routes answer with Responses of their own, which the header set above misses
    if (!c.res.headers.has('X-Request-Id')) c.res.headers.set('X-Request-Id', c.get('requestId'));
    const route = routeLabel(c.req.path);
    metrics.inc('implicit_it_requests_total', { route, status: String(c.res.status) });
    if (!c.res.headers.get('Content-Type')?.startsWith('text/event-stream')) {
      const elapsed = (performance.now() - c.get('started')) / 1000;
      metrics.observe('implicit_it_request_duration_seconds', { route }, elapsed);
      // a stream's line is written when it ends (runStream)
      if (server.accessLog)
        server.log(
          accessLogLine(
            c.req.method,
            c.req.path,
            c.res.status,
            elapsed,
            c.get('requestId'),
            c.get('usage'),
            c.get('model'),
            c.get('client'),
          ),
        );
    }
  });
  if (server.cors) {
    // before the key check: a browser's preflight OPTIONS carries no Authorization header
    app.use(
      '*',
      cors({
        origin: server.cors,
        allowMethods: ['GET', 'POST', 'OPTIONS'],
        // the request headers the preflight names are allowed (the openai client sends x-stainless-*)
        exposeHeaders: ['Retry-After', 'X-Request-Id'],
        maxAge: 600,
      }),
    );
  }
  // a draining server takes no new work, key or not; answered here, after the request id and the
  // metrics middleware, so that the 503 carries its id and is counted and logged as sent
  app.use('/v1/*', async (_c, next) => {
    if (draining) throw shuttingDown({ Connection: 'close' });
    await next();
  });
  if (server.apiKey) {
    app.use('/v1/*', bearerAuth(server.apiKey));
    app.use('/metrics', bearerAuth(server.apiKey));
  }
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: server.bodyLimit,
      onError: () => {
        // the unread rest of the body makes the socket unusable: say so, or a keep-alive client
        // would send its next request into a reset connection
        throw new ApiError(
          413,
          `The request body is larger than this server's limit of ${bytesText(server.bodyLimit)}: send less in one request (fewer prompts), or have the limit raised (implicit-it serve --body-limit MiB; createApp's bodyLimit option).`,
          { code: 'request_too_large', headers: { Connection: 'close' } },
        );
      },
    }),
  );
  app.use('/v1/*', jsonBody());

  const hook = (result: { success: boolean; error?: unknown }) => {
    if (!result.success) throw zodToApiError(result.error as Parameters<typeof zodToApiError>[0]);
  };
  const runContext = (
    c: {
      env: Env['Bindings'];
      req: { raw: Request };
      get(key: 'started'): number;
      get(key: 'requestId'): string;
      get(key: 'client'): string | undefined;
      set(key: 'usage', usage: Usage): void;
      set(key: 'model', model: string): void;
    },
    route: string,
    model: string,
  ): RunContext => {
    // the access log names the model of a request that got this far
    c.set('model', model);
    return {
      queue: queues.get(model)!,
      model,
      metrics,
      log: server.log,
      route,
      started: c.get('started'),
      signal: c.req.raw.signal,
      shutdown: shutdown.signal,
      requestId: c.get('requestId'),
      accessLog: server.accessLog,
      client: c.get('client'),
      onUsage: (usage) => c.set('usage', usage),
      stallTimeout: server.streamStallTimeout,
      keepAlive: server.streamKeepAlive,
      ...(c.env?.outgoing ? { connection: c.env.outgoing } : {}),
    };
  };

  // a full model answers 429 before tokenizing: a long prompt costs the thread a while (an unknown
  // model is the plan's 404)
  const refuseWhenFull = (model: string) => {
    const queue = queues.get(model);
    if (queue?.full) throw busy(queue, metrics, model);
  };
  app.post('/v1/chat/completions', zValidator('json', chatRequestSchema, hook), async (c) => {
    refuseWhenFull(c.req.valid('json').model);
    const plan = planChat(c.req.valid('json'), server, rules);
    const ctx = runContext(c, '/v1/chat/completions', plan.served.id);
    return plan.stream ? runStream(plan, ctx) : runComplete(plan, ctx);
  });

  app.post('/v1/completions', zValidator('json', completionRequestSchema, hook), async (c) => {
    refuseWhenFull(c.req.valid('json').model);
    const plan = planCompletion(c.req.valid('json'), server, rules);
    const ctx = runContext(c, '/v1/completions', plan.served.id);
    return plan.stream ? runStream(plan, ctx) : runComplete(plan, ctx);
  });

  const created = Math.floor(Date.now() / 1000);
  const modelObject = (id: string) => {
    const { model } = server.models.find((m) => m.id === id)!;
    return {
      id,
      object: 'model',
      created,
      owned_by: 'implicit-it',
      // extension: what a client may want to know before sending a request
      context_length: model.info.maxPositions ?? null,
      vocab_size: model.info.vocabSize,
      dtype: model.info.dtype,
      execution_provider: model.info.provider,
    };
  };
  app.get('/v1/models', (c) => c.json({ object: 'list', data: server.models.map((m) => modelObject(m.id)) }));
  app.get('/v1/models/:id{.+}', (c) => {
    const id = c.req.param('id');
    if (!server.models.some((m) => m.id === id)) {
      throw new ApiError(404, `The model ${JSON.stringify(id)} does not exist on this server`, {
        param: 'model',
        code: 'model_not_found',
      });
    }
    return c.json(modelObject(id));
  });

  app.get('/health', (c) => {
    const health = {
      status: draining ? 'shutting_down' : 'ok',
      models: server.models.map((m) => m.id),
      active: sum((q) => q.active),
      queued: sum((q) => q.depth),
    };
    // a load balancer's check on a kept-alive connection learns of the drain, as new connections
    // (refused) tell it: 503, with what is still running
    return draining ? c.json(health, 503, shuttingDown({ Connection: 'close' }).headers) : c.json(health);
  });

  app.get('/metrics', (c) =>
    c.body(metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );

  if (server.playground) {
    // a model's default rules as the page shows them: resolved, and named
    const shownRules = (spec: (typeof server.models)[number]['rules']) => ({
      rules: RuleSet.isInstance(spec) ? spec.config : resolveRuleSpec(spec),
      rulesName: typeof spec === 'string' ? spec.trim() : spec === false ? 'none' : 'server rules',
    });
    // the boxes start as the first model's default rules (the model the page selects first), and
    // follow the model selected (each may have rules of its own)
    const config: PlaygroundConfig = {
      models: server.models.map((m) => m.id),
      ...shownRules(server.models[0]!.rules),
      ...(server.models.length > 1
        ? { modelRules: Object.fromEntries(server.models.map((m) => [m.id, shownRules(m.rules)])) }
        : {}),
      ruleDefaults: resolveRuleSpec('eos-uniform-diversity-start'),
      auth: server.apiKey !== undefined,
      maxTokens: server.maxTokens,
      ...(server.notice ? { notice: server.notice } : {}),
    };
    const html = playgroundPage(config);
    app.get('/', (c) =>
      c.html(html, 200, {
        'Content-Security-Policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        'X-Content-Type-Options': 'nosniff',
      }),
    );
  }

  return Object.assign(app, {
    drain: () => {
      draining = true;
    },
    shutdown: () => {
      loopDelay.disable();
      shutdown.abort(new Error('the server is shutting down'));
    },
    state: {
      options: server,
      metrics,
      get active() {
        return sum((q) => q.active);
      },
      get queued() {
        return sum((q) => q.depth);
      },
    },
  });
}

/** A served model's slots and queue as metrics, labelled by its id. */
function queueSamples(model: string, queue: WorkQueue): Sample[] {
  const labels = { model };
  return [
    {
      name: 'implicit_it_model_active_generations',
      type: 'gauge',
      help: 'Generations of this model running now (each model has its own concurrency slots).',
      labels,
      value: queue.active,
    },
    {
      name: 'implicit_it_model_queue_depth',
      type: 'gauge',
      help: 'Requests for this model waiting for a slot (each model has its own queue).',
      labels,
      value: queue.depth,
    },
  ];
}

/** A served model's prefix cache (`LoadOptions.prefixCache`) as metrics, labelled by its id; none without one. */
function prefixCacheSamples(model: string, stats: PrefixCacheStats | null): Sample[] {
  if (stats === null) return [];
  const labels = { model };
  return [
    {
      name: 'implicit_it_prefix_cache_hits_total',
      type: 'counter',
      help: 'Prompts that went on from a kept prefix instead of prefilling it (prefix cache).',
      labels,
      value: stats.hits,
    },
    {
      name: 'implicit_it_prefix_cache_reused_tokens_total',
      type: 'counter',
      help: 'Prompt positions taken from the prefix cache, not prefilled (each prompt once, however many choices).',
      labels,
      value: stats.reusedTokens,
    },
    {
      name: 'implicit_it_prefix_cache_entries',
      type: 'gauge',
      help: 'Sequences (prompts, prompts with their replies) the prefix cache keeps.',
      labels,
      value: stats.entries,
    },
    {
      name: 'implicit_it_prefix_cache_bytes',
      type: 'gauge',
      help: 'Bytes of keys/values the prefix cache keeps.',
      labels,
      value: stats.bytes,
    },
    {
      name: 'implicit_it_prefix_cache_max_bytes',
      type: 'gauge',
      help: 'Bytes the prefix cache may keep (LoadOptions.prefixCache).',
      labels,
      value: stats.maxBytes,
    },
  ];
}
