import { ImplicitItError } from '@implicit-it/rules';

/**
 * An impossible or incomplete model configuration. `field` names the offending field (camelCase, as
 * in {@link DecoderConfig}), and the message says how to fix it.
 *
 * @example
 * try {
 *   resolveConfig({ preset: 'tiny', hiddenSize: 63 });
 * } catch (e) {
 *   if (e instanceof ModelConfigError) console.log(e.field); // 'hiddenSize'
 * }
 */
export class ModelConfigError extends ImplicitItError {
  readonly field: string;
  /**
   * Where the field's value is too small for something else (`vocabSize` below the tokenizer's ids),
   * the least value that fits; a caller can offer it without reading the message.
   */
  readonly atLeast: number | undefined;
  constructor(field: string, message: string, options: { atLeast?: number } = {}) {
    super('modelkit.invalid_config', `${field}: ${message}`);
    this.name = 'ModelConfigError';
    this.field = field;
    this.atLeast = options.atLeast;
  }
}

/**
 * Weights that do not fit the configuration: a missing tensor, a wrong length, an unknown name.
 *
 * @example
 * try { validateWeights(config, weights); } catch (e) { if (e instanceof ModelWeightsError) console.log(e.tensor); }
 */
export class ModelWeightsError extends ImplicitItError {
  readonly tensor: string;
  constructor(tensor: string, message: string) {
    super('modelkit.invalid_weights', `${tensor}: ${message}`);
    this.name = 'ModelWeightsError';
    this.tensor = tensor;
  }
}

/**
 * A tokenizer directory that cannot be used: a missing file, unreadable JSON, or a vocabulary larger
 * than the model's `vocabSize`.
 *
 * @example
 * try { await createModel({ out, tokenizerDir: '/nope' }); } catch (e) { if (e instanceof ModelTokenizerError) console.log(e.file); }
 */
export class ModelTokenizerError extends ImplicitItError {
  readonly file: string;
  constructor(file: string, message: string) {
    super('modelkit.invalid_tokenizer', `${file}: ${message}`);
    this.name = 'ModelTokenizerError';
    this.file = file;
  }
}

/**
 * A model directory or ONNX file that cannot be read back (see {@link readModel}).
 *
 * @example
 * try { await readModel('/tmp/x'); } catch (e) { if (e instanceof ModelFileError) console.log(e.file); }
 */
export class ModelFileError extends ImplicitItError {
  readonly file: string;
  constructor(file: string, message: string) {
    super('modelkit.invalid_model_file', `${file}: ${message}`);
    this.name = 'ModelFileError';
    this.file = file;
  }
}
