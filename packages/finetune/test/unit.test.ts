import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithBinary } from '@implicit-it/testkit';
import { describe, expect, it } from 'vitest';
import {
  accelerateConfigYaml,
  cleanMovetext,
  DEFAULT_LORA,
  deepspeedZero3Config,
  FinetuneOptionError,
  formatProgress,
  gradientAccumulationSteps,
  learningRateAt,
  lengthStats,
  linearSchedule,
  PAPER_TRAINING,
  parsePythonStringList,
  parseTrainingLogLine,
  probePython,
  splitPgnGames,
  splitTrainValidation,
  TrainingFailedError,
  trainingRecipe,
} from '../src/index.js';

describe('parsePythonStringList', () => {
  it('parses quotes, escapes and trailing commas without eval', () => {
    expect(parsePythonStringList(`['1 egg', "baker's yeast", 'a\\'b', 'tab\\t', '\\xe9']`)).toEqual([
      '1 egg',
      "baker's yeast",
      "a'b",
      'tab\t',
      'é',
    ]);
    expect(parsePythonStringList(' [ ] ')).toEqual([]);
    expect(parsePythonStringList("['a',]")).toEqual(['a']);
  });
  it("decodes Python's other escapes as eval does: \\a \\b \\f \\v and octal", () => {
    // python3 -c "print(repr(eval(r'''['a\b\f\v\a\0\12\101\1010\777\8\q']''')))"
    expect(parsePythonStringList(String.raw`['a\b\f\v\a\0\12\101\1010\777\8\q']`)).toEqual([
      'a\x08\x0c\x0b\x07\x00\nAA0\u01ff\\8\\q',
    ]);
    expect(() => parsePythonStringList(String.raw`['\N{BULLET}']`)).toThrow(
      /\\N\{\.\.\.\} escapes are not supported/,
    );
    expect(() => parsePythonStringList(String.raw`['\U00110000']`)).toThrow(SyntaxError);
  });
  it('rejects code and broken literals', () => {
    expect(() => parsePythonStringList("__import__('os')")).toThrow(SyntaxError);
    expect(() => parsePythonStringList("['a' + 'b']")).toThrow(/expected "," or "\]"/);
    expect(() => parsePythonStringList("['a")).toThrow(/unterminated/);
  });
});

describe('PGN', () => {
  it('splits games and strips comments, clocks and repeated move numbers', () => {
    const games = splitPgnGames(
      '[White "a"]\n[WhiteElo "1"]\n\n1. e4 { [%clk 0:01:00] } 1... e5 2. Nf3 $1 1-0\n\n[White "b"]\n\n1. d4 0-1\n',
    );
    expect(games).toHaveLength(2);
    expect(games[1]!.line).toBe(6);
    expect(cleanMovetext(games[0]!.movetext)).toBe('1. e4 e5 2. Nf3 1-0');
  });
  it('ends a ; comment at its line, not at the end of the game', () => {
    const [game] = splitPgnGames('[White "a"]\n\n1. e4 e5 ; c\n2. Nf3 Nc6 3. Bb5 1-0\n');
    expect(cleanMovetext(game!.movetext)).toBe('1. e4 e5 2. Nf3 Nc6 3. Bb5 1-0');
    expect(cleanMovetext('1. e4 e5 ; c\n2. Nf3 Nc6 3. Bb5 1-0')).toBe('1. e4 e5 2. Nf3 Nc6 3. Bb5 1-0');
    // a ; inside a {...} comment that spans lines is the comment's text
    const [braced] = splitPgnGames('[White "a"]\n\n1. e4 { a ;\nb } e5 2. Nf3 1-0\n');
    expect(cleanMovetext(braced!.movetext)).toBe('1. e4 e5 2. Nf3 1-0');
  });
});

describe('splitTrainValidation', () => {
  const items = Array.from({ length: 100 }, (_, i) => i);
  it('is seeded, disjoint and order-preserving', () => {
    const a = splitTrainValidation(items, { fraction: 0.1, seed: 7 });
    const b = splitTrainValidation(items, { fraction: 0.1, seed: 7 });
    const c = splitTrainValidation(items, { fraction: 0.1, seed: 8 });
    expect(a.validation).toHaveLength(10);
    expect(a).toEqual(b);
    expect(a.validation).not.toEqual(c.validation);
    expect([...a.train, ...a.validation].sort((x, y) => x - y)).toEqual(items);
    expect(a.train).toEqual([...a.train].sort((x, y) => x - y));
  });
  it('refuses a fraction that rounds to no example at all', () => {
    expect(() => splitTrainValidation(items, { fraction: 0.0001 })).toThrow(
      'split.fraction: 0.0001 of 100 examples rounds to 0 held out, an empty validation set; give a fraction of at least 0.005, or a count',
    );
    expect(splitTrainValidation(items, { fraction: 0.005 }).validation).toHaveLength(1);
    expect(splitTrainValidation(items, { count: 0 }).validation).toHaveLength(0); // a count of 0 says so
  });
  it('validates its options', () => {
    expect(() => splitTrainValidation(items, { fraction: 1.5 })).toThrow(FinetuneOptionError);
    expect(() => splitTrainValidation(items, { count: 101 })).toThrow(/split.count/);
  });
});

describe('lengthStats', () => {
  it('computes nearest-rank percentiles', () => {
    expect(lengthStats([1, 2, 3, 10])).toEqual({ count: 4, min: 1, max: 10, mean: 4, p50: 2, p95: 10 });
    expect(lengthStats([]).count).toBe(0);
  });
});

describe('training recipes', () => {
  it("carries the paper's hyperparameters", () => {
    expect(PAPER_TRAINING).toMatchObject({
      learningRate: 1e-5,
      lrScheduler: 'linear',
      scheduleSteps: 'reference',
      warmupRatio: 0.03,
      weightDecay: 0,
      effectiveBatchSize: 64,
      maxSeqLength: 2048,
      bf16: true,
    });
  });
  it('derives gradient accumulation from the device count, and refuses inexact batches', () => {
    expect(gradientAccumulationSteps(trainingRecipe(), 2)).toBe(32);
    expect(gradientAccumulationSteps(trainingRecipe({ perDeviceBatchSize: 2 }), 8)).toBe(4);
    expect(() => gradientAccumulationSteps(trainingRecipe(), 3)).toThrow(/not a multiple/);
    expect(() => trainingRecipe({ epochs: 0 })).toThrow(/epochs/);
  });
  it('refuses misspelled keys with the option meant, and wrong types naming the field', () => {
    const refused = (overrides: object) => {
      try {
        trainingRecipe(overrides as never);
      } catch (e) {
        expect(e).toBeInstanceOf(FinetuneOptionError);
        return (e as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(overrides)}`);
    };
    expect(refused({ epoch: 10 })).toMatch(
      /^epoch: not a training option \(did you mean epochs\?\); the options are learningRate, /,
    );
    expect(refused({ learning_rate: 2e-5 })).toMatch(
      /^learning_rate: not a training option \(did you mean learningRate\?\)/,
    );
    expect(refused({ optimizer: 'adam' })).toMatch(/^optimizer: not a training option; the options are /);
    expect(refused({ lora: { ...DEFAULT_LORA, ranks: 8 } })).toMatch(
      /^lora\.ranks: not a training option \(did you mean lora\.rank\?\)/,
    );
    expect(refused({ bf16: 'no' })).toBe('bf16: must be true or false, got "no"');
    expect(refused({ gradientCheckpointing: 1 })).toBe('gradientCheckpointing: must be true or false, got 1');
    expect(refused({ warmupRatio: '0.1' })).toBe('warmupRatio: must be a number in [0, 1), got "0.1"');
    expect(refused({ weightDecay: '0' })).toBe('weightDecay: must be a number >= 0, got "0"');
    expect(refused({ epochs: '5' })).toBe('epochs: must be a positive integer, got "5"');
    expect(refused({ lrScheduler: 'cosine' })).toBe(
      `lrScheduler: must be 'linear' (the paper's), got "cosine"`,
    );
    expect(refused({ scheduleSteps: 'unsplit' })).toBe(
      `scheduleSteps: must be 'reference' (the paper's) or 'run', got "unsplit"`,
    );
    expect(refused({ scheduleSteps: null })).toBe(
      `scheduleSteps: must be 'reference' (the paper's) or 'run', got null`,
    );
    expect(refused({ schedule_steps: 'run' })).toMatch(
      /^schedule_steps: not a training option \(did you mean scheduleSteps\?\)/,
    );
    expect(trainingRecipe({ scheduleSteps: 'run' }).scheduleSteps).toBe('run');
    expect(refused({ lora: true })).toMatch(/^lora: must be an object of LoRA options/);
    expect(refused({ lora: { ...DEFAULT_LORA, alpha: 0 } })).toBe(
      'lora.alpha: must be a positive number, got 0',
    );
    expect(refused({ lora: { ...DEFAULT_LORA, targetModules: 'q_proj' } })).toBe(
      'lora.targetModules: must be an array of module names, got "q_proj"',
    );
    // undefined is no override; LoRA fields left out take open-instruct's defaults
    expect(trainingRecipe({ epochs: undefined, lora: undefined })).toEqual(PAPER_TRAINING);
    expect(trainingRecipe({ lora: { rank: 8 } as never }).lora).toEqual({ ...DEFAULT_LORA, rank: 8 });
  });
  it("sizes the linear schedule as the paper's finetune.py ('reference') or for the run's steps ('run')", () => {
    // LIMA response tuning (1030 examples) for 5 epochs on 2 GPUs, accumulation 32: the paper's runs
    const lima = (scheduleSteps: 'reference' | 'run', processes: number) =>
      linearSchedule({
        examples: 1030,
        recipe: trainingRecipe({ scheduleSteps }),
        accumulation: 64 / processes,
        processes,
      });
    const reference = lima('reference', 2);
    // sized for ceil(1030 / 32) = 33 steps an epoch, advanced twice per step; the run takes ceil(515 / 32) = 17
    expect(reference).toEqual({
      stepsPerEpoch: 17,
      totalSteps: 85,
      scheduleTotal: 165,
      warmupSteps: 4,
      advance: 2,
    });
    const at = (s: typeof reference, step: number) => learningRateAt(s, 1e-5, step);
    expect([1, 2, 3, 4].map((step) => at(reference, step))).toEqual([0, 5e-6, 1e-5, 1e-5 * (159 / 161)]);
    expect(at(reference, 83)).toBe(1e-5 * (1 / 161));
    expect([84, 85, 86].map((step) => at(reference, step))).toEqual([0, 0, 0]); // 86: after the last
    const run = lima('run', 2);
    expect(run).toEqual({ stepsPerEpoch: 17, totalSteps: 85, scheduleTotal: 85, warmupSteps: 2, advance: 1 });
    expect([1, 2, 3, 85, 86].map((step) => at(run, step))).toEqual([0, 5e-6, 1e-5, 1e-5 * (1 / 83), 0]);
    // one process: the same schedule either way
    expect(lima('reference', 1)).toEqual(lima('run', 1));
    expect(lima('run', 1)).toEqual({
      stepsPerEpoch: 17,
      totalSteps: 85,
      scheduleTotal: 85,
      warmupSteps: 2,
      advance: 1,
    });
  });
  it("refuses seeds outside accelerate's set_seed range [0, 2^32 - 1]", () => {
    for (const seed of [-3, 2 ** 32, 1.5])
      expect(() => trainingRecipe({ seed })).toThrow(
        `seed: must be an integer in [0, 4294967295] (accelerate's set_seed), got ${seed}`,
      );
    expect(trainingRecipe({ seed: 0 }).seed).toBe(0);
    expect(trainingRecipe({ seed: 2 ** 32 - 1 }).seed).toBe(2 ** 32 - 1);
  });
  it('writes accelerate configs for CPU, ZeRO-3 multi-node and plain multi-GPU', () => {
    expect(
      accelerateConfigYaml({ gpusPerNode: 0, nodes: 1, zero3: false, bf16: false }, 'ds.json'),
    ).toContain('use_cpu: true');
    const multi = accelerateConfigYaml({ gpusPerNode: 8, nodes: 2, zero3: true, bf16: true }, 'ds.json');
    expect(multi).toContain('distributed_type: DEEPSPEED');
    expect(multi).toContain('num_processes: 16');
    expect(multi).toContain('num_machines: 2');
    expect(accelerateConfigYaml({ gpusPerNode: 4, nodes: 1, zero3: false, bf16: true }, 'ds.json')).toContain(
      'MULTI_GPU',
    );
    expect(deepspeedZero3Config(true).zero_optimization.stage3_gather_16bit_weights_on_model_save).toBe(true);
  });
});

describe('training log', () => {
  it('parses train.py events and open-instruct step lines', () => {
    expect(
      parseTrainingLogLine(
        'IMPLICIT_IT_EVENT {"event":"step","step":3,"total_steps":10,"loss":2.5,"lr":1e-5}',
      ),
    ).toMatchObject({ type: 'step', step: 3, totalSteps: 10, loss: 2.5 });
    expect(parseTrainingLogLine('10/20/2024 - INFO - __main__ -   Step: 7, LR: 9.5e-06, Loss: 1.25')).toEqual(
      { type: 'step', step: 7, lr: 9.5e-6, loss: 1.25 },
    );
    expect(
      parseTrainingLogLine('IMPLICIT_IT_EVENT {"event":"onnx","exported":false,"reason":"no optimum"}'),
    ).toMatchObject({ type: 'onnx', exported: false });
    expect(
      parseTrainingLogLine(
        'IMPLICIT_IT_EVENT {"event": "start", "total_steps": 20, "steps_per_epoch": 20, "examples": 160, "epochs": 1, "step": 0, "device": "cuda:0", "mixed_precision": "bf16"}',
      ),
    ).toEqual({
      type: 'start',
      totalSteps: 20,
      stepsPerEpoch: 20,
      examples: 160,
      epochs: 1,
      step: 0,
      device: 'cuda:0',
      mixedPrecision: 'bf16',
    });
    expect(parseTrainingLogLine('Loading weights')).toBeUndefined();
    expect(parseTrainingLogLine('IMPLICIT_IT_EVENT {broken')).toBeUndefined();
  });
  it('formats a progress bar with ETA', () => {
    expect(
      formatProgress({ step: 5, totalSteps: 10, loss: 1.23456, etaSeconds: 65, elapsedSeconds: 60 }, 10),
    ).toBe('[#####-----] 5/10 loss 1.235 eta 1m05s');
  });
});

describe('TrainingFailedError', () => {
  it('says how to resume from its checkpoint: the library call, then the CLI command', () => {
    const error = new TrainingFailedError('/jobs/res', 1, 'RuntimeError: CUDA out of memory', {
      checkpoint: { step: 40, path: '/jobs/res/checkpoints/step-00000040' },
    });
    expect(error.message).toBe(
      '/jobs/res: training exited with 1; a checkpoint at step 40 was saved: resume from it with `runJob(dir, { resume: true })` (CLI: implicit-it finetune run /jobs/res --resume); see /jobs/res/train.log. Last lines:\nRuntimeError: CUDA out of memory',
    );
    // a job directory with a space: the command quotes it, so that it can be pasted as it is
    const spaced = new TrainingFailedError('/my jobs/res', 1, '', {
      checkpoint: { step: 40, path: '/my jobs/res/c' },
    });
    expect(spaced.message).toContain('(CLI: implicit-it finetune run "/my jobs/res" --resume)');
    // an app's own resume command in place of both; the job directory kept for it
    const own = new TrainingFailedError('/jobs/res', 1, 'RuntimeError: CUDA out of memory', {
      checkpoint: { step: 40, path: '/jobs/res/c' },
      resumeWith: "my-app resume '/jobs/res' --gpus 2",
    });
    expect([own.jobDir, own.message]).toEqual([
      '/jobs/res',
      "/jobs/res: training exited with 1; a checkpoint at step 40 was saved: resume from it with my-app resume '/jobs/res' --gpus 2; see /jobs/res/train.log. Last lines:\nRuntimeError: CUDA out of memory",
    ]);
  });
});

describeWithBinary('probePython', 'python3', 'apt-get install python3', () => {
  it('quotes an interpreter path with a space in the install command it prints', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ft-python-'));
    try {
      const dir = join(root, 'Program Files');
      mkdirSync(dir);
      const python = join(dir, 'python3');
      writeFileSync(python, '#!/bin/sh\nexec python3 -S "$@"\n');
      chmodSync(python, 0o755);
      const probe = await probePython(python, ['implicit_it_no_such_module']);
      expect(probe).toMatchObject({ found: true, missing: ['implicit_it_no_such_module'] });
      expect(probe.install).toBe(`"${python}" -m pip install implicit_it_no_such_module`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
