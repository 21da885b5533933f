import { FinetuneOptionError } from './errors.js';

/** LoRA options as open-instruct passes them to peft (defaults: rank 64, alpha 16, dropout 0.1, all llama projections). */
export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
}

/** open-instruct's LoRA defaults. */
export const DEFAULT_LORA: Readonly<LoraOptions> = {
  rank: 64,
  alpha: 16,
  dropout: 0.1,
  targetModules: ['q_proj', 'o_proj', 'v_proj', 'k_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

/** A training recipe: every hyperparameter the job runs with. */
export interface TrainingRecipe {
  learningRate: number;
  lrScheduler: 'linear';
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
  lora?: LoraOptions;
}

/** The epoch counts the paper chose among on the validation set. */
export const EPOCH_CHOICES = [5, 7, 10, 15, 20] as const;
/** The paper's seeds. */
export const SEEDS = [1, 2, 3, 4, 5] as const;

/**
 * The paper's hyperparameters (open-instruct scripts of Hewitt et al.): lr 1e-5, linear schedule,
 * warmup ratio 0.03, weight decay 0, effective batch 64 (1 per device), max_seq_length 2048, bf16.
 * `epochs` and `seed` default to the first of {@link EPOCH_CHOICES} and {@link SEEDS}.
 */
export const PAPER_TRAINING: Readonly<TrainingRecipe> = {
  learningRate: 1e-5,
  lrScheduler: 'linear',
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

/**
 * The paper's recipe with overrides, validated.
 *
 * @example
 * trainingRecipe({ epochs: 10, seed: 3 }).learningRate; // 1e-5
 * trainingRecipe({ lora: { ...DEFAULT_LORA, rank: 16 } });
 */
export function trainingRecipe(overrides: Partial<TrainingRecipe> = {}): TrainingRecipe {
  const r: TrainingRecipe = { ...PAPER_TRAINING, ...overrides };
  const positive = (field: keyof TrainingRecipe, integer: boolean) => {
    const v = r[field] as number;
    if (!(typeof v === 'number' && v > 0 && (!integer || Number.isInteger(v)))) {
      throw new FinetuneOptionError(field, `must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
    }
  };
  positive('learningRate', false);
  positive('effectiveBatchSize', true);
  positive('perDeviceBatchSize', true);
  positive('maxSeqLength', true);
  positive('epochs', true);
  if (!Number.isInteger(r.seed)) throw new FinetuneOptionError('seed', `must be an integer, got ${r.seed}`);
  if (!(r.warmupRatio >= 0 && r.warmupRatio < 1))
    throw new FinetuneOptionError('warmupRatio', `must be in [0, 1), got ${r.warmupRatio}`);
  if (!(r.weightDecay >= 0))
    throw new FinetuneOptionError('weightDecay', `must be >= 0, got ${r.weightDecay}`);
  if (r.lora) {
    if (!(Number.isInteger(r.lora.rank) && r.lora.rank > 0))
      throw new FinetuneOptionError('lora.rank', `must be a positive integer, got ${r.lora.rank}`);
    if (!(r.lora.dropout >= 0 && r.lora.dropout < 1))
      throw new FinetuneOptionError('lora.dropout', `must be in [0, 1), got ${r.lora.dropout}`);
    if (r.lora.targetModules.length === 0)
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
