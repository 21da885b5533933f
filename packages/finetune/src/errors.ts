import { ImplicitItError } from '@implicit-it/rules';

export { ImplicitItError };

/**
 * A raw data file is missing or unreadable as a whole (code `finetune.missing_data`). Single bad
 * rows never throw: they are reported in the build summary.
 *
 * @example
 * new DataFileError('/data/gsm8k/train.jsonl', 'not found; pass the `dataDir` option (CLI: --data-dir) pointing at ../shared/data');
 */
export class DataFileError extends ImplicitItError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('finetune.missing_data', `${file}: ${message}`, options);
    this.name = 'DataFileError';
    this.file = file;
  }
}

/**
 * An invalid option or config field (code `finetune.invalid_option`); `field` names it.
 *
 * @example
 * new FinetuneOptionError('gpus', 'must be a positive integer, got -1');
 */
export class FinetuneOptionError extends ImplicitItError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('finetune.invalid_option', `${field}: ${message}`);
    this.name = 'FinetuneOptionError';
    this.field = field;
  }
}

/**
 * An example that cannot be encoded (code `finetune.invalid_example`): no messages, an unknown role.
 *
 * @example
 * new EncodeError('lima_3', 'messages[1].role', 'invalid role "tool"; use system, user or assistant');
 */
export class EncodeError extends ImplicitItError {
  readonly exampleId: string;
  readonly field: string;
  constructor(exampleId: string, field: string, message: string) {
    super('finetune.invalid_example', `example ${exampleId}, ${field}: ${message}`);
    this.name = 'EncodeError';
    this.exampleId = exampleId;
    this.field = field;
  }
}

/**
 * A tokenizer directory that cannot be loaded (code `finetune.tokenizer`).
 *
 * @example
 * new TokenizerLoadError('/models/llama2', 'tokenizer.json not found');
 */
export class TokenizerLoadError extends ImplicitItError {
  readonly dir: string;
  constructor(dir: string, message: string, options?: { cause?: unknown }) {
    super('finetune.tokenizer', `${dir}: ${message}`, options);
    this.name = 'TokenizerLoadError';
    this.dir = dir;
  }
}

/**
 * A job directory that is missing, incomplete, or was written by another format version
 * (code `finetune.invalid_job`).
 *
 * @example
 * new JobError('/jobs/res', 'job.json not found; create the job with planJob first');
 */
export class JobError extends ImplicitItError {
  readonly jobDir: string;
  constructor(jobDir: string, message: string, options?: { cause?: unknown }) {
    super('finetune.invalid_job', `${jobDir}: ${message}`, options);
    this.name = 'JobError';
    this.jobDir = jobDir;
  }
}

/**
 * The Python training stack is missing (code `finetune.missing_python`). `install` lists exactly
 * the packages to install; the message says how.
 *
 * @example
 * new MissingPythonError('python3', ['torch', 'transformers'], 'pip install torch transformers');
 */
export class MissingPythonError extends ImplicitItError {
  readonly python: string;
  readonly missing: string[];
  readonly install: string;
  constructor(python: string, missing: string[], install: string, found = true) {
    const elsewhere =
      'or point the `python` option (CLI: --python) or IMPLICIT_IT_PYTHON at an interpreter that has them';
    super(
      'finetune.missing_python',
      found
        ? `${python} lacks ${missing.join(', ')}; install with: ${install}; ${elsewhere}`
        : `${python} could not be started (not found, or not an executable); ${install}; ${elsewhere}`,
    );
    this.name = 'MissingPythonError';
    this.python = python;
    this.missing = missing;
    this.install = install;
  }
}

/**
 * A path as a word of the command a message prints to copy and run: as it is, or in double quotes when
 * it holds a space or another character a shell reads otherwise (they group the word alike in sh,
 * PowerShell and cmd.exe; the CLI prints its own resume command, quoted for each shell exactly).
 */
export const commandWord = (path: string) => (/^[\w@%+=:,./\\-]+$/.test(path) ? path : `"${path}"`);

/**
 * The training process exited non-zero (code `finetune.training_failed`); `logTail` holds its last lines.
 *
 * @example
 * new TrainingFailedError('/jobs/res', 1, 'RuntimeError: CUDA out of memory');
 */
export class TrainingFailedError extends ImplicitItError {
  /** The job directory the training ran in. */
  readonly jobDir: string;
  readonly exitCode: number | null;
  readonly logTail: string;
  /** Whether the run was stopped through `RunJobOptions.signal`. */
  readonly aborted: boolean;
  /** The newest checkpoint the run saved, if any: `runJob(dir, { resume: true })` continues from it. */
  readonly checkpoint?: { step: number; path: string };
  constructor(
    jobDir: string,
    exitCode: number | null,
    logTail: string,
    options: {
      aborted?: boolean;
      checkpoint?: { step: number; path: string };
      /**
       * How to resume from the checkpoint, for the message, in place of the library call and the plain
       * CLI command (an app's own command, keeping the flags the run was given).
       */
      resumeWith?: string;
    } = {},
  ) {
    const resumeWith =
      options.resumeWith ??
      `\`runJob(dir, { resume: true })\` (CLI: implicit-it finetune run ${commandWord(jobDir)} --resume)`;
    const resume = options.checkpoint
      ? `; a checkpoint at step ${options.checkpoint.step} was saved: resume from it with ${resumeWith}`
      : '';
    super(
      'finetune.training_failed',
      options.aborted
        ? `${jobDir}: training was stopped before it finished${resume}; the partial log is in ${jobDir}/train.log`
        : `${jobDir}: training exited with ${exitCode}${resume}; see ${jobDir}/train.log. Last lines:\n${logTail}`,
    );
    this.name = 'TrainingFailedError';
    this.jobDir = jobDir;
    this.exitCode = exitCode;
    this.logTail = logTail;
    this.aborted = options.aborted === true;
    if (options.checkpoint) this.checkpoint = options.checkpoint;
  }
}
