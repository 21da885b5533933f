import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { createModel, type DecoderConfig, exportOnnx } from '../src/index.js';
import { emptyPast, maxAbsDiff, step } from './ort-helpers.js';

// A checkpoint saved by transformers itself (its names, its config.json of whatever version is
// installed, bf16 shards) exported and run by onnxruntime gives transformers' own logits.
const PYTHON = process.env.IMPLICIT_IT_PYTHON ?? 'python3';

/** The graph in `dir`'s prefill of 8 fixed ids gives `expected`'s logits (one row a position), to 1e-4. */
async function expectPrefillLogits(dir: string, config: DecoderConfig, expected: number[][]): Promise<void> {
  const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'));
  try {
    const ids = [3, 17, 200, 45, 9, 120, 77, 5];
    const out = await step(
      session,
      config,
      [ids],
      [Array(8).fill(1)],
      [ids.map((_, i) => i)],
      emptyPast(config, 1),
    );
    const worst = Math.max(...out.logits[0]!.map((row, i) => maxAbsDiff(row, expected[i]!)));
    expect(worst).toBeLessThan(1e-4);
  } finally {
    await session.release();
  }
}
const probe = spawnSync(PYTHON, ['-c', 'import torch, transformers, safetensors'], { encoding: 'utf8' });
const missing = probe.status !== 0;
if (missing) {
  console.warn(
    `[skip] exportOnnx vs transformers: ${PYTHON} lacks torch, transformers or safetensors (set IMPLICIT_IT_PYTHON to a Python that has them)`,
  );
}

const SAVE = `
import sys, json, torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
kind, out, dtype = sys.argv[1:4]
torch.manual_seed(0)
shape = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
if kind == "llama":
    model = LlamaForCausalLM(LlamaConfig(**shape, rope_theta=5000.0, tie_word_embeddings=False))
else:
    model = Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=True))
with torch.no_grad():  # HF init has zero biases and unit norms: perturb every tensor
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
model = model.to(getattr(torch, dtype))
model.save_pretrained(out, max_shard_size="200KB")  # shards, with model.safetensors.index.json
# the reference: the saved checkpoint loaded back in float32 (rotary tables rebuilt in float32)
try:
    model = type(model).from_pretrained(out, dtype=torch.float32)
except TypeError:  # transformers 4
    model = type(model).from_pretrained(out, torch_dtype=torch.float32)
model = model.eval()
with torch.no_grad():
    logits = model(torch.tensor([[3, 17, 200, 45, 9, 120, 77, 5]])).logits[0]
json.dump(logits.tolist(), open(out + "/expected.json", "w"))
`;

const peftMissing = missing || spawnSync(PYTHON, ['-c', 'import peft'], { encoding: 'utf8' }).status !== 0;
if (!missing && peftMissing)
  console.warn(`[skip] exportOnnx of a LoRA adapter vs peft: ${PYTHON} lacks peft`);

// a peft LoRA adapter on a saved base, and the logits of peft's own merge_and_unload()
const SAVE_LORA = `
import sys, json, torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
base_dir, adapter_dir = sys.argv[1:3]
torch.manual_seed(0)
base = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
base.save_pretrained(base_dir)
base = LlamaForCausalLM.from_pretrained(base_dir)  # as train.py loads it: the adapter names base_dir
model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
with torch.no_grad():  # lora_B starts at zero: give the adapter an effect
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.add_(torch.randn_like(p) * 0.1)
model.save_pretrained(adapter_dir)
merged = model.merge_and_unload().eval()
with torch.no_grad():
    logits = merged(torch.tensor([[3, 17, 200, 45, 9, 120, 77, 5]])).logits[0]
json.dump(logits.tolist(), open(adapter_dir + "/expected.json", "w"))
`;

describe.skipIf(peftMissing)('exportOnnx of a LoRA adapter vs peft', () => {
  it("merges a peft adapter into its base: peft's merge_and_unload() logits", {
    timeout: 120_000,
  }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'modelkit-peft-'));
    const [base, dir] = [join(root, 'base'), join(root, 'adapter')];
    const saved = spawnSync(PYTHON, ['-c', SAVE_LORA, base, dir], { encoding: 'utf8' });
    expect(saved.status, saved.stderr).toBe(0);
    const exported = await exportOnnx({ dir });
    expect(exported.adapter).toEqual({ base, rank: 4, scale: 4, matrices: 14 });
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as number[][];
    await expectPrefillLogits(dir, exported.config, expected);
  });
});

describe.skipIf(missing)('exportOnnx vs transformers', () => {
  for (const [kind, dtype] of [
    ['llama', 'bfloat16'],
    ['qwen2', 'float32'],
  ] as const) {
    it(`${kind} saved as ${dtype}: prefill and one cached step give transformers' logits`, {
      timeout: 120_000,
    }, async () => {
      const dir = mkdtempSync(join(tmpdir(), `modelkit-hf-${kind}-`));
      const saved = spawnSync(PYTHON, ['-c', SAVE, kind, dir, dtype], { encoding: 'utf8' });
      expect(saved.status, saved.stderr).toBe(0);
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as number[][];
      const exported = await exportOnnx({ dir });
      expect(exported.source).toBe(join(dir, 'model.safetensors.index.json'));
      expect(exported.sourceDtypes).toEqual([dtype === 'bfloat16' ? 'BF16' : 'F32']);
      if (kind === 'llama') expect(exported.config.ropeTheta).toBe(5000);
      const config = exported.config;
      const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'));
      try {
        const ids = [3, 17, 200, 45, 9, 120, 77, 5];
        const first = await step(
          session,
          config,
          [ids.slice(0, 7)],
          [Array(7).fill(1)],
          [[0, 1, 2, 3, 4, 5, 6]],
          emptyPast(config, 1),
        );
        const next = await step(session, config, [[ids[7]!]], [Array(8).fill(1)], [[7]], first.past);
        const got = [...first.logits[0]!, next.logits[0]![0]!];
        const worst = Math.max(...got.map((row, i) => maxAbsDiff(row, expected[i]!)));
        expect(worst).toBeLessThan(1e-4);
      } finally {
        await session.release();
      }
    });
  }
});

// createModel's model.safetensors is a checkpoint transformers loads (the base model of a finetune
// job): its logits are those of the ONNX graph written beside it.
const LOAD = `
import sys, json, torch
from transformers import AutoModelForCausalLM
try:
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
except TypeError:  # transformers 4
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
with torch.no_grad():
    print(json.dumps(model(torch.tensor([[3, 17, 200, 45, 9, 120, 77, 5]])).logits[0].tolist()))
`;

describe.skipIf(missing)('createModel safetensors: true vs transformers', () => {
  for (const modelType of ['llama', 'qwen2'] as const) {
    it(`${modelType}: from_pretrained loads model.safetensors and gives the graph's logits`, {
      timeout: 120_000,
    }, async () => {
      const created = await createModel({
        preset: 'tiny',
        modelType,
        seed: 3,
        safetensors: true,
        out: mkdtempSync(join(tmpdir(), `modelkit-st-${modelType}-`)),
      });
      const loaded = spawnSync(PYTHON, ['-c', LOAD, created.dir], { encoding: 'utf8' });
      expect(loaded.status, loaded.stderr).toBe(0);
      const expected = JSON.parse(loaded.stdout) as number[][];
      await expectPrefillLogits(created.dir, created.config, expected);
    });
  }
});
