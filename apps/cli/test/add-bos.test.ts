import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel, type Model } from '@implicit-it/runtime';
import {
  describeShared,
  OLMO_EOS,
  OLMO_TULU_TIRAMISU,
  sharedPath,
  TIRAMISU,
  tinyOlmoModelOptions,
} from '@implicit-it/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startServe, stop } from './helpers.js';

describeShared(
  '--add-bos on a tokenizer without a BOS (OLMo): its EOS first, as the paper',
  ['fixtures/tokenizers/olmo/tokenizer.json'],
  () => {
    const olmoTokenizer = sharedPath('fixtures', 'tokenizers', 'olmo');
    let dir: string;
    let model: Model;
    let root: string;
    beforeAll(async () => {
      dir = (await createTinyModel(tinyOlmoModelOptions())).dir;
      model = await loadModel(dir, { log: () => {} });
      root = mkdtempSync(join(tmpdir(), 'cli-add-bos-'));
    });
    afterAll(async () => {
      await model?.dispose();
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it("generate: the prompt has the EOS in front (22 tokens, not 21), and the answer is that prompt's", async () => {
      const args = ['generate', '--model', dir, '--rules', 'off', '--max-tokens', '5', '--json'];
      const [plain, withBos] = await Promise.all([
        run([...args, TIRAMISU]),
        run([...args, '--add-bos', TIRAMISU]),
      ]);
      expect(plain.code, plain.stderr).toBe(0);
      expect(withBos.code, withBos.stderr).toBe(0);
      const a = JSON.parse(plain.stdout);
      const b = JSON.parse(withBos.stdout);
      expect(a.usage.promptTokens).toBe(21);
      expect(b.usage).toEqual({ promptTokens: 22, completionTokens: 5, totalTokens: 27 });
      const [direct] = await model.generate(TIRAMISU, { maxNewTokens: 5, rules: false, addBos: true });
      expect(direct!.prompt.ids).toEqual([OLMO_EOS, ...OLMO_TULU_TIRAMISU]);
      expect(b.tokenIds).toEqual(direct!.tokenIds);
      expect(b.tokenIds).not.toEqual(a.tokenIds);
    });

    it('generate --format raw --add-bos is a usage error, before any model loads', async () => {
      const r = await run(['generate', '--model', dir, '--format', 'raw', '--add-bos', 'Hi']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        '--add-bos: a --format raw prompt is the text as written, special tokens included',
      );
      expect(r.stderr).toContain('write the BOS in the text, or use --format tulu or chat-template');
    });

    it('chat: the reply is that of the conversation with the EOS in front', async () => {
      const args = ['chat', '--model', dir, '--rules', 'off', '--max-tokens', '3'];
      const r = await run([...args, '--add-bos'], { input: 'Hi\n/history\n' });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('format: tulu (--add-bos)\n');
      const [direct] = await model.generate(
        { messages: [{ role: 'user', content: 'Hi' }] },
        {
          maxNewTokens: 3,
          rules: false,
          addBos: true,
        },
      );
      expect(direct!.prompt.ids[0]).toBe(OLMO_EOS);
      const [plain] = await model.generate(
        { messages: [{ role: 'user', content: 'Hi' }] },
        {
          maxNewTokens: 3,
          rules: false,
        },
      );
      expect(plain!.text).not.toBe(direct!.text);
      // /history lists the reply as the model wrote it
      expect(r.stdout).toContain(`assistant: ${direct!.text}\n`);
    });

    it('rules trace --add-bos: prompt ids, S and P with the EOS in front; not with --prompt-ids', async () => {
      const trace = async (...extra: string[]) => {
        const r = await run([
          'rules',
          'trace',
          '--tokenizer',
          olmoTokenizer,
          '--instruction',
          TIRAMISU,
          '--response-ids',
          '19735',
          ...extra,
        ]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout);
      };
      const plain = await trace();
      const withBos = await trace('--add-bos');
      expect([plain.promptIds, plain.scopeStart, plain.promptLength]).toEqual([OLMO_TULU_TIRAMISU, 5, 21]);
      expect([withBos.promptIds, withBos.scopeStart, withBos.promptLength]).toEqual([
        [OLMO_EOS, ...OLMO_TULU_TIRAMISU],
        6,
        22,
      ]);
      const ids = await run([
        'rules',
        'trace',
        '--tokenizer',
        olmoTokenizer,
        '--prompt-ids',
        '29,93',
        '--scope-start',
        '0',
        '--response-ids',
        '5',
        '--add-bos',
      ]);
      expect(ids.code).toBe(2);
      expect(ids.stderr).toContain(
        '--add-bos is for --instruction: --prompt-ids are taken as they are (put the BOS id first yourself)',
      );
    });

    it('eval generate: --add-bos reaches the prompts and is part of the run record', async () => {
      const instructions = join(root, 'instructions.jsonl');
      writeFileSync(instructions, `${JSON.stringify({ instruction: TIRAMISU, dataset: 'test' })}\n`);
      const out = join(root, 'outputs.json');
      const args = ['eval', 'generate', '--model', dir, '--instructions', instructions, '--rules', 'off'];
      const more = ['--max-tokens', '5', '--token-ids', '--out', out, '--json'];
      const r = await run([...args, '--add-bos', ...more]);
      expect(r.code, r.stderr).toBe(0);
      const [direct] = await model.generate(TIRAMISU, { maxNewTokens: 5, rules: false, addBos: true });
      expect(JSON.parse(readFileSync(out, 'utf8'))[0].token_ids).toEqual(direct!.tokenIds);
      const record = JSON.parse(readFileSync(`${out}.done`, 'utf8'));
      expect(record.fingerprint).toMatchObject({ rules: {}, format: 'tulu', addBos: true });
      // the same command finds its run; without --add-bos it is another run's file
      const again = await run([...args, '--add-bos', ...more]);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ generated: 0, resumed: 1 });
      const other = await run([...args, ...more]);
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(
        `error: --out: ${out} holds the finished outputs of another run (different --add-bos / --no-add-bos); they are not replaced`,
      );
      const raw = await run([...args, '--format', 'raw', '--add-bos', ...more]);
      expect(raw.code).toBe(2);
      expect(raw.stderr).toContain('--add-bos: a --format raw prompt is the text as written');
    });

    it('serve --add-bos: chat requests that set no add_bos get the EOS in front', async () => {
      const { child, url, exited } = startServe(['--model', `olmo=${dir}`, '--add-bos']);
      try {
        const ask = async (extra: Record<string, unknown> = {}) => {
          const res = await fetch(`${await url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
              model: 'olmo',
              messages: [{ role: 'user', content: TIRAMISU }],
              max_tokens: 2,
              ...extra,
            }),
          });
          expect(res.status).toBe(200);
          return ((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
        };
        expect(await ask()).toBe(22);
        expect(await ask({ add_bos: false })).toBe(21);
      } finally {
        await stop(child, exited);
      }
    });
  },
);

describe('--add-bos / --no-add-bos: the BOS first or not, whatever the tulu format would do', () => {
  let dir: string;
  let model: Model;
  beforeAll(async () => {
    dir = (await createTinyModel({ seed: 1 })).dir;
    model = await loadModel(dir, { log: () => {} });
  });
  afterAll(() => model?.dispose());

  it("generate: the prompt gains or keeps out the BOS, and the answer is that prompt's", async () => {
    // the tiny tokenizer names a BOS (id 1) but does not add it: tulu leaves it out by default
    expect(model.tokenizer.addsBos).toBe(false);
    const args = ['generate', '--model', dir, '--rules', 'off', '--max-tokens', '5', '--json'];
    const [plain, withBos, without] = await Promise.all([
      run([...args, TIRAMISU]),
      run([...args, '--add-bos', TIRAMISU]),
      run([...args, '--no-add-bos', TIRAMISU]),
    ]);
    for (const r of [plain, withBos, without]) expect(r.code, r.stderr).toBe(0);
    const [a, b, c] = [plain, withBos, without].map((r) => JSON.parse(r.stdout));
    const [direct] = await model.generate(TIRAMISU, { maxNewTokens: 5, rules: false, addBos: true });
    expect(direct!.prompt.ids[0]).toBe(model.tokenizer.bosId);
    expect(b.usage.promptTokens).toBe(a.usage.promptTokens + 1);
    expect(c.usage.promptTokens).toBe(a.usage.promptTokens);
    expect(b.usage.promptTokens).toBe(direct!.prompt.ids.length);
    expect(b.tokenIds).toEqual(direct!.tokenIds);
  });

  it('is refused where the prompt is taken as written: --format raw, rules trace --prompt-ids', async () => {
    const raw = await run(['generate', '--model', dir, '--format', 'raw', '--no-add-bos', 'Hi']);
    expect(raw.code).toBe(2);
    expect(raw.stderr).toContain('--no-add-bos: a --format raw prompt is the text as written');
    const trace = await run([
      'rules',
      'trace',
      '--tokenizer',
      dir,
      '--prompt-ids',
      '1,2,3',
      '--scope-start',
      '0',
      '--response',
      'Hi',
      '--no-add-bos',
    ]);
    expect(trace.code).toBe(2);
    expect(trace.stderr).toContain('--no-add-bos is for --instruction: --prompt-ids are taken as they are');
  });
});
