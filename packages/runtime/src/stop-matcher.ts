/**
 * Stop strings over streamed text: text that could still turn out to be the start of a stop string is
 * held back, so a streamed response never shows a stop string or part of one.
 */
export class StopMatcher {
  private text = '';
  private emitted = 0;
  private readonly stops: readonly string[];

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Adds decoded text; returns the text now safe to show and whether a stop string was reached. */
  push(delta: string): { emit: string; stopped: boolean } {
    const before = this.text.length;
    this.text += delta;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.text.indexOf(s, Math.max(0, before - s.length + 1));
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      return { emit: this.take(this.text.length), stopped: true };
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.text.length); k > hold; k--) {
        if (this.text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return { emit: this.take(this.text.length - hold), stopped: false };
  }

  /** The text held back, at the end of generation. */
  finish(): string {
    return this.take(this.text.length);
  }

  /** All text so far (without any stop string). */
  get value(): string {
    return this.text;
  }

  private take(to: number): string {
    if (to <= this.emitted) return '';
    const out = this.text.slice(this.emitted, to);
    this.emitted = to;
    return out;
  }
}
