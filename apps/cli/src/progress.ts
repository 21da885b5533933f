import cliProgress from 'cli-progress';

/**
 * Progress on stderr: a bar when stderr is a terminal; otherwise (pipes, logs, CI, nohup) a line at
 * most every `IMPLICIT_IT_PROGRESS_SECONDS` seconds (default 30; 0: none), so that a long job in a
 * log still shows it is alive.
 */
export interface Progress {
  update(value: number, total?: number): void;
  stop(): void;
}

/** Seconds between progress lines off a terminal (`IMPLICIT_IT_PROGRESS_SECONDS`, default 30; 0: none). */
function lineInterval(): number {
  const raw = process.env.IMPLICIT_IT_PROGRESS_SECONDS;
  const seconds = raw === undefined || raw.trim() === '' ? 30 : Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 30_000;
}

/**
 * Off a terminal: `label: 120/1000 examples (12%), 1m05s elapsed, ETA 7m55s`, written at most once an
 * interval: on an update, or by a timer when no update came (a batch of a large model can take
 * minutes, and the log must still show the job is alive). Never at the start: short jobs stay quiet.
 * The ETA is the rate of this process (items past `resumed`, those an earlier run did) times what is
 * left. `stop` ends the timer (it does not keep the process alive either way).
 */
function progressLines(
  label: string,
  total: number,
  unit: string,
  extra: () => string = () => '',
  resumed = 0,
): Progress {
  const interval = lineInterval();
  const started = performance.now();
  let last = started;
  let all = total;
  let done = 0;
  const write = () => {
    const now = performance.now();
    if (interval === 0 || now - last < interval) return;
    last = now;
    const elapsed = (now - started) / 1000;
    const share = all > 0 ? ` (${Math.floor((100 * done) / all)}%)` : '';
    const fresh = done - resumed;
    const eta = fresh > 0 && all > done ? `, ETA ${formatSeconds((elapsed / fresh) * (all - done))}` : '';
    process.stderr.write(
      `${label}: ${done}/${all} ${unit}${share}${extra()}, ${formatSeconds(elapsed)} elapsed${eta}\n`,
    );
  };
  const timer = interval > 0 ? setInterval(write, interval) : undefined;
  timer?.unref();
  return {
    update(value, newTotal) {
      if (newTotal !== undefined) all = newTotal;
      done = value;
      write();
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/**
 * A progress bar (a line now and then off a terminal). `resumed`: items an earlier run did, which
 * this process did not spend time on (left out of the ETA's rate).
 *
 * @example
 * const bar = progressBar('writing weights', 272, 'tensors');
 * bar.update(10);
 * bar.stop();
 */
export function progressBar(
  label: string,
  total: number,
  unit: string,
  options: { resumed?: number } = {},
): Progress {
  if (!process.stderr.isTTY) return progressLines(label, total, unit, undefined, options.resumed ?? 0);
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} ${unit} | {duration_formatted}`,
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    update(value, newTotal) {
      if (newTotal !== undefined) bar.setTotal(newTotal);
      bar.update(value);
    },
    stop() {
      bar.stop();
    },
  };
}

/** Several labelled bars at once (e.g. base and base+rules generating side by side). */
export function multiProgress(labels: string[], total: number, unit: string): Progress[] {
  if (!process.stderr.isTTY) return labels.map((label) => progressLines(label, total, unit));
  const multi = new cliProgress.MultiBar(
    {
      format: `{label} [{bar}] {value}/{total} ${unit}`,
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const width = Math.max(...labels.map((l) => l.length));
  let open = labels.length;
  return labels.map((label) => {
    const bar = multi.create(total, 0, { label: label.padEnd(width) });
    return {
      update(value, newTotal) {
        if (newTotal !== undefined) bar.setTotal(newTotal);
        bar.update(value);
      },
      stop() {
        bar.update(bar.getTotal());
        if (--open === 0) multi.stop();
      },
    };
  });
}

/** A training run's progress: steps, loss and the ETA the caller computes. */
export interface TrainingBar {
  /** The run's start: `step` steps already taken (a resumed run's), `total` to take. */
  begin(step: number, total: number): void;
  update(step: number, total: number, loss: number, etaSeconds: number | undefined): void;
  stop(): void;
}

/** `1h02m` / `3m05s` / `?`. */
export function formatSeconds(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const t = Math.max(0, Math.round(seconds));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}

/**
 * A progress bar for training (stderr; off a terminal, a line every 30 s as `progressBar`):
 * `training [███░░] 12/40 steps | loss 1.234 | ETA 3m05s`.
 *
 * @example
 * const bar = trainingBar();
 * bar.update(12, 40, 1.234, 185);
 * bar.stop();
 */
export function trainingBar(label = 'training'): TrainingBar {
  if (!process.stderr.isTTY) {
    let loss = '';
    let lines: Progress | undefined;
    // made at the start event, whose step (a resumed run's) is left out of the ETA's rate
    const linesFrom = (resumed: number) => {
      lines ??= progressLines(label, 0, 'steps', () => loss, resumed);
      return lines;
    };
    return {
      begin(step, total) {
        linesFrom(step).update(step, total);
      },
      update(step, total, lossValue) {
        loss = `, loss ${Number.isFinite(lossValue) ? lossValue.toFixed(4) : String(lossValue)}`;
        linesFrom(0).update(step, total);
      },
      stop() {
        lines?.stop();
      },
    };
  }
  let bar: cliProgress.SingleBar | undefined;
  const draw = (step: number, total: number, payload: { loss: string; remaining: string }) => {
    if (!bar) {
      bar = new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {value}/{total} steps | loss {loss} | ETA {remaining}`,
          hideCursor: true,
          clearOnComplete: false,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(total, step), step, payload);
      return;
    }
    if (total > 0) bar.setTotal(total);
    bar.update(step, payload);
  };
  return {
    begin(step, total) {
      draw(step, total, { loss: '?', remaining: '?' });
    },
    update(step, total, loss, etaSeconds) {
      draw(step, total, {
        loss: Number.isFinite(loss) ? loss.toFixed(4) : String(loss),
        remaining: formatSeconds(etaSeconds),
      });
    },
    stop() {
      bar?.stop();
    },
  };
}
