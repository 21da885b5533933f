import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { retryNotes } from '../src/retry-notes.js';

describe('retryNotes', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const refused = 'cannot connect (connect ECONNREFUSED 127.0.0.1:9)';

  it('one request: the line it always was', () => {
    const lines: string[] = [];
    const notes = retryNotes((l) => lines.push(l));
    notes.onRetry({ attempt: 1, delayMs: 312, error: refused });
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(200);
    expect(lines).toEqual([`judge: retry 1 in 0.3 s: ${refused}`]);
  });

  it('requests failing alike within the window are one line with their count and delays; others their own', () => {
    const lines: string[] = [];
    const notes = retryNotes((l) => lines.push(l));
    for (let i = 0; i < 16; i++) notes.onRetry({ attempt: 1, delayMs: 260 + i * 15, error: refused });
    notes.onRetry({ attempt: 1, delayMs: 1000, status: 503, error: 'HTTP 503: busy' });
    vi.advanceTimersByTime(150);
    notes.onRetry({ attempt: 2, delayMs: 700, error: refused });
    vi.advanceTimersByTime(50);
    expect(lines).toEqual([
      `judge: retry 1 for each of 16 requests in 0.3-0.5 s: ${refused}`,
      'judge: retry 1 in 1.0 s: HTTP 503',
    ]);
    vi.advanceTimersByTime(150);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe(`judge: retry 2 in 0.7 s: ${refused}`);
    // after the window, the same failure starts a new line
    notes.onRetry({ attempt: 1, delayMs: 400, error: refused });
    notes.onRetry({ attempt: 1, delayMs: 420, error: refused });
    vi.advanceTimersByTime(200);
    expect(lines[3]).toBe(`judge: retry 1 for each of 2 requests in 0.4 s: ${refused}`);
  });

  it('flush writes what is held at once, and nothing twice', () => {
    const lines: string[] = [];
    const notes = retryNotes((l) => lines.push(l));
    notes.onRetry({ attempt: 2, delayMs: 500, error: refused });
    notes.onRetry({ attempt: 2, delayMs: 600, error: refused });
    notes.flush();
    expect(lines).toEqual([`judge: retry 2 for each of 2 requests in 0.5-0.6 s: ${refused}`]);
    vi.advanceTimersByTime(1000);
    notes.flush();
    expect(lines).toHaveLength(1);
  });
});
