// The adapter builds on @huggingface/tokenizers and @huggingface/jinja directly, the two libraries
// transformers.js's PreTrainedTokenizer wraps, so that importing it loads neither onnxruntime nor
// sharp. These tests hold it to transformers.js itself (a dev dependency only).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../src/index.js';
import {
  byteLevelFiles,
  CHATML_TEMPLATE,
  sentencePieceFiles,
  writeTokenizerDir,
} from './helpers/build-tokenizer.js';
import { STREAM_TEXTS } from './helpers/stream.js';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/';

const here = dirname(fileURLToPath(import.meta.url));

/** Every special token a template can name, and the generation prompt. */
const ALL_VARIABLES_TEMPLATE =
  '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}' +
  '|{{ unk_token }}|{{ pad_token }}|{{ sep_token }}|{{ cls_token }}|{{ mask_token }}|' +
  '{% if tools is none and documents is none %}no tools{% endif %}' +
  '{% if add_generation_prompt %}[assistant]{% endif %}';

const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Write a haiku about tea.' },
  { role: 'assistant', content: 'Steam rises, then fades.' },
  { role: 'user', content: 'Another one?' },
];

const built: string[] = [];
afterAll(async () => {
  const { rmSync } = await import('node:fs');
  for (const dir of built) rmSync(dir, { recursive: true, force: true });
});

async function both(dir: string): Promise<[Tokenizer, PreTrainedTokenizer]> {
  return [await loadTokenizer(dir), await AutoTokenizer.from_pretrained(dir)];
}

function expectSameTokenizer(ours: Tokenizer, theirs: PreTrainedTokenizer, texts: readonly string[]) {
  for (const text of texts) {
    for (const special of [true, false]) {
      const ids = ours.encode(text, { addSpecialTokens: special });
      expect(ids, JSON.stringify(text)).toEqual(theirs.encode(text, { add_special_tokens: special }));
      for (const skip of [false, true]) {
        expect(ours.decode(ids, { skipSpecialTokens: skip })).toBe(
          theirs.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }),
        );
      }
    }
  }
}

function expectSameTemplate(
  ours: Tokenizer,
  theirs: PreTrainedTokenizer,
  template: string | undefined,
  sameIds = true,
) {
  for (const addGenerationPrompt of [true, false]) {
    const prompt = ours.buildPrompt({
      format: 'chat-template',
      messages: MESSAGES,
      addGenerationPrompt,
      ...(template === undefined ? {} : { template }),
    });
    const rendered = theirs.apply_chat_template(MESSAGES, {
      tokenize: false,
      add_generation_prompt: addGenerationPrompt,
      ...(template === undefined ? {} : { chat_template: template }),
    }) as string;
    expect(prompt.text).toBe(rendered);
    if (sameIds) expect(prompt.ids).toEqual(theirs.encode(rendered, { add_special_tokens: false }));
  }
}

describe('parity with transformers.js (built tokenizers)', () => {
  it('byte-level BPE and SentencePiece: encode, decode and chat templates render the same', async () => {
    const bl = byteLevelFiles('pair');
    bl.tokenizerConfig!.chat_template = CHATML_TEMPLATE;
    // legacy: true, as transformers.js tokenizes (the adapter's legacy: false is Python's; see fixtures.test.ts)
    const sp = sentencePieceFiles();
    sp.tokenizerConfig!.legacy = true;
    for (const files of [bl, sp]) {
      const dir = writeTokenizerDir(files);
      built.push(dir);
      const [ours, theirs] = await both(dir);
      expectSameTokenizer(ours, theirs, ['Hello world', ' the world', 'the the world world']);
      expectSameTemplate(ours, theirs, ALL_VARIABLES_TEMPLATE);
    }
  });
});

const fixture = (name: string) => sharedPath('fixtures/tokenizers', name);
const fixtureFiles = (...names: string[]) => names.map((n) => `fixtures/tokenizers/${n}/tokenizer.json`);

describeShared('parity with transformers.js (fixtures)', fixtureFiles('gpt2', 'smollm', 'llama2'), () => {
  // llama2 is left out of encode: its tokenizer_config.json says legacy: false, which the adapter
  // follows as Python does and transformers.js does not (fixtures.test.ts checks it against Python)
  it('gpt2 and smollm: encode and decode the stream texts the same', async () => {
    for (const name of ['gpt2', 'smollm']) {
      const [ours, theirs] = await both(fixture(name));
      expectSameTokenizer(ours, theirs, STREAM_TEXTS);
    }
  });

  it("smollm's ChatML and llama2's chat_template.jinja render the same, as does a template naming every special token", async () => {
    for (const name of ['smollm', 'llama2']) {
      const [ours, theirs] = await both(fixture(name));
      // transformers.js reads no chat_template.jinja (llama2's): it is handed over; llama2's ids
      // differ by legacy: false after special tokens (see above)
      const llama = name === 'llama2';
      expectSameTemplate(ours, theirs, llama ? ours.chatTemplate : undefined, !llama);
      expectSameTemplate(ours, theirs, ALL_VARIABLES_TEMPLATE, !llama);
    }
  });
});

describe('import weight', () => {
  const dist = join(here, '..', 'dist', 'index.js');

  it('importing the package and loading a tokenizer load neither transformers.js, onnxruntime nor sharp', () => {
    expect(existsSync(dist), `${dist} is missing: run pnpm build first`).toBe(true);
    const dir = writeTokenizerDir(sentencePieceFiles());
    built.push(dir);
    // a resolve hook records every bare specifier the process resolves
    const hook = `data:text/javascript,${encodeURIComponent(
      'export async function resolve(s, c, next) { if (!/^[./]|^node:|^file:|^data:/.test(s)) process.stderr.write("RESOLVED " + s + "\\n"); return next(s, c); }',
    )}`;
    const script = [
      `import { register } from 'node:module';`,
      `register(${JSON.stringify(hook)});`,
      `const { loadTokenizer } = await import(${JSON.stringify(dist)});`,
      `const tok = await loadTokenizer(${JSON.stringify(dir)});`,
      `tok.encode('Hello world'); tok.buildPrompt({ format: 'tulu', instruction: 'Hi' });`,
    ].join('\n');
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const resolved = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('RESOLVED '))
      .map((l) => l.slice('RESOLVED '.length));
    expect(resolved).toContain('@huggingface/tokenizers');
    for (const heavy of ['@huggingface/transformers', 'onnxruntime-node', 'onnxruntime-common', 'sharp']) {
      expect(
        resolved.some((s) => s.startsWith(heavy)),
        `${heavy} was resolved: ${resolved.join(', ')}`,
      ).toBe(false);
    }
  });
});
