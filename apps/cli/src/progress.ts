import cliProgress from 'cli-progress';

/** A progress bar on stderr, drawn only when stderr is a terminal (silent in pipes, logs and CI). */
export interface Progress {
  update(value: number, total?: number): void;
  stop(): void;
}

/**
 * @example
 * const bar = progressBar('writing weights', 272, 'tensors');
 * bar.update(10);
 * bar.stop();
 */
export function progressBar(label: string, total: number, unit: string): Progress {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
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
  if (!process.stderr.isTTY) return labels.map(() => ({ update() {}, stop() {} }));
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
 * A progress bar for training (stderr, only on a terminal): `training [███░░] 12/40 steps | loss 1.234 | ETA 3m05s`.
 *
 * @example
 * const bar = trainingBar();
 * bar.update(12, 40, 1.234, 185);
 * bar.stop();
 */
export function trainingBar(label = 'training'): TrainingBar {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(step, total, loss, etaSeconds) {
      const payload = {
        loss: Number.isFinite(loss) ? loss.toFixed(4) : String(loss),
        remaining: formatSeconds(etaSeconds),
      };
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
    },
    stop() {
      bar?.stop();
    },
  };
}
