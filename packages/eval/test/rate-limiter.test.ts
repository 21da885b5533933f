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
});
