import { meantOption } from '@implicit-it/rules';
import { FinetuneOptionError } from './errors.js';

/**
 * LoRA options as open-instruct passes them to peft (defaults: rank 64, alpha 16, dropout 0.1, all llama projections).
 *
 * @example
 * const lora: LoraOptions = { rank: 16, alpha: 32, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] };
 * await planJob({ recipe: 'lima-response', model: 'models/Llama-2-7b-hf', out: 'jobs/res-lora', training: { lora } });
 */
export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
}

/**
 * open-instruct's LoRA defaults.
 *
 * @example
 * trainingRecipe({ lora: { ...DEFAULT_LORA, targetModules: ['q_proj', 'v_proj'] } }).lora!.rank; // 64
 */
export const DEFAULT_LORA: Readonly<LoraOptions> = {
  rank: 64,
  alpha: 16,
  dropout: 0.1,
  targetModules: ['q_proj', 'o_proj', 'v_proj', 'k_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

/**
 * How the linear schedule is sized (`TrainingRecipe.scheduleSteps`):
 * - `'reference'`: as the paper's `open_instruct/finetune.py` sizes it, for the data before accelerate
 *   splits it across processes (epochs x ceil(batches / accumulation)), and advanced once per process
 *   at every optimizer step, as accelerate advances a scheduler it wraps (ZeRO-3 included: DeepSpeed
 *   steps only its own schedules). With several processes it ends before the run does: the last steps
 *   train at learning rate 0.
 * - `'run'`: sized for the optimizer steps this run takes, advanced once per step: it decays to 0
 *   after the last.
 *
 * With one process both are the same schedule.
 *
 * @example
 * const scheduleSteps: ScheduleSteps = 'run'; // decays to 0 at this run's last step
 * trainingRecipe({ scheduleSteps });
 */
export type ScheduleSteps = 'reference' | 'run';
/**
 * The values of {@link ScheduleSteps}.
 *
 * @example
 * SCHEDULE_STEPS.map((scheduleSteps) =>
 *   linearSchedule({ examples: 1030, recipe: trainingRecipe({ scheduleSteps }), accumulation: 32, processes: 2 }).scheduleTotal,
 * ); // [165, 85]
 */
export const SCHEDULE_STEPS = ['reference', 'run'] as const satisfies readonly ScheduleSteps[];

/**
 * A training recipe: every hyperparameter the job runs with.
 *
 * @example
 * const recipe: TrainingRecipe = trainingRecipe({ learningRate: 2e-5, maxSeqLength: 1024 });
 * gradientAccumulationSteps(recipe, 4); // 16
 */
export interface TrainingRecipe {
  learningRate: number;
  lrScheduler: 'linear';
  /** How the linear schedule is sized: `'reference'` (the paper's) or `'run'`; see {@link ScheduleSteps}. */
  scheduleSteps: ScheduleSteps;
  warmupRatio: number;
  weightDecay: number;
  /** per-device batch x gradient accumulation x devices. */
  effectiveBatchSize: number;
  perDeviceBatchSize: number;
  maxSeqLength: number;
  bf16: boolean;
  epochs: number;
  seed: number;
  gradientCheckpointing: boolean;
  /** Full finetuning when undefined (the paper). */
  lora?: LoraOptions | undefined;
}

/**
 * The epoch counts the paper chose among on the validation set.
 *
 * @example
 * // a quick sweep over the paper's three shortest choices
 * await planSweep({ recipe: 'poetry', model: 'models/Llama-2-7b-hf', out: 'jobs/poetry-short', epochs: EPOCH_CHOICES.slice(0, 3) });
 */
export const EPOCH_CHOICES = [5, 7, 10, 15, 20] as const;
/**
 * The paper's seeds.
 *
 * @example
 * for (const seed of SEEDS)
 *   await planJob({ recipe: 'gsm', model: 'models/Llama-2-7b-hf', out: `jobs/gsm-ep7-seed${seed}`, training: { epochs: 7, seed } });
 */
export const SEEDS = [1, 2, 3, 4, 5] as const;

/**
 * The paper's hyperparameters (open-instruct scripts of Hewitt et al.): lr 1e-5, linear schedule
 * sized and stepped as its finetune.py does (`scheduleSteps: 'reference'`), warmup ratio 0.03, weight
 * decay 0, effective batch 64 (1 per device), max_seq_length 2048, bf16.
 * `epochs` and `seed` default to the first of {@link EPOCH_CHOICES} and {@link SEEDS}.
 *
 * @example
 * gradientAccumulationSteps(PAPER_TRAINING, 8); // 8: 64 sequences a step from 8 GPUs of 1
 */
export const PAPER_TRAINING: Readonly<TrainingRecipe> = {
  learningRate: 1e-5,
  lrScheduler: 'linear',
  scheduleSteps: 'reference',
  warmupRatio: 0.03,
  weightDecay: 0,
  effectiveBatchSize: 64,
  perDeviceBatchSize: 1,
  maxSeqLength: 2048,
  bf16: true,
  epochs: 5,
  seed: 1,
  gradientCheckpointing: false,
};

/** The keys of a {@link TrainingRecipe}, and of its `lora`. */
export const RECIPE_KEYS = [...Object.keys(PAPER_TRAINING), 'lora'] as readonly string[];
const LORA_KEYS = Object.keys(DEFAULT_LORA) as readonly string[];

/**
 * Refuses a key of `o` that is not one of `known` (a misspelled `epoch` or `learning_rate` would train
 * with the paper's value, a `gpu: 8` plan a one-GPU job), naming the key meant where it is another
 * spelling or a near miss. Undefined values are no options given: `checkKeys({ epoch: 3 }, ['epochs',
 * 'seed'], '', 'a training option')` throws `epoch: not a training option (did you mean epochs?) ...`.
 */
export function checkKeys(o: object, known: readonly string[], prefix: string, what: string): void {
  for (const [key, value] of Object.entries(o)) {
    if (value === undefined || known.includes(key)) continue;
    const meant = meantOption(key, known);
    throw new FinetuneOptionError(
      `${prefix}${key}`,
      `not ${what}${meant ? ` (did you mean ${prefix}${meant}?)` : ''}; the options are ${known.map((k) => prefix + k).join(', ')}`,
    );
  }
}

/** Largest seed accelerate's `set_seed` takes (numpy's seeds are 32-bit). */
const MAX_SEED = 2 ** 32 - 1;

/**
 * The paper's recipe with overrides, validated: an unknown key (`epoch`, `learning_rate`) is refused
 * with the option meant, a value of the wrong type (`bf16: 'no'`) or out of range (`seed` outside
 * [0, 2^32 - 1], accelerate's `set_seed`) names the field (`FinetuneOptionError`). Undefined
 * overrides are no overrides.
 *
 * @example
 * trainingRecipe({ epochs: 10, seed: 3 }).learningRate; // 1e-5
 * trainingRecipe({ lora: { ...DEFAULT_LORA, rank: 16 } });
 */
export function trainingRecipe(
  overrides: { [K in keyof TrainingRecipe]?: TrainingRecipe[K] | undefined } = {},
): TrainingRecipe {
  if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides))
    throw new FinetuneOptionError(
      'training',
      `expected an object of overrides, got ${JSON.stringify(overrides)}`,
    );
  checkKeys(overrides, RECIPE_KEYS, '', 'a training option');
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const r: TrainingRecipe = { ...PAPER_TRAINING, ...given };
  const shown = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  const positive = (field: keyof TrainingRecipe, integer: boolean) => {
    const v = r[field] as number;
    if (!(typeof v === 'number' && v > 0 && (!integer || Number.isInteger(v)) && Number.isFinite(v))) {
      throw new FinetuneOptionError(
        field,
        `must be a positive ${integer ? 'integer' : 'number'}, got ${shown(v)}`,
      );
    }
  };
  positive('learningRate', false);
  positive('effectiveBatchSize', true);
  positive('perDeviceBatchSize', true);
  positive('maxSeqLength', true);
  positive('epochs', true);
  if (!(typeof r.seed === 'number' && Number.isInteger(r.seed) && r.seed >= 0 && r.seed <= MAX_SEED))
    throw new FinetuneOptionError(
      'seed',
      `must be an integer in [0, ${MAX_SEED}] (accelerate's set_seed), got ${shown(r.seed)}`,
    );
  if (!(typeof r.warmupRatio === 'number' && r.warmupRatio >= 0 && r.warmupRatio < 1))
    throw new FinetuneOptionError('warmupRatio', `must be a number in [0, 1), got ${shown(r.warmupRatio)}`);
  if (!(typeof r.weightDecay === 'number' && r.weightDecay >= 0 && Number.isFinite(r.weightDecay)))
    throw new FinetuneOptionError('weightDecay', `must be a number >= 0, got ${shown(r.weightDecay)}`);
  for (const field of ['bf16', 'gradientCheckpointing'] as const)
    if (typeof r[field] !== 'boolean')
      throw new FinetuneOptionError(field, `must be true or false, got ${shown(r[field])}`);
  if (r.lrScheduler !== 'linear')
    throw new FinetuneOptionError(
      'lrScheduler',
      `must be 'linear' (the paper's), got ${shown(r.lrScheduler)}`,
    );
  if (!(SCHEDULE_STEPS as readonly unknown[]).includes(r.scheduleSteps))
    throw new FinetuneOptionError(
      'scheduleSteps',
      `must be 'reference' (the paper's) or 'run', got ${shown(r.scheduleSteps)}`,
    );
  if (r.lora !== undefined) {
    if (typeof r.lora !== 'object' || r.lora === null || Array.isArray(r.lora))
      throw new FinetuneOptionError(
        'lora',
        `must be an object of LoRA options (rank, alpha, dropout, targetModules), got ${shown(r.lora)}`,
      );
    checkKeys(r.lora, LORA_KEYS, 'lora.', 'a training option');
    r.lora = {
      ...DEFAULT_LORA,
      ...Object.fromEntries(Object.entries(r.lora).filter(([, v]) => v !== undefined)),
    };
    const { rank, alpha, dropout, targetModules } = r.lora;
    if (!(typeof rank === 'number' && Number.isInteger(rank) && rank > 0))
      throw new FinetuneOptionError('lora.rank', `must be a positive integer, got ${shown(rank)}`);
    if (!(typeof alpha === 'number' && alpha > 0 && Number.isFinite(alpha)))
      throw new FinetuneOptionError('lora.alpha', `must be a positive number, got ${shown(alpha)}`);
    if (!(typeof dropout === 'number' && dropout >= 0 && dropout < 1))
      throw new FinetuneOptionError('lora.dropout', `must be a number in [0, 1), got ${shown(dropout)}`);
    if (!Array.isArray(targetModules) || targetModules.some((m) => typeof m !== 'string' || m === ''))
      throw new FinetuneOptionError(
        'lora.targetModules',
        `must be an array of module names, got ${JSON.stringify(targetModules)}`,
      );
    if (targetModules.length === 0)
      throw new FinetuneOptionError('lora.targetModules', 'must name at least one module');
  }
  return r;
}

/**
 * Gradient accumulation steps that make `effectiveBatchSize` exact for `devices` devices.
 *
 * @example
 * gradientAccumulationSteps(trainingRecipe(), 2); // 32 (64 / 2 devices / 1 per device)
 */
export function gradientAccumulationSteps(recipe: TrainingRecipe, devices: number): number {
  const perStep = recipe.perDeviceBatchSize * devices;
  if (recipe.effectiveBatchSize % perStep !== 0) {
    throw new FinetuneOptionError(
      'effectiveBatchSize',
      `${recipe.effectiveBatchSize} is not a multiple of perDeviceBatchSize x devices = ${perStep}; change the device count or perDeviceBatchSize`,
    );
  }
  return recipe.effectiveBatchSize / perStep;
}
