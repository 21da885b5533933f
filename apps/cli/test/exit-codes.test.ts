import { RunAbortedError } from '@implicit-it/eval';
import { GenerationAbortedError } from '@implicit-it/runtime';
import { expect, it } from 'vitest';
import { EXIT, exitCodeOf } from '../src/output.js';

it('a run or a generation stopped through its signal exits 130 (interrupted), as Ctrl-C does; its bare reason would not', () => {
  const reason = new Error('interrupted');
  expect(EXIT.interrupted).toBe(130);
  // eval's runs (generateRun, rankResponses, tokenShift...) wherever the abort lands; the runtime's generation
  expect(exitCodeOf(new RunAbortedError('generation aborted: interrupted; ...', { cause: reason }))).toBe(
    130,
  );
  expect(exitCodeOf(new GenerationAbortedError(reason))).toBe(130);
  // what a run rejected with between batches before RunAbortedError: a failure like any other
  expect(exitCodeOf(reason)).toBe(EXIT.failure);
});
