import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { afterAll, expect, it } from 'vitest';
import { createTokenizer, loadTokenizer, readTokenizerFiles, TokenizerLoadError } from '../src/index.js';

const GPT2 = sharedPath('fixtures/tokenizers', 'gpt2');
const SMOLLM = sharedPath('fixtures/tokenizers', 'smollm');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
/** A copy of a fixture directory's tokenizer.json in a fresh directory, plus `extra` files. */
function copyOf(fixture: string, extra: Record<string, string | Buffer> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'implicit-it-tok-'));
  dirs.push(dir);
  copyFileSync(join(fixture, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text);
  return dir;
}

async function loadError(dir: string): Promise<TokenizerLoadError> {
  try {
    await loadTokenizer(dir);
  } catch (error) {
    expect(error).toBeInstanceOf(TokenizerLoadError);
    return error as TokenizerLoadError;
  }
  throw new Error(`loading ${dir} did not fail`);
}

const LFS_POINTER =
  'version https://git-lfs.github.com/spec/v1\noid sha256:8eaf4d5d1f8dc5a0f1a5c7e2cbdb1c22c7b1a7e6d2f7f2a1c4b7d1e8f3a9c0b2\nsize 2107653\n';

describeShared(
  'loading errors name the file and what to do (fixtures)',
  ['fixtures/tokenizers/gpt2/tokenizer.json', 'fixtures/tokenizers/smollm/tokenizer.json'],
  () => {
    it('a Git LFS pointer instead of the file says so and names git lfs pull', async () => {
      const dir = copyOf(GPT2);
      writeFileSync(join(dir, 'tokenizer.json'), LFS_POINTER);
      const e = await loadError(dir);
      expect(e.code).toBe('tokenizers.missing_file');
      expect(e.file).toBe(join(dir, 'tokenizer.json'));
      expect(e.message).toBe(
        `${join(dir, 'tokenizer.json')}: is a Git LFS pointer (to a file of 2107653 bytes), not the file itself; ` +
          'fetch it (git lfs pull in the clone, or download it from the model repository)',
      );
      const config = copyOf(GPT2, { 'tokenizer_config.json': LFS_POINTER });
      expect((await loadError(config)).file).toBe(join(config, 'tokenizer_config.json'));
    });

    it('a JSON file starting with a UTF-8 byte order mark says so', async () => {
      const dir = copyOf(GPT2, { 'tokenizer_config.json': '\ufeff{"model_max_length": 1024}' });
      const e = await loadError(dir);
      expect(e.code).toBe('tokenizers.malformed_file');
      expect(e.message).toBe(
        `${join(dir, 'tokenizer_config.json')}: starts with a UTF-8 byte order mark, which JSON readers ` +
          "(Python's json, Rust's serde_json) refuse; save it as UTF-8 without BOM",
      );
    });

    it('a BPE model without merges names model.merges', async () => {
      const files = await readTokenizerFiles(SMOLLM);
      const model = { ...(files.tokenizerJson.model as Record<string, unknown>) };
      delete model.merges;
      let error: unknown;
      try {
        createTokenizer({ ...files, tokenizerJson: { ...files.tokenizerJson, model } });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TokenizerLoadError);
      expect((error as TokenizerLoadError).code).toBe('tokenizers.malformed_file');
      expect((error as TokenizerLoadError).field).toBe('model.merges');
      expect((error as TokenizerLoadError).message).toMatch(
        /tokenizer\.json \(field model\.merges\): a BPE model needs its merges \(a list of "a b" or \["a", "b"\]\), found none$/,
      );
    });
  },
);
