import type { TrainingRecipe } from './training-recipe.js';

/**
 * The optimizer steps of a run and its linear schedule, as train.py's `schedule_plan` computes them.
 *
 * @example
 * const s: LinearSchedule = linearSchedule({ examples: 1000, recipe: trainingRecipe({ epochs: 10 }), accumulation: 64, processes: 1 });
 * s.totalSteps; // 160
 * s.warmupSteps; // 4
 */
export interface LinearSchedule {
  /** Optimizer steps per epoch on each process. */
  stepsPerEpoch: number;
  /** Optimizer steps the run takes. */
  totalSteps: number;
  /** Schedule steps the linear schedule is sized for: its learning rate is 0 from there on. */
  scheduleTotal: number;
  /** Schedule steps of linear warmup: int(scheduleTotal x warmupRatio). */
  warmupSteps: number;
  /** Schedule steps per optimizer step: the process count with `'reference'`, else 1. */
  advance: number;
}

/**
 * How many optimizer steps a job takes and how train.py sizes and steps its linear schedule, from
 * the unsplit example count: the loader holds ceil(examples / perDeviceBatchSize) batches, each
 * process gets ceil(that / processes) of them (accelerate's even batches) and takes one optimizer step
 * per `accumulation` of them, and one at each epoch's end. `recipe.scheduleSteps` sizes the schedule
 * (see `ScheduleSteps`).
 *
 * @example
 * // LIMA response tuning on 2 GPUs, as the paper ran it: 85 optimizer steps, a schedule of 165
 * linearSchedule({ examples: 1030, recipe: trainingRecipe(), accumulation: 32, processes: 2 });
 * // { stepsPerEpoch: 17, totalSteps: 85, scheduleTotal: 165, warmupSteps: 4, advance: 2 }
 */
export function linearSchedule(options: {
  examples: number;
  recipe: Pick<TrainingRecipe, 'perDeviceBatchSize' | 'epochs' | 'warmupRatio' | 'scheduleSteps'>;
  accumulation: number;
  processes: number;
}): LinearSchedule {
  const { examples, recipe, accumulation, processes } = options;
  const batches = Math.ceil(examples / recipe.perDeviceBatchSize);
  const stepsPerEpoch = Math.ceil(Math.ceil(batches / processes) / accumulation);
  const totalSteps = recipe.epochs * stepsPerEpoch;
  const reference = recipe.scheduleSteps === 'reference';
  const scheduleTotal = reference ? recipe.epochs * Math.ceil(batches / accumulation) : totalSteps;
  return {
    stepsPerEpoch,
    totalSteps,
    scheduleTotal,
    warmupSteps: Math.floor(scheduleTotal * recipe.warmupRatio),
    advance: reference ? processes : 1,
  };
}

/**
 * The learning rate optimizer step `step` (1, 2, ...) trains with: `peak` times transformers' linear
 * schedule with warmup at schedule step (step - 1) x advance. `step` totalSteps + 1 gives the rate
 * after the last step.
 *
 * @example
 * const s = linearSchedule({ examples: 1030, recipe: trainingRecipe(), accumulation: 32, processes: 2 });
 * learningRateAt(s, 1e-5, 2); // 5e-6 (warmup)
 * learningRateAt(s, 1e-5, 84); // 0: the schedule ran out after step 83
 */
export function learningRateAt(schedule: LinearSchedule, peak: number, step: number): number {
  const at = (step - 1) * schedule.advance;
  const { warmupSteps: warmup, scheduleTotal: total } = schedule;
  if (at < warmup) return peak * (at / Math.max(1, warmup));
  return peak * Math.max(0, (total - at) / Math.max(1, total - warmup));
}
