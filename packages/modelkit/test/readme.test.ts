import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeShared, SHARED_DIR } from '@implicit-it/testkit';
import ts from 'typescript';
import { expect, it } from 'vitest';
import { randomWeights, resolveConfig, toHfConfig, weightSpecs } from '../src/index.js';

// The README's four examples, run in order as a consumer would (TypeScript, compiled as is) against
// the built package: a tiny model and its reference logits, SmolLM2-135M's shape on the real
// tokenizer, loading the tiny one with transformers.js, a q4 graph beside the fp32 one, and the ONNX
// export of a finetune job's bf16 output. They run in a scratch directory inside the package (so that
// @huggingface/transformers resolves), their /tmp paths go there, and ../shared (from the repository
// root) to the shared material.
const pkg = resolve(import.meta.dirname, '..');

/** A safetensors file of the tensors rounded to bf16 (truncated: each float32's upper 16 bits). */
function writeBf16Safetensors(
  file: string,
  tensors: { name: string; shape: number[]; data: Float32Array }[],
): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + 2 * t.data.length] };
    offset += 2 * t.data.length;
  }
  const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8));
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    const words = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    for (const w of words) {
      out.writeUInt16LE(w >>> 16, at);
      at += 2;
    }
  }
  writeFileSync(file, out);
}

describeShared('the README examples', ['fixtures/tokenizers/smollm/tokenizer.json'], () => {
  it('run, and print what their comments state', () => {
    const blocks = [...readFileSync(join(pkg, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map(
      (m) => m[1]!,
    );
    expect(blocks).toHaveLength(4);
    const dir = mkdtempSync(join(pkg, 'test', '.readme-'));
    try {
      // the finetune job's output the last example exports: a tiny checkpoint stored in bf16, as the
      // paper's recipes train (each weight's upper 16 bits: the bf16 value nearest below in magnitude)
      const tiny = resolveConfig({ preset: 'tiny' });
      const weights = randomWeights(tiny, 1);
      const checkpoint = join(dir, 'jobs', 'poetry', 'output');
      mkdirSync(checkpoint, { recursive: true });
      writeFileSync(join(checkpoint, 'config.json'), JSON.stringify(toHfConfig(tiny)));
      writeBf16Safetensors(
        join(checkpoint, 'model.safetensors'),
        weightSpecs(tiny).map((s) => ({ name: s.name, shape: s.shape, data: weights[s.name]! })),
      );
      const code = blocks
        .map((block) => {
          const lines = block.split('\n');
          // imports first (a module's), each block's body in its own scope
          return {
            imports: lines.filter((l) => l.startsWith('import ')),
            body: lines.filter((l) => !l.startsWith('import ')),
          };
        })
        .reduce(
          (all, b) => ({
            imports: [...all.imports, ...b.imports],
            bodies: [...all.bodies, `{\n${b.body.join('\n')}\n}`],
          }),
          { imports: [] as string[], bodies: [] as string[] },
        );
      // (one module: a name imported by two examples is imported once)
      const source = [...new Set(code.imports), ...code.bodies]
        .join('\n')
        .replaceAll("'@implicit-it/modelkit'", JSON.stringify(join(pkg, 'dist/index.js')))
        .replaceAll("'/tmp", `'${dir}`)
        .replaceAll("'../shared/", `'${SHARED_DIR}/`);
      const file = join(dir, 'example.mjs');
      writeFileSync(
        file,
        ts.transpileModule(source, {
          compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
        }).outputText,
      );
      const run = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' });
      expect(run.stderr).not.toMatch(/Error/);
      expect(run.status).toBe(0);
      expect(run.stdout.split('\n')).toEqual([
        '512 512',
        "[ 'onnx/model.onnx', 'onnx/model_q4.onnx' ]",
        "[ 'onnx/model.onnx' ] [ 'BF16' ]",
        '',
      ]);
      expect(existsSync(join(checkpoint, 'onnx', 'model.onnx'))).toBe(true);
      // SmolLM2-135M's shape, with the real tokenizer's 49,152 ids
      const config = JSON.parse(readFileSync(join(dir, 'smollm2-135m-random', 'config.json'), 'utf8'));
      expect(config).toMatchObject({ num_hidden_layers: 30, hidden_size: 576, vocab_size: 49152 });
      expect(existsSync(join(dir, 'tiny-llama', 'onnx', 'model.onnx'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
