import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DecoderConfig } from '../config.js';
import { ModelConfigError } from '../errors.js';
import { checkOneOf } from '../options.js';
import { Q4_BLOCK_SIZES } from '../quantize.js';
import { shown } from '../shown.js';
import type { WeightSource } from '../weights.js';
import {
  type DecoderGraphOptions,
  Q4_ACCURACY_LEVELS,
  type Q4Options,
  type WeightDtype,
} from './decoder-graph.js';
import { type WriteOnnxOptions, type WrittenOnnx, writeOnnxModel } from './write-onnx.js';

/**
 * The file of each weight dtype in `onnx/`, as transformers.js names them.
 *
 * @example
 * DTYPE_FILES.q4; // 'model_q4.onnx'
 */
export const DTYPE_FILES: Record<WeightDtype, string> = {
  fp32: 'model.onnx',
  q4: 'model_q4.onnx',
  q8: 'model_quantized.onnx',
};

/**
 * A graph's file in `onnx/`: {@link DTYPE_FILES}, or for a merged decoder (`merged: true`) optimum's
 * `decoder_model_merged.onnx` / `decoder_model_merged_q4.onnx` / `decoder_model_merged_quantized.onnx`.
 *
 * @example
 * graphFileName('q4', true); // 'decoder_model_merged_q4.onnx'
 */
export function graphFileName(dtype: WeightDtype, merged = false): string {
  return merged ? DTYPE_FILES[dtype].replace(/^model/, 'decoder_model_merged') : DTYPE_FILES[dtype];
}

const listed = (items: string[]) => `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;

/**
 * Throws a {@link ModelConfigError} (field `dtypes`) unless `dtypes` is a non-empty list of distinct
 * weight dtypes modelkit writes.
 */
export function checkDtypes(dtypes: readonly WeightDtype[]): void {
  if (!Array.isArray(dtypes) || dtypes.length === 0) {
    throw new ModelConfigError(
      'dtypes',
      `expected a non-empty list of ${Object.keys(DTYPE_FILES).join(', ')}`,
    );
  }
  for (const [i, dtype] of dtypes.entries()) {
    if (!Object.hasOwn(DTYPE_FILES, dtype)) {
      throw new ModelConfigError(
        'dtypes',
        `modelkit writes ${listed(Object.keys(DTYPE_FILES))} weights, got ${JSON.stringify(dtype)}`,
      );
    }
    if (dtypes.indexOf(dtype) !== i) throw new ModelConfigError('dtypes', `${dtype} is listed twice`);
  }
}

/**
 * Throws a {@link ModelConfigError} naming the option unless the q4 options are ones `MatMulNBits`
 * takes (called before anything is written).
 */
export function checkQ4Options(options: Q4Options): void {
  const { q4BlockSize: size, q4AccuracyLevel: level } = options;
  if (size !== undefined && !(Q4_BLOCK_SIZES as readonly unknown[]).includes(size))
    throw new ModelConfigError(
      'q4BlockSize',
      `must be one of ${Q4_BLOCK_SIZES.join(', ')}, got ${JSON.stringify(size)}`,
    );
  if (level !== undefined && !Q4_ACCURACY_LEVELS.includes(level))
    throw new ModelConfigError('q4AccuracyLevel', `must be 0, 1, 2, 3 or 4, got ${JSON.stringify(level)}`);
}

/**
 * Throws a {@link ModelConfigError} naming the option unless the graph options are ones the graph
 * builder knows (an unknown `kvDtype: 'fp16'` or `linear: 'conv'` would write the default graph) and
 * `externalDataThreshold` is a number of bytes. Called before anything is written.
 */
export function checkGraphOptions(options: DecoderGraphOptions & { externalDataThreshold?: unknown }): void {
  checkOneOf(options.kvDtype, 'kvDtype', ['float32', 'float16']);
  checkOneOf(options.repeatKv, 'repeatKv', ['grouped', 'expand']);
  checkOneOf(options.linear, 'linear', ['gemm', 'matmul']);
  checkOneOf(options.positionIds, 'positionIds', [true, false]);
  checkOneOf(options.merged, 'merged', [true, false]);
  const threshold = options.externalDataThreshold;
  if (
    threshold !== undefined &&
    !(typeof threshold === 'number' && Number.isFinite(threshold) && threshold >= 0)
  )
    throw new ModelConfigError(
      'externalDataThreshold',
      `must be a number of bytes >= 0 (0: all weights external), got ${shown(threshold)}`,
    );
}

/** The graphs written beside a model directory's `onnx/`, not yet in place. */
export interface GraphAside {
  /** What each graph's writer wrote, in the order of the dtypes given. */
  written: (WrittenOnnx & { dtype: WeightDtype })[];
  /** Bytes of weight data of all the graphs. */
  weightBytes: number;
  /** Whether any graph's weights went to external data. */
  external: boolean;
  /** Moves the graphs (and their `_data`) into place; returns their paths relative to the directory. */
  commit(): string[];
  /** Removes the graphs written aside. */
  discard(): void;
}

/**
 * Writes `dir/onnx/model.onnx` (and the other dtypes' files, see {@link graphFileName}) in a
 * `.partial-*` folder of `dir/onnx` (the long part), to be moved into place by `commit()` once
 * everything else is written: an interrupted run leaves the previous model whole, or no graph, never
 * a truncated one. Leftovers of earlier interrupted runs are removed first. `source` is asked for
 * every weight once per graph. Callers check `dtypes` and the q4 options first (`checkDtypes`,
 * `checkQ4Options`), before reading anything.
 */
export function writeGraphAside(
  dir: string,
  config: DecoderConfig,
  source: WeightSource,
  options: Omit<WriteOnnxOptions, 'dtype'>,
  dtypes: readonly WeightDtype[] = ['fp32'],
): GraphAside {
  const onnxDir = join(dir, 'onnx');
  mkdirSync(onnxDir, { recursive: true });
  for (const entry of readdirSync(onnxDir))
    if (entry.startsWith('.partial-')) rmSync(join(onnxDir, entry), { recursive: true, force: true });
  const partial = mkdtempSync(join(onnxDir, '.partial-'));
  const discard = () => rmSync(partial, { recursive: true, force: true });
  const written: GraphAside['written'] = [];
  try {
    for (const [k, dtype] of dtypes.entries()) {
      const file = join(partial, graphFileName(dtype, options.merged));
      // progress counts the weights of all graphs
      const onTensor = options.onTensor
        ? (name: string, index: number, count: number) =>
            options.onTensor!(name, k * count + index, dtypes.length * count)
        : undefined;
      written.push({ ...writeOnnxModel(file, config, source, { ...options, onTensor, dtype }), dtype });
    }
  } catch (error) {
    discard();
    throw error;
  }
  return {
    written,
    weightBytes: written.reduce((n, w) => n + w.weightBytes, 0),
    external: written.some((w) => w.external),
    discard,
    commit() {
      const files: string[] = [];
      for (const { dtype, external } of written) {
        const name = graphFileName(dtype, options.merged);
        if (external) renameSync(join(partial, `${name}_data`), join(onnxDir, `${name}_data`));
        else rmSync(join(onnxDir, `${name}_data`), { force: true }); // a previous, larger model's
        renameSync(join(partial, name), join(onnxDir, name));
        files.push(`onnx/${name}`, ...(external ? [`onnx/${name}_data`] : []));
      }
      discard();
      return files;
    },
  };
}
