/**
 * A parsed line of a job's training log.
 *
 * @example
 * const onEvent = (e: TrainingEvent) => {
 *   if (e.type === 'eval') console.log(`epoch ${e.epoch}: validation loss ${e.valLoss}`);
 * };
 * await runJob('jobs/res', { onEvent });
 */
export type TrainingEvent =
  | {
      type: 'start';
      totalSteps: number;
      stepsPerEpoch: number;
      examples: number;
      epochs: number;
      /** Steps already taken: those of the checkpoint a resumed run starts from, else 0. */
      step: number;
      /** Where the first process trains, as torch names it: `cuda` (one GPU), `cuda:N`, `cpu` (absent from open-instruct's logs). */
      device?: string;
      /** accelerate's mixed precision: `bf16`, `fp16` or `no`. */
      mixedPrecision?: string;
    }
  | {
      type: 'step';
      step: number;
      totalSteps?: number;
      epoch?: number;
      loss: number;
      lr?: number;
      elapsedSeconds?: number;
    }
  | { type: 'eval'; epoch: number; step: number; valLoss: number }
  | { type: 'checkpoint'; step: number; path: string }
  | { type: 'resume'; step: number; epoch: number; path: string }
  | { type: 'onnx'; exported: boolean; path?: string; reason?: string }
  | { type: 'saved'; path: string }
  | { type: 'done'; steps: number; valLosses: number[] };

const EVENT_PREFIX = 'IMPLICIT_IT_EVENT ';
// open-instruct's own log line, so logs of its finetune.py parse too.
const OPEN_INSTRUCT_STEP = /Step: (\d+), LR: ([0-9.eE+-]+), Loss: ([0-9.eE+-]+|nan|inf)/;

/**
 * Parses one log line: train.py's `IMPLICIT_IT_EVENT {json}` lines, or open-instruct's
 * `Step: N, LR: x, Loss: y`. Anything else returns undefined.
 *
 * @example
 * parseTrainingLogLine('IMPLICIT_IT_EVENT {"event":"step","step":3,"total_steps":10,"loss":2.5}');
 * // { type: 'step', step: 3, totalSteps: 10, loss: 2.5, ... }
 */
export function parseTrainingLogLine(line: string): TrainingEvent | undefined {
  const at = line.indexOf(EVENT_PREFIX);
  if (at >= 0) {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line.slice(at + EVENT_PREFIX.length)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    const n = (k: string) => (typeof e[k] === 'number' ? (e[k] as number) : undefined);
    switch (e.event) {
      case 'start':
        return {
          type: 'start',
          totalSteps: n('total_steps') ?? 0,
          stepsPerEpoch: n('steps_per_epoch') ?? 0,
          examples: n('examples') ?? 0,
          epochs: n('epochs') ?? 0,
          step: n('step') ?? 0,
          ...(typeof e.device === 'string' ? { device: e.device } : {}),
          ...(typeof e.mixed_precision === 'string' ? { mixedPrecision: e.mixed_precision } : {}),
        };
      case 'step':
        return {
          type: 'step',
          step: n('step') ?? 0,
          totalSteps: n('total_steps'),
          epoch: n('epoch'),
          loss: n('loss') ?? Number.NaN,
          lr: n('lr'),
          elapsedSeconds: n('elapsed_s'),
        };
      case 'eval':
        return {
          type: 'eval',
          epoch: n('epoch') ?? 0,
          step: n('step') ?? 0,
          valLoss: n('val_loss') ?? Number.NaN,
        };
      case 'checkpoint':
        return { type: 'checkpoint', step: n('step') ?? 0, path: String(e.path) };
      case 'resume':
        return { type: 'resume', step: n('step') ?? 0, epoch: n('epoch') ?? 0, path: String(e.path) };
      case 'onnx':
        return {
          type: 'onnx',
          exported: e.exported === true,
          path: e.path as string | undefined,
          reason: e.reason as string | undefined,
        };
      case 'saved':
        return { type: 'saved', path: String(e.path) };
      case 'done':
        return {
          type: 'done',
          steps: n('steps') ?? 0,
          valLosses: (e.val_losses as number[] | undefined) ?? [],
        };
      default:
        return undefined;
    }
  }
  const m = OPEN_INSTRUCT_STEP.exec(line);
  if (m) return { type: 'step', step: Number(m[1]), lr: Number(m[2]), loss: Number(m[3]) };
  return undefined;
}

/**
 * Training progress as `runJob` reports it.
 *
 * @example
 * const p: TrainingProgress = { step: 30, totalSteps: 40, loss: 0.9, elapsedSeconds: 300, etaSeconds: 100 };
 * formatProgress(p, 8); // '[######--] 30/40 loss 0.900 eta 1m40s'
 */
export interface TrainingProgress {
  step: number;
  totalSteps: number;
  loss: number;
  /** Seconds left, from the mean time per step so far; undefined before the first step. */
  etaSeconds?: number;
  elapsedSeconds: number;
}

/**
 * A one-line progress bar: `[######------] 12/40 loss 1.234 eta 3m05s`.
 *
 * @example
 * formatProgress({ step: 12, totalSteps: 40, loss: 1.2345, etaSeconds: 185, elapsedSeconds: 80 });
 */
export function formatProgress(p: TrainingProgress, width = 24): string {
  const frac = p.totalSteps > 0 ? Math.min(1, p.step / p.totalSteps) : 0;
  const filled = Math.round(frac * width);
  const eta = p.etaSeconds === undefined ? '?' : formatDuration(p.etaSeconds);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} eta ${eta}`;
}

function formatDuration(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}
