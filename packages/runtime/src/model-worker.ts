/**
 * The thread a `WorkerModel` runs in (`loadModelInWorker`): it loads the model and answers the
 * caller's requests with `Model`'s own generate, stream and score, so that onnxruntime's runs (which
 * hold the thread they run on for a whole prefill chunk or decoding step) never hold the caller's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { RuleSpec } from '@implicit-it/rules';
import { loadModelAs, type Model } from './model.js';
import { errorData, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol.js';

if (!parentPort) throw new Error('model-worker: start it as a worker thread (loadModelInWorker does)');
const port = parentPort;
const post = (message: FromWorker) => port.postMessage(message);
const { dir, options } = workerData as WorkerInit;

/** Requests in progress, by id: aborting one aborts its controller. */
const running = new Map<number, AbortController>();

/**
 * The request whose call is running its synchronous part (checks, the rules compiled): its log lines
 * (the notes of a rule set) name it, so that a `log` that throws on the caller's thread fails that
 * request, as it does on a `Model`.
 */
let calling: number | undefined;

/**
 * A request's options as `Model` takes them: the config of a `RuleSet` the caller compiled
 * (`rulesCompiled`) compiled here too, without the note of its unresolved entries (the caller has
 * them, in the set, and a `Model` given the set notes nothing).
 */
function modelOptions<O extends { rules?: RuleSpec; rulesCompiled?: true }>(model: Model, options: O) {
  const { rulesCompiled, ...rest } = options;
  return rulesCompiled && rest.rules !== undefined
    ? { ...rest, rules: model.quietRules(rest.rules) ?? false }
    : rest;
}

/** Runs one request, answering its result or its error; `abort` messages reach it through `signal`. */
async function answer(model: Model, id: number, work: (signal: AbortSignal) => Promise<unknown>) {
  const controller = new AbortController();
  running.set(id, controller);
  try {
    calling = id;
    let started: Promise<unknown>;
    try {
      started = work(controller.signal);
    } finally {
      calling = undefined;
    }
    const value = await started;
    post({ type: 'result', id, value, load: model.load, prefix: model.prefixCacheStats });
  } catch (error) {
    post({ type: 'error', id, error: errorData(error), load: model.load, prefix: model.prefixCacheStats });
  } finally {
    running.delete(id);
  }
}

/**
 * A generate or score request's options here: its own, this thread's abort signal for it, and an
 * `onProgress` that sends progress back when the caller has one.
 */
const callOptions = <O extends { rules?: RuleSpec; rulesCompiled?: true }>(
  model: Model,
  message: { id: number; options: O; progress: boolean },
  signal: AbortSignal,
) => ({
  ...modelOptions(model, message.options),
  signal,
  onProgress: message.progress
    ? (done: number, total: number) => post({ type: 'progress', id: message.id, done, total })
    : undefined,
});

function serve(model: Model): void {
  // several messages come as one when the caller sent them in one tick: handled in one task, so that
  // the engine (which starts in a microtask) takes their rows together
  port.on('message', (messages: ToWorker | ToWorker[]) => {
    for (const message of Array.isArray(messages) ? messages : [messages]) handle(message);
  });
  function handle(message: ToWorker): void {
    const { id } = message;
    switch (message.type) {
      case 'stream':
        void answer(model, id, async (signal) => {
          for await (const part of model.stream(message.input, {
            ...modelOptions(model, message.options),
            signal,
          }))
            post({ type: 'part', id, part, load: model.load, prefix: model.prefixCacheStats });
          return null;
        });
        break;
      case 'generate':
        void answer(model, id, (signal) =>
          model.generate(message.inputs, callOptions(model, message, signal)),
        );
        break;
      case 'score':
        void answer(model, id, (signal) => model.score(message.items, callOptions(model, message, signal)));
        break;
      case 'abort':
        running.get(id)?.abort(new Error('aborted by the caller'));
        break;
      case 'end-profiling':
        void answer(model, id, async () => model.endProfiling());
        break;
      case 'clear-prefix-cache':
        void answer(model, id, async () => model.clearPrefixCache());
        break;
      case 'dispose':
        // the caller terminates this thread once it has the reply
        void answer(model, id, async () => {
          await model.dispose();
          return null;
        });
        break;
    }
  }
}

async function main(): Promise<void> {
  try {
    // errors name the function the caller called
    const model = await loadModelAs('loadModelInWorker', dir, {
      ...options,
      log: (line) => post({ type: 'log', line, ...(calling !== undefined ? { id: calling } : {}) }),
    });
    post({ type: 'ready', files: model.files, info: model.info, prefix: model.prefixCacheStats });
    serve(model);
  } catch (error) {
    // the thread then ends on its own: nothing listens for requests
    post({ type: 'failed', error: errorData(error) });
  }
}

void main();
