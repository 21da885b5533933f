import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, type Tensor } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { createModel, randomWeights, referenceForward, type resolveConfig } from '../src/index.js';
import { argmax, maxAbsDiff } from './ort-helpers.js';

env.allowRemoteModels = false;
env.useFSCache = false;

async function writeModel(overrides: Parameters<typeof resolveConfig>[0], seed: number) {
  const root = mkdtempSync(join(tmpdir(), 'modelkit-tjs-'));
  const created = await createModel({ ...overrides, seed, out: join(root, 'model') });
  env.localModelPath = dirname(created.dir);
  return {
    name: basename(created.dir),
    config: created.config,
    weights: randomWeights(created.config, seed),
  };
}

describe('@huggingface/transformers loads written directories offline', () => {
  let tiny: Awaited<ReturnType<typeof writeModel>>;
  beforeAll(async () => {
    tiny = await writeModel({ preset: 'tiny' }, 21);
  });

  it('AutoTokenizer: byte-level BPE round-trips text, keeps chat markers as text, applies the Tulu template', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(tiny.name);
    const text = 'Hello world! The model follows instructions: 3.14 café.';
    const ids = tokenizer.encode(text);
    expect(ids.length).toBeLessThan(text.length);
    expect(tokenizer.decode(ids)).toBe(text);
    expect(tokenizer.encode('</s>')).toEqual([2]);
    expect(tokenizer.eos_token_id).toBe(2);
    const user = tokenizer.encode('<|user|>');
    expect(user.length).toBeGreaterThanOrEqual(1);
    expect(user.every((id: number) => id > 2)).toBe(true);
    const prompt = tokenizer.apply_chat_template([{ role: 'user', content: 'Hi there' }], {
      tokenize: false,
      add_generation_prompt: true,
    });
    expect(prompt).toBe('<|user|>\nHi there\n<|assistant|>\n');
  });

  it('AutoModelForCausalLM: logits equal the reference, greedy generate matches a reference greedy loop', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(tiny.name);
    const model = await AutoModelForCausalLM.from_pretrained(tiny.name, { dtype: 'fp32', device: 'cpu' });
    const inputs = tokenizer('<|user|>\nWrite a poem.\n<|assistant|>\n');
    const ids = Array.from(inputs.input_ids.data as BigInt64Array, Number);
    const out = (await model(inputs)) as { logits: Tensor };
    const expected = referenceForward({ config: tiny.config, weights: tiny.weights }, ids);
    const v = tiny.config.vocabSize;
    const data = out.logits.data as Float32Array;
    expected.forEach((row, p) => {
      expect(maxAbsDiff(data.subarray(p * v, (p + 1) * v), row)).toBeLessThan(1e-4);
    });

    const generated = (await model.generate({ ...inputs, max_new_tokens: 6, do_sample: false })) as Tensor;
    const gen = Array.from(generated.data as BigInt64Array, Number).slice(ids.length);
    const seq = [...ids];
    const want: number[] = [];
    for (let i = 0; i < gen.length; i++) {
      const next = argmax(referenceForward({ config: tiny.config, weights: tiny.weights }, seq).at(-1)!);
      want.push(next);
      seq.push(next);
      if (next === tiny.config.eosTokenId) break;
    }
    expect(gen).toEqual(want);
    await model.dispose();
  });

  it('loads a qwen2 (model_type "qwen2", q/k/v biases) directory and its logits match', async () => {
    const qwen = await writeModel(
      { preset: 'tiny', modelType: 'qwen2', attentionBias: true, numKeyValueHeads: 1 },
      4,
    );
    const model = await AutoModelForCausalLM.from_pretrained(qwen.name, { dtype: 'fp32', device: 'cpu' });
    const ids = [10, 20, 30, 40];
    const { Tensor: T } = await import('@huggingface/transformers');
    const out = (await model({
      input_ids: new T('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      attention_mask: new T('int64', BigInt64Array.from(ids.map(() => 1n)), [1, ids.length]),
    })) as { logits: Tensor };
    const expected = referenceForward({ config: qwen.config, weights: qwen.weights }, ids);
    const v = qwen.config.vocabSize;
    const data = out.logits.data as Float32Array;
    expect(maxAbsDiff(data.subarray(3 * v, 4 * v), expected[3]!)).toBeLessThan(1e-4);
    await model.dispose();
  });
});
