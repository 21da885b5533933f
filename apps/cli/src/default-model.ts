import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { createModel } from '@implicit-it/modelkit';
import { defaultHubCacheDir, hubEndpoint, resolveModel } from '@implicit-it/runtime';
import { CliError, EXIT, note } from './output.js';
import { progressBar } from './progress.js';
import { sharedDir } from './shared-dir.js';

/** The hub model used when `--model` is omitted and a network exists. */
export const DEFAULT_HUB_ID = 'HuggingFaceTB/SmolLM2-135M';
/** The id of the random-weights stand-in used offline. */
export const RANDOM_MODEL_ID = 'smollm2-135m-random';

/** The implicit-it cache root: `$IMPLICIT_IT_CACHE`, else `~/.cache/implicit-it`. */
export function cacheRoot(): string {
  return resolve(process.env.IMPLICIT_IT_CACHE ?? join(homedir(), '.cache', 'implicit-it'));
}

/** Where the random-weights stand-in lives. */
export function randomModelDir(): string {
  return join(cacheRoot(), 'models', RANDOM_MODEL_ID);
}

/** The default model, resolved to a directory. */
export interface DefaultModel {
  dir: string;
  /** The id it is served under. */
  id: string;
  /** True for the random-weights stand-in. */
  random: boolean;
}

const MARKER = 'implicit-it-random-model.json';

function hubCached(): string | undefined {
  const dir = join(defaultHubCacheDir(), DEFAULT_HUB_ID);
  return existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'onnx', 'model.onnx'))
    ? dir
    : undefined;
}

/** Whether the hub answers within a few seconds (one HEAD request). */
async function hubReachable(): Promise<boolean> {
  try {
    // a file the hub client itself would fetch: any endpoint it can use (HF_ENDPOINT) serves it
    const res = await fetch(`${hubEndpoint()}/${DEFAULT_HUB_ID}/resolve/main/config.json`, {
      method: 'HEAD',
      signal: AbortSignal.timeout(4000),
    });
    return res.status < 500;
  } catch {
    return false;
  }
}

/** Whether a process of this id runs (EPERM: it does, as another user's). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This machine's name as the stand-in's temporary directories carry it (`.tmp-HOST-PID`). */
export function hostTag(): string {
  return hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'localhost';
}

/**
 * How long a temporary directory of another machine (a cache shared over a network or between
 * containers, whose process ids mean nothing here) must have gone unwritten to count as abandoned:
 * writing the stand-in takes about a minute.
 */
export const ABANDONED_AFTER_MS = 60 * 60 * 1000;

/** The newest modification time of a directory, its files and its subdirectories' files. */
function lastWritten(dir: string): number {
  let newest = 0;
  const visit = (path: string, depth: number) => {
    try {
      const stat = statSync(path);
      newest = Math.max(newest, stat.mtimeMs);
      if (stat.isDirectory() && depth < 2) for (const e of readdirSync(path)) visit(join(path, e), depth + 1);
    } catch {
      // removed meanwhile: nothing newer to count
    }
  };
  visit(dir, 0);
  return newest;
}

/**
 * Removes the stand-in's temporary directories (`smollm2-135m-random.tmp-HOST-PID`) left by runs
 * stopped while they wrote them (Ctrl-C, kill): up to 540 MB each, which no later run reused or
 * removed. One of this machine is abandoned when its process no longer runs; one of another machine
 * (or from a version that named no host: `.tmp-PID`) when nothing in it was written for
 * `ABANDONED_AFTER_MS`, since a process id of another machine or PID namespace says nothing here.
 */
export function removeAbandoned(modelsDir: string, now = Date.now()): string[] {
  const removed: string[] = [];
  const pattern = new RegExp(`^${RANDOM_MODEL_ID}\\.tmp-(?:(.+)-)?(\\d+)$`);
  for (const name of readdirSync(modelsDir)) {
    const m = pattern.exec(name);
    if (!m) continue;
    const path = join(modelsDir, name);
    const abandoned =
      m[1] === hostTag() ? !processRuns(Number(m[2])) : now - lastWritten(path) > ABANDONED_AFTER_MS;
    if (!abandoned) continue;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

/** SmolLM2's tokenizer in `../shared`, when that exists. */
function smollmTokenizerDir(): string | undefined {
  const shared = sharedDir();
  const smollm = shared && join(shared, 'fixtures', 'tokenizers', 'smollm');
  return smollm && existsSync(join(smollm, 'tokenizer.json')) ? smollm : undefined;
}

/** The marker's `tokenizer` of a stand-in written without `../shared`. */
const TINY_TOKENIZER = 'modelkit tiny';

/**
 * Why the cached stand-in in `dir` is to be written again, or undefined when it is current (or not
 * there). One written while `../shared` was missing has modelkit's 512-token tokenizer: once SmolLM2's
 * is here, the stand-in gets it, as the README promises, instead of keeping the toy one for good.
 */
export function standInOutdated(dir = randomModelDir()): string | undefined {
  let record: { tokenizer?: unknown };
  try {
    record = JSON.parse(readFileSync(join(dir, MARKER), 'utf8'));
  } catch {
    return undefined; // none, or not ours to judge
  }
  const smollm = smollmTokenizerDir();
  return record.tokenizer === TINY_TOKENIZER && smollm
    ? `it has modelkit's tiny tokenizer (written while ../shared was missing), and SmolLM2's is now in ${smollm}`
    : undefined;
}

/**
 * The random-weights stand-in: a `smollm2-135m`-shaped modelkit model (seed 0), written once into the
 * cache. It uses the real SmolLM2 tokenizer from `../shared` when that exists, else modelkit's tiny one;
 * one written with the tiny one is written again once `../shared` is there (`standInOutdated`).
 */
export async function ensureRandomModel(): Promise<string> {
  const dir = randomModelDir();
  const outdated = standInOutdated(dir);
  if (existsSync(join(dir, MARKER)) && !outdated) return dir;
  const tokenizerDir = smollmTokenizerDir();
  const modelsDir = join(cacheRoot(), 'models');
  mkdirSync(modelsDir, { recursive: true });
  for (const left of removeAbandoned(modelsDir)) note(`removed ${left}, left unfinished by a stopped run`);
  const tmp = `${dir}.tmp-${hostTag()}-${process.pid}`;
  note(
    outdated
      ? `writing the random-weights stand-in model in ${dir} again: ${outdated}...`
      : `creating the random-weights stand-in model in ${dir} (once; about 540 MB)...`,
  );
  const bar = progressBar('writing weights', 1, 'tensors');
  try {
    await createModel({
      preset: 'smollm2-135m',
      seed: 0,
      out: tmp,
      tokenizerDir,
      onProgress: ({ index, count }) => bar.update(index + 1, count),
    });
    writeFileSync(
      join(tmp, MARKER),
      `${JSON.stringify({ preset: 'smollm2-135m', seed: 0, tokenizer: tokenizerDir ? 'smollm (../shared)' : TINY_TOKENIZER, weights: 'random' }, null, 2)}\n`,
    );
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  } finally {
    bar.stop();
  }
  return dir;
}

/** The notice printed whenever the random-weights stand-in is used. */
export function randomNotice(dir: string): string {
  return [
    `NOTICE: using ${RANDOM_MODEL_ID}, a SmolLM2-135M-shaped model with RANDOM weights (${dir}).`,
    '        Its answers are noise: only the mechanics (rules, streaming, the API, the playground) are real.',
    `        With a network, the default is ${DEFAULT_HUB_ID}; or pass --model DIR for a model of your own.`,
  ].join('\n');
}

/**
 * The model used when `--model` is omitted: the hub's SmolLM2-135M (its ONNX export, downloaded once and
 * cached) when a network exists; offline (or with `offline`), the random-weights stand-in, created on
 * first use, with a notice on stderr. With `fallback: false` (`serve --no-fallback`), a hub that
 * cannot be reached or fetched from is an error (exit 3) instead of the stand-in; `offline` still
 * asks for the stand-in.
 */
export async function resolveDefaultModel(
  options: { offline?: boolean; fallback?: boolean } = {},
): Promise<DefaultModel> {
  const cached = hubCached();
  if (cached) return { dir: cached, id: DEFAULT_HUB_ID, random: false };
  const offline =
    options.offline || process.env.HF_HUB_OFFLINE === '1' || process.env.IMPLICIT_IT_OFFLINE === '1';
  if (!offline) {
    if (await hubReachable()) {
      try {
        const dir = await resolveModel(DEFAULT_HUB_ID, { onProgress: (message) => note(message) });
        return { dir, id: DEFAULT_HUB_ID, random: false };
      } catch (error) {
        if (options.fallback === false)
          throw new CliError(
            `could not fetch ${DEFAULT_HUB_ID}: ${(error as Error).message}`,
            EXIT.load,
            'without --no-fallback, the random-weights stand-in is served instead; or pass --model DIR',
          );
        note(`could not fetch ${DEFAULT_HUB_ID}: ${(error as Error).message}`);
      }
    } else if (options.fallback === false)
      throw new CliError(
        `the Hugging Face hub (${hubEndpoint()}) is not reachable, and --no-fallback forbids the random-weights stand-in`,
        EXIT.load,
        'pass --model DIR (or a cached hub id), fix the network or HF_ENDPOINT, or drop --no-fallback',
      );
    else
      note(`the Hugging Face hub (${hubEndpoint()}) is not reachable: falling back to the offline default`);
  }
  const dir = await ensureRandomModel();
  note(randomNotice(dir));
  return { dir, id: RANDOM_MODEL_ID, random: true };
}
