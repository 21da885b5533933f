import { afterEach, describe, expect, it, vi } from 'vitest';
import { progressBar } from '../src/progress.js';

// progress lines off a terminal, with a clock the test moves
describe('progress lines off a terminal', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  /** What `work` writes on stderr off a terminal, progress lines every `seconds`, with `now` its clock. */
  function offTerminal(seconds: string, work: (clock: { now: number }) => void): string[] {
    vi.stubEnv('IMPLICIT_IT_PROGRESS_SECONDS', seconds);
    const isTTY = process.stderr.isTTY;
    process.stderr.isTTY = false;
    const clock = { now: 0 };
    vi.spyOn(performance, 'now').mockImplementation(() => clock.now);
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((text) => {
      written.push(String(text));
      return true;
    });
    try {
      work(clock);
    } finally {
      process.stderr.isTTY = isTTY;
    }
    return written;
  }

  function lines(resumed?: number) {
    return offTerminal('1', (clock) => {
      const bar = progressBar('ranking', 1000, 'examples', resumed === undefined ? {} : { resumed });
      bar.update(resumed ?? 0);
      clock.now = 60_000; // a minute later, 100 more done
      bar.update((resumed ?? 0) + 100);
      bar.stop();
    });
  }

  it('estimates the time left from the rate of this process', () => {
    expect(lines()).toEqual(['ranking: 100/1000 examples (10%), 1m00s elapsed, ETA 9m00s\n']);
  });

  it('writes a line when no update comes for an interval, until stopped (a long batch)', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let written: string[];
    try {
      written = offTerminal('30', (clock) => {
        const bar = progressBar('generating', 64, 'instructions');
        bar.update(8); // the first batch, at once: no line
        for (const seconds of [30, 60]) {
          clock.now = seconds * 1000;
          vi.advanceTimersByTime(30_000);
        }
        bar.stop();
        clock.now = 90_000;
        vi.advanceTimersByTime(30_000);
      });
    } finally {
      vi.useRealTimers();
    }
    expect(written).toEqual([
      'generating: 8/64 instructions (12%), 0m30s elapsed, ETA 3m30s\n',
      'generating: 8/64 instructions (12%), 1m00s elapsed, ETA 7m00s\n',
    ]);
  });

  it('after a resume, leaves the items an earlier run did out of the rate', () => {
    // 800 resumed, 100 in a minute: 100 left is a minute, not 1m00s x 100/900
    expect(lines(800)).toEqual(['ranking: 900/1000 examples (90%), 1m00s elapsed, ETA 1m00s\n']);
  });
});
