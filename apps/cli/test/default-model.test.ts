import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, SHARED_DIR } from '@implicit-it/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ABANDONED_AFTER_MS, hostTag, removeAbandoned, standInOutdated } from '../src/default-model.js';

// The stand-in's temporary directories: which a run removes as abandoned before writing its own.
describe('removeAbandoned', () => {
  const root = mkdtempSync(join(tmpdir(), 'implicit-it-abandoned-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const gone = spawnSync(process.execPath, ['-e', '']).pid;

  /** A partly written stand-in named `name`, last written `age` ms ago. */
  function partial(dir: string, name: string, age: number): void {
    const path = join(dir, name);
    mkdirSync(join(path, 'onnx'), { recursive: true });
    writeFileSync(join(path, 'onnx', 'model.onnx'), 'part of a graph');
    const at = new Date(Date.now() - age);
    for (const p of [join(path, 'onnx', 'model.onnx'), join(path, 'onnx'), path]) utimesSync(p, at, at);
  }

  it("judges this machine's by process, another machine's and unnamed ones by their last write", () => {
    const dir = mkdtempSync(join(root, 'models-'));
    const long = ABANDONED_AFTER_MS + 60_000;
    const recent = 5 * 60_000;
    const names = {
      oursGone: `smollm2-135m-random.tmp-${hostTag()}-${gone}`,
      oursRunning: `smollm2-135m-random.tmp-${hostTag()}-${process.pid}`,
      // another machine's process id may be ours, or gone here, and say nothing either way
      otherRecent: `smollm2-135m-random.tmp-other-host-${gone}`,
      otherOld: `smollm2-135m-random.tmp-other-host-${process.pid}`,
      // a version before the host was named
      unnamedRecent: `smollm2-135m-random.tmp-${gone}`,
      unnamedOld: `smollm2-135m-random.tmp-${process.pid}`,
      // not the stand-in's
      unrelated: `other-model.tmp-${hostTag()}-${gone}`,
    };
    partial(dir, names.oursGone, long);
    partial(dir, names.oursRunning, long);
    partial(dir, names.otherRecent, recent);
    partial(dir, names.otherOld, long);
    partial(dir, names.unnamedRecent, recent);
    partial(dir, names.unnamedOld, long);
    partial(dir, names.unrelated, long);
    const removed = removeAbandoned(dir);
    expect(removed.sort()).toEqual(
      [names.oursGone, names.otherOld, names.unnamedOld].map((n) => join(dir, n)).sort(),
    );
    expect(readdirSync(dir).sort()).toEqual(
      [names.oursRunning, names.otherRecent, names.unnamedRecent, names.unrelated].sort(),
    );
  });

  it('counts a file written inside as a write (a long write keeps its directory)', () => {
    const dir = mkdtempSync(join(root, 'models-'));
    const name = `smollm2-135m-random.tmp-other-host-${gone}`;
    partial(dir, name, ABANDONED_AFTER_MS + 60_000);
    writeFileSync(join(dir, name, 'onnx', 'model.onnx_data'), 'weights being written now');
    expect(removeAbandoned(dir)).toEqual([]);
    // an hour after that write, it is abandoned
    expect(removeAbandoned(dir, Date.now() + ABANDONED_AFTER_MS + 60_000)).toEqual([join(dir, name)]);
  });
});

// A stand-in written while ../shared was missing has modelkit's toy tokenizer; it is not kept for good.
describeShared('standInOutdated', ['fixtures/tokenizers/smollm/tokenizer.json'], () => {
  const root = mkdtempSync(join(tmpdir(), 'implicit-it-outdated-'));
  const before = process.env.IMPLICIT_IT_SHARED_DIR;
  afterEach(() => {
    if (before === undefined) delete process.env.IMPLICIT_IT_SHARED_DIR;
    else process.env.IMPLICIT_IT_SHARED_DIR = before;
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A cached stand-in whose marker records `tokenizer` (or no marker at all). */
  function standIn(tokenizer?: string): string {
    const dir = mkdtempSync(join(root, 'smollm2-135m-random-'));
    if (tokenizer !== undefined)
      writeFileSync(
        join(dir, 'implicit-it-random-model.json'),
        JSON.stringify({ preset: 'smollm2-135m', seed: 0, tokenizer, weights: 'random' }),
      );
    return dir;
  }

  it("is outdated when it has modelkit's tokenizer and SmolLM2's is now in ../shared", () => {
    process.env.IMPLICIT_IT_SHARED_DIR = SHARED_DIR;
    expect(standInOutdated(standIn('modelkit tiny'))).toBe(
      `it has modelkit's tiny tokenizer (written while ../shared was missing), and SmolLM2's is now in ${join(SHARED_DIR, 'fixtures', 'tokenizers', 'smollm')}`,
    );
    // one with SmolLM2's tokenizer, none written yet, or a marker not ours to judge: kept as it is
    expect(standInOutdated(standIn('smollm (../shared)'))).toBeUndefined();
    expect(standInOutdated(standIn())).toBeUndefined();
    const garbled = standIn();
    writeFileSync(join(garbled, 'implicit-it-random-model.json'), '{"tokenizer": "modelkit');
    expect(standInOutdated(garbled)).toBeUndefined();
  });

  it('is current while ../shared is still missing: nothing better to write it with', () => {
    process.env.IMPLICIT_IT_SHARED_DIR = mkdtempSync(join(root, 'no-shared-'));
    expect(standInOutdated(standIn('modelkit tiny'))).toBeUndefined();
  });
});
