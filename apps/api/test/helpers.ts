import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel, type Model, type StreamPart } from '@implicit-it/runtime';

/**
 * A tiny modelkit model whose seeded weights are scaled by 10, so that its greedy answers vary from
 * token to token (see createTinyModel's initScale). Written once into modelkit's cache and reused.
 */
export async function tinyModelDir(seed = 1): Promise<string> {
  return (await createTinyModel({ seed: seed, initScale: 10 })).dir;
}

let shared: Promise<Model> | undefined;

/** The tiny model, loaded once per test file (quiet). */
export function tinyModel(): Promise<Model> {
  shared ??= tinyModelDir().then((dir) => loadModel(dir, { log: () => {} }));
  return shared;
}

/**
 * `model` with its `prompt()` calls counted: how a test shows the server refused a request before
 * tokenizing its prompt. `prompts()` reads the count.
 */
export function countingPrompts(model: Model): { model: Model; prompts(): number } {
  let calls = 0;
  const counted = new Proxy(model, {
    get(target, key, receiver) {
      if (key === 'prompt')
        return (...args: Parameters<Model['prompt']>) => {
          calls++;
          return target.prompt(...args);
        };
      return Reflect.get(target, key, receiver);
    },
  }) as Model;
  return { model: counted, prompts: () => calls };
}

/** Parses a server-sent-events body into its `data:` payloads. */
export function parseSse(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6));
}

export const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

/**
 * `model` whose streams wait `first` ms before their first part and `each` ms before each other one,
 * or, with `fail`, throw it once `first` has passed; `yielded()` counts the parts they gave.
 */
export function slowed(
  model: Model,
  { first = 0, each = 0, fail }: { first?: number; each?: number; fail?: Error },
): { model: Model; yielded(): number } {
  let yielded = 0;
  const slow = new Proxy(model, {
    get(target, key, receiver) {
      if (key === 'stream')
        return async function* (...args: Parameters<Model['stream']>): AsyncGenerator<StreamPart> {
          await new Promise((r) => setTimeout(r, first));
          if (fail) throw fail;
          let i = 0;
          for await (const part of target.stream(...args)) {
            if (i++ > 0) await new Promise((r) => setTimeout(r, each));
            yielded++;
            yield part;
          }
        };
      return Reflect.get(target, key, receiver);
    },
  }) as Model;
  return { model: slow, yielded: () => yielded };
}
