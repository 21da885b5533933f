import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/index.js';

describe('createRateLimiter', () => {
  it('spaces starts by 60000 / requestsPerMinute ms and caps concurrency', async () => {
    const limit = createRateLimiter({ requestsPerMinute: 1200, concurrency: 2 }); // 50 ms apart
    const starts: number[] = [];
    let active = 0;
    let peak = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 5 }, () =>
        limit(async () => {
          starts.push(Date.now() - t0);
          peak = Math.max(peak, ++active);
          await new Promise((r) => setTimeout(r, 30));
          active--;
        }),
      ),
    );
    expect(peak).toBeLessThanOrEqual(2);
    starts.sort((a, b) => a - b);
    // the i-th start is scheduled at i * 50 ms (a late timer under load delays one start, not the schedule)
    for (let i = 1; i < starts.length; i++) expect(starts[i]!).toBeGreaterThanOrEqual(i * 50 - 5);
  });

  it('a call stops waiting for its start or its turn when its signal aborts, and leaves the queue', async () => {
    const spaced = createRateLimiter({ requestsPerMinute: 1, concurrency: 4 }); // 60 s apart
    expect(await spaced(async () => 'first')).toBe('first');
    const stop = new AbortController();
    const t0 = Date.now();
    setTimeout(() => stop.abort(new Error('stopped')), 20);
    let ran = false;
    await expect(
      spaced(async () => {
        ran = true;
      }, stop.signal),
    ).rejects.toThrow('stopped');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(ran).toBe(false);
    await expect(spaced(async () => 'never', stop.signal)).rejects.toThrow('stopped'); // aborted already

    const one = createRateLimiter({ concurrency: 1 });
    let release = () => {};
    const first = one(() => new Promise<string>((r) => (release = () => r('first'))));
    const gone = new AbortController();
    const second = one(async () => 'second', gone.signal);
    const third = one(async () => 'third');
    gone.abort(new Error('gone'));
    await expect(second).rejects.toThrow('gone');
    release();
    // the aborted call left the queue: the next one runs once the slot is free
    expect(await Promise.all([first, third])).toEqual(['first', 'third']);
  });
});
