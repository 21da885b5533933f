import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DecoderConfig } from '../config.js';
import type { WeightSource } from '../weights.js';
import { type WriteOnnxOptions, type WrittenOnnx, writeOnnxModel } from './write-onnx.js';

/** A graph written beside a model directory's `onnx/`, not yet in place. */
export interface GraphAside {
  written: WrittenOnnx;
  /** Moves `onnx/model.onnx` (and its `_data`) into place; returns their paths relative to the directory. */
  commit(): string[];
  /** Removes the graph written aside. */
  discard(): void;
}

/**
 * Writes `dir/onnx/model.onnx` in a `.partial-*` folder of `dir/onnx` (the long part), to be moved into
 * place by `commit()` once everything else is written: an interrupted run leaves the previous model
 * whole, or no graph, never a truncated one. Leftovers of earlier interrupted runs are removed first.
 */
export function writeGraphAside(
  dir: string,
  config: DecoderConfig,
  source: WeightSource,
  options: WriteOnnxOptions,
): GraphAside {
  const onnxDir = join(dir, 'onnx');
  mkdirSync(onnxDir, { recursive: true });
  for (const entry of readdirSync(onnxDir))
    if (entry.startsWith('.partial-')) rmSync(join(onnxDir, entry), { recursive: true, force: true });
  const partial = mkdtempSync(join(onnxDir, '.partial-'));
  const discard = () => rmSync(partial, { recursive: true, force: true });
  let written: WrittenOnnx;
  try {
    written = writeOnnxModel(join(partial, 'model.onnx'), config, source, options);
  } catch (error) {
    discard();
    throw error;
  }
  return {
    written,
    discard,
    commit() {
      if (written.external) renameSync(join(partial, 'model.onnx_data'), join(onnxDir, 'model.onnx_data'));
      else rmSync(join(onnxDir, 'model.onnx_data'), { force: true }); // a previous, larger model's
      renameSync(join(partial, 'model.onnx'), join(onnxDir, 'model.onnx'));
      discard();
      return written.external ? ['onnx/model.onnx', 'onnx/model.onnx_data'] : ['onnx/model.onnx'];
    },
  };
}
