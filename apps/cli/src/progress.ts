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
