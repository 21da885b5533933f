import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import type { ServedModel } from '@implicit-it/api';
import { type BaseModel, loadModel, loadModelInWorker } from '@implicit-it/runtime';
import { CONVERSATION_FORMATS, type ConversationFormat } from '@implicit-it/tokenizers';
import type { Command } from 'commander';
import { Option } from 'commander';
import { RANDOM_MODEL_ID } from '../default-model.js';
import {
  ADD_BOS_HELP,
  addLoadOptions,
  collect,
  intArg,
  type ModelFlags,
  NO_ADD_BOS_HELP,
  numArg,
  type OpenedModel,
  openModel,
  parseRules,
  promptSettings,
  rulesLabel,
} from '../flags.js';
import { CliError, counted, EXIT, note, painter, usage } from '../output.js';
import { checkRules } from '../rule-notes.js';
import { checkChatTemplate, DEFAULT_MODEL_HELP } from './generate.js';

/**
 * Where clients reach a server: for one listening on every interface (0.0.0.0, or :: for IPv6 and
 * IPv4), `local` is this machine's loopback address for the same port (a client that connects to
 * 0.0.0.0 itself works on Linux and macOS, not on Windows) and `network` the addresses of the
 * machine's other interfaces (IPv4 for 0.0.0.0; IPv4 and global IPv6 for ::); for any other
 * address, `local` is `url` and `network` is empty.
 */
export function reachableUrls(
  url: string,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): { local: string; network: string[] } {
  const parsed = new URL(url);
  const wildcard = parsed.hostname === '0.0.0.0' ? 4 : parsed.hostname === '[::]' ? 6 : 0;
  if (wildcard === 0) return { local: url, network: [] };
  const at = (host: string) => `${parsed.protocol}//${host}:${parsed.port}`;
  const network = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter((i) => !i.internal && (i.family === 'IPv4' || (wildcard === 6 && !i.address.startsWith('fe80:'))))
    .map((i) => at(i.family === 'IPv4' ? i.address : `[${i.address}]`));
  return { local: at(wildcard === 4 ? '127.0.0.1' : '[::1]'), network: [...new Set(network)] };
}

interface ServeFlags extends Omit<ModelFlags, 'model' | 'maxBatchSize'> {
  model?: string[];
  port: number;
  host: string;
  rules?: string;
  apiKey?: string[];
  concurrency: number;
  maxQueued: number;
  /** Generations one request may ask for (prompts × n). */
  maxChoices: number;
  maxTokens: number;
  /** Largest request body, MiB (the API's `bodyLimit`, in bytes). */
  bodyLimit: number;
  format: ConversationFormat;
  addBos?: boolean;
  playground: boolean;
  cors?: string;
  json?: boolean;
  shutdownGrace: number;
  /** Seconds a stream waits for its client to accept data before it is stopped (0: no limit). */
  streamStallTimeout: number;
  /** Seconds a stream waits for the model before it sends a keep-alive comment, and each as long after (0: none). */
  streamKeepAlive: number;
  /** One stderr line per request (the API's `accessLog`). */
  logRequests?: boolean;
  /** false (`--no-fallback`): without --model, an unreachable hub is an error, not the stand-in. */
  fallback: boolean;
  /** Run each model's onnxruntime session in a worker thread (default; `--no-worker`: on this thread). */
  worker: boolean;
}

/**
 * Refuses, before any model is loaded, a --host that is neither an address nor a name this machine
 * resolves (`999.1.1.1`): listening would fail with a bare `getaddrinfo ENOTFOUND`.
 */
async function checkHost(host: string): Promise<void> {
  if (isIP(host) !== 0) return;
  try {
    await lookup(host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTFOUND' && code !== 'EAI_NONAME') return; // a DNS outage: listening will say
    throw usage(
      `--host: ${host} is neither an IP address nor a host name this machine resolves (${code})`,
      'give an address of this machine: 127.0.0.1 (this machine only, the default), 0.0.0.0 (every interface), or its IP',
    );
  }
}

/**
 * The API keys to require (`--api-key`, repeatable: several are each accepted, to rotate a key), or
 * none; refuses an empty one, which would leave open a server its owner meant to protect
 * (`--api-key "$UNSET_VARIABLE"`).
 */
function apiKeyOf(flags: ServeFlags): string[] | undefined {
  const [keys, from] =
    flags.apiKey !== undefined
      ? [flags.apiKey, '--api-key']
      : [
          process.env.IMPLICIT_IT_API_KEY === undefined ? undefined : [process.env.IMPLICIT_IT_API_KEY],
          'IMPLICIT_IT_API_KEY',
        ];
  if (keys?.some((key) => key.trim() === '')) {
    throw usage(
      `${from} is empty: the server would take requests without a key`,
      from === '--api-key'
        ? 'give the key (an unset shell variable expands to nothing), or leave --api-key out to serve without one'
        : 'set IMPLICIT_IT_API_KEY to the key, or unset it to serve without one',
    );
  }
  // HTTP strips a header value's ends: no client could send such a key, and every request would be
  // refused as a wrong key
  if (keys?.some((key) => key !== key.trim())) {
    throw usage(
      `${from} begins or ends with whitespace, which no client can send (HTTP strips it from the Authorization header)`,
      'remove it: a key read from a file keeps its final newline (printf %s KEY writes none, echo does)',
    );
  }
  return keys;
}

/**
 * The most `--body-limit` takes, MiB: a body is read as one string, and V8's strings hold at most
 * 512 Mi characters.
 */
const MAX_BODY_MIB = 256;

/** `--body-limit` MiB as the API's `bodyLimit` bytes (at least 1). */
const bodyBytes = (mib: number) => Math.max(1, Math.round(mib * 1024 * 1024));

/**
 * The API package, loaded when `serve` runs: its import (zod schemas, hono) takes about a quarter of
 * a second, which every other command (and `--help`) would pay at startup.
 */
const api = () => import('@implicit-it/api');

/** --cors as the API takes it, checked before any model is loaded. */
async function corsOf(flags: ServeFlags): Promise<true | string | undefined> {
  if (flags.cors === undefined) return undefined;
  const { resolveCors } = await api();
  try {
    resolveCors(flags.cors);
  } catch (error) {
    throw usage(
      `--cors: ${(error as Error).message.replace(/^cors: /, '')}`,
      'give one or more origins, comma-separated (--cors http://localhost:3000), or * for any',
    );
  }
  return flags.cors === '*' ? true : flags.cors;
}

async function run(flags: ServeFlags): Promise<void> {
  const rules = parseRules(flags.rules);
  await checkHost(flags.host);
  const apiKey = apiKeyOf(flags);
  const cors = await corsOf(flags);
  const specs = flags.model && flags.model.length > 0 ? flags.model : [undefined];
  const opened: (OpenedModel<BaseModel> & { served: string })[] = [];
  /** What a SIGINT or SIGTERM does now (once the server listens). */
  let onSignal = (): void => {};
  try {
    for (const spec of specs) {
      // ID=DIR names a model; otherwise it is served under its hub id or directory name
      const named = spec ? /^([\w.-]+)=(.+)$/.exec(spec) : null;
      // the runtime decodes concurrent requests in one batch: as many rows as requests may run
      const m = await openModel<BaseModel>(
        { ...flags, model: named ? named[2] : spec, maxBatchSize: flags.concurrency },
        '--model',
        flags.worker ? loadModelInWorker : loadModel,
      );
      await checkChatTemplate(m, flags.format);
      opened.push({ ...m, served: named ? named[1]! : m.id });
      // the default rules, on each model's vocabulary (named where several are served): a rule that
      // matches nothing refused; the entries left out are the API's to log (one line per model)
      const on = specs.length > 1 ? ` on ${opened.at(-1)!.served}` : '';
      checkRules(rules, m.model.tokenizer.vocabulary, `--rules ${rulesLabel(rules)}${on}`);
    }
    const ids = opened.map((m) => m.served);
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup) throw usage(`--model: two models would be served as "${dup}"; name them: --model ID=DIR`);
    const models: ServedModel[] = opened.map((m) => ({ id: m.served, model: m.model }));
    const server = await (await api())
      .serve({
        models,
        port: flags.port,
        hostname: flags.host,
        rules,
        apiKey,
        concurrency: flags.concurrency,
        maxQueued: flags.maxQueued,
        maxChoices: flags.maxChoices,
        maxTokens: flags.maxTokens,
        bodyLimit: bodyBytes(flags.bodyLimit),
        streamStallTimeout: flags.streamStallTimeout * 1000,
        streamKeepAlive: flags.streamKeepAlive * 1000,
        ...promptSettings(flags),
        playground: flags.playground,
        ...(cors !== undefined ? { cors } : {}),
        ...(flags.logRequests ? { accessLog: true } : {}),
        notice: opened.some((m) => m.random)
          ? `${RANDOM_MODEL_ID} has RANDOM weights: its answers are noise, only the mechanics (rules, streaming, colouring) are real. Start the server with --model DIR (or with a network) for a real model.`
          : undefined,
      })
      .catch((error: NodeJS.ErrnoException) => {
        if (error?.code === 'EADDRINUSE' || error?.code === 'EACCES' || error?.code === 'EADDRNOTAVAIL') {
          throw new CliError(
            `cannot listen on ${flags.host}:${flags.port} (${error.code}: ${error.message})`,
            EXIT.failure,
            error.code === 'EADDRINUSE'
              ? 'another process uses this port: pick another with --port N (0 picks a free one)'
              : error.code === 'EACCES'
                ? 'ports below 1024 need privileges: pick --port 1024 or higher'
                : `--host ${flags.host} is not an address of this machine (127.0.0.1 or 0.0.0.0)`,
          );
        }
        throw error;
      });
    // one handler per signal for the rest of the process, never removed: removing a signal's last
    // listener restores Node's default action until the next one is added, and a signal landing in
    // between (a second Ctrl-C right after the first) would end the process by the signal, not exit 0.
    // Added before "listening" is said: a script that stops the server once it reads that line would
    // otherwise race the handlers (its signal lands on the default action: killed, not stopped). A
    // signal now waits for the event loop, by when onSignal (below, in this same tick) stops the server.
    const handle = () => onSignal();
    process.on('SIGINT', handle);
    process.on('SIGTERM', handle);
    // on 0.0.0.0 or ::, the address a client can connect to, and the machine's others
    const { local: url, network } = reachableUrls(server.url);
    if (flags.json) {
      // one line for scripts that start the server and need its address
      process.stdout.write(
        `${JSON.stringify({ url, models: ids, rules, playground: flags.playground ? `${url}/` : null, apiKey: apiKey !== undefined, ...(url !== server.url ? { listening: server.url, network } : {}) })}\n`,
      );
    }
    const paint = painter(process.stderr);
    note(
      [
        url === server.url
          ? `${paint('bold', 'implicit-it API')} listening on ${paint('cyan', url)}`
          : `${paint('bold', 'implicit-it API')} listening on ${server.url} (every interface): ${paint('cyan', url)} from this machine`,
        ...(url === server.url
          ? []
          : [
              `  network:     ${network.length > 0 ? network.join(', ') : 'no other interface has an address'}`,
            ]),
        `  models:      ${ids.join(', ')}`,
        `  rules:       ${rulesLabel(rules)} (requests may set "rules")`,
        `  playground:  ${flags.playground ? `${url}/` : 'off'}`,
        `  endpoints:   POST /v1/chat/completions, POST /v1/completions, GET /v1/models, /health, /metrics`,
        `  CORS:        ${flags.cors === undefined ? 'off (same origin only)' : flags.cors}`,
        `  API key:     ${apiKey ? `required (Authorization: Bearer ...${apiKey.length > 1 ? `; any of ${apiKey.length} keys` : ''})` : 'none (anyone who can reach the port may use it)'}`,
        `  concurrency: ${flags.concurrency} running (decoded together in one batch), ${flags.maxQueued} queued, then 429${ids.length > 1 ? ', for each model' : ''}`,
        `  limits:      ${flags.maxChoices} generations a request (prompts × n), bodies up to ${flags.bodyLimit} MiB (--body-limit); ${flags.streamStallTimeout > 0 ? `a stream stopped after ${flags.streamStallTimeout} s without its client reading` : 'streams wait for their clients without limit'}`,
        `  keep-alive:  ${flags.streamKeepAlive > 0 ? `a stream waiting ${flags.streamKeepAlive} s for the model (queued, a long prefill) gets its 200 and a ": keep-alive" comment, then one each ${flags.streamKeepAlive} s` : "off: a stream's 200 waits for its first token"}`,
        `  onnxruntime: ${flags.worker ? 'in a worker thread per model (this one answers while they run)' : 'on this thread (--no-worker): every response waits for the step in progress'}`,
        // 8-bit graphs round activations with one scale per batch: requests move each other
        ...(flags.concurrency > 1
          ? opened
              .filter((m) => m.model.info.dynamicQuantization)
              .map(
                (m) =>
                  `  ${paint('yellow', 'note:')}        ${m.served} is an 8-bit graph rounding activations per batch: requests running together move each other's answers a little (--concurrency 1 gives each its own)`,
              )
          : []),
        'Ctrl-C stops the server.',
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      onSignal = () => {
        const { active, queued } = server.app.state;
        // generations, not requests: a request with n choices runs n of them
        const inFlight = `${counted(active, 'generation')} running${queued > 0 ? `, ${counted(queued, 'request')} queued` : ''}`;
        note(
          active + queued > 0 && flags.shutdownGrace > 0
            ? `stopping: ${inFlight}; they get up to ${flags.shutdownGrace} s to finish (new requests get 503; Ctrl-C again stops now)`
            : 'stopping...',
        );
        resolve();
      };
    });
    // a second signal ends the wait
    const forced = new Promise<'forced'>((resolve) => {
      onSignal = () => resolve('forced');
    });
    const graceful = server.close({ grace: flags.shutdownGrace * 1000 });
    // forced: a close without grace, whose count is what the signal cut (the graceful close, ending
    // right after, finds nothing left)
    const forcedNow = (await Promise.race([graceful.then(() => 'graceful' as const), forced])) === 'forced';
    const cut = forcedNow ? await server.close() : await graceful;
    const cutShort = [
      cut.running > 0 ? counted(cut.running, 'generation') : '',
      cut.queued > 0 ? counted(cut.queued, 'queued request') : '',
    ]
      .filter(Boolean)
      .join(' and ');
    const when = forcedNow
      ? 'by the second signal'
      : flags.shutdownGrace > 0
        ? `after the ${flags.shutdownGrace} s grace`
        : 'at once (--shutdown-grace 0)';
    note(
      cutShort === ''
        ? 'stopped'
        : `stopped: ${cutShort} ended unfinished ${when} (their clients got 503 server_shutting_down)`,
    );
  } finally {
    // a signal while the models are released (their workers end), or after, exits at once
    onSignal = () => process.exit();
    for (const m of opened) await m.model.dispose();
  }
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description('start the OpenAI-compatible API with the playground page')
    .option(
      '-m, --model <dir|hub-id|id=dir>',
      'a model to serve (repeatable; ID=DIR names it; default: the embedded default)',
      collect,
    )
    .option('-p, --port <port>', 'port (0 picks a free one)', intArg(0, 65535), 8080)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option(
      '-r, --rules <spec>',
      'default rules of requests that set none (preset, subset, off, JSON, @file)',
      'hewitt2024',
    )
    .option(
      '--api-key <key>',
      'require "Authorization: Bearer <key>"; repeat to accept several (to rotate a key) (default: $IMPLICIT_IT_API_KEY, else none)',
      collect,
    )
    .option(
      '--concurrency <n>',
      "generations of each model running at once, decoded together in that model's batch",
      intArg(1, 1024),
      16,
    )
    .option(
      '--max-queued <n>',
      'requests for each model waiting beyond that; more get 429',
      intArg(0, 100_000),
      32,
    )
    .option(
      '--max-choices <n>',
      'generations one request may ask for (its prompts × n, or × best_of); more get 400',
      intArg(1, 16_384),
      128,
    )
    .option('--max-tokens <n>', 'upper limit of max_tokens', intArg(1, 1_000_000), 2048)
    .option(
      '--body-limit <MiB>',
      'largest request body, larger ones get 413 (prompts sent as token ids take about 6 bytes a token: an lm-evaluation-harness batch of 64 prompts of 2,048 tokens is about 0.8 MiB)',
      numArg(0, MAX_BODY_MIB, { min: true }),
      1,
    )
    .addOption(
      new Option('-f, --format <format>', 'how chat messages become a prompt')
        .choices(CONVERSATION_FORMATS)
        .default('tulu'),
    )
    .option('--add-bos', `${ADD_BOS_HELP}; requests may set "add_bos"`)
    .option('--no-add-bos', `${NO_ADD_BOS_HELP}; requests may set "add_bos"`)
    .option('--no-playground', 'do not serve the playground page at /')
    .option(
      '--no-fallback',
      'without --model, exit (3) when the hub cannot be reached instead of serving the random-weights stand-in (--offline still serves it)',
    )
    .option(
      '--no-worker',
      "run onnxruntime on the server's thread (default: a worker thread per model, so that /health and other requests are answered during a long prefill)",
    )
    .option(
      '--cors <origins>',
      'let web pages on these origins call the API (comma-separated, or * for any); preflights skip the API key',
    )
    .option(
      '--json',
      'also print {"url","models",...} as one JSON line on stdout once listening (on 0.0.0.0 or ::, url is the loopback one, with "listening" and "network")',
    )
    .option(
      '--shutdown-grace <seconds>',
      'on SIGINT/SIGTERM, let requests in flight finish for up to this long (new ones get 503)',
      intArg(0, 3600),
      10,
    )
    .option(
      '--stream-stall-timeout <seconds>',
      'stop a stream whose client accepts no data for this long (it stopped reading: its generation would hold its slots), freeing its slots; 0: no limit',
      intArg(0, 86_400),
      60,
    )
    .option(
      '--stream-keep-alive <seconds>',
      'a stream waiting this long for the model (queued, a long prefill) sends its 200 and a ": keep-alive" SSE comment (clients skip it), then one each as long, so that a proxy does not time it out (nginx: 60 s); 0: none, the 200 waits for the first token',
      intArg(0, 3600),
      15,
    )
    .option(
      '--log-requests',
      "one stderr line per request: method, path, status, milliseconds, request id, prompt + completion tokens (a stream's when it ends, saying how)",
    );
  addLoadOptions(cmd)
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it serve    # the default model on http://127.0.0.1:8080
  $ implicit-it serve --model ./models/smol --port 3000 \\
      --rules eos-uniform-diversity
  # the model's id is its directory's name
  $ curl http://127.0.0.1:3000/v1/chat/completions \\
      -H 'Content-Type: application/json' \\
      -d '{"model":"smol","rules":"hewitt2024",
           "messages":[{"role":"user","content":"Hi"}]}'
  $ implicit-it serve --model base=./models/a --model other=./models/b \\
      --api-key sk-local
${DEFAULT_MODEL_HELP}`,
    )
    .action(async (flags: ServeFlags) => run(flags));
}
