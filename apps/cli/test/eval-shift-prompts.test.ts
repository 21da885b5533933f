import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run, tinyModelDir } from './helpers.js';

// eval shift compares an aligned model with a base model on the same responses: both must see the
// same prompt. Under --format chat-template each model renders its own template, so two models given
// the same flags can build two prompts; here a copy of the tiny model with another chat template.
const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-cli-shift-prompts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let base: string;
let chat: string;
const instructions = join(tmp, 'instructions.jsonl');

beforeAll(async () => {
  base = await tinyModelDir();
  chat = join(tmp, 'chat-model');
  cpSync(base, chat, { recursive: true });
  const configFile = join(chat, 'tokenizer_config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  config.chat_template =
    "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}### assistant:\n{% endif %}";
  writeFileSync(configFile, JSON.stringify(config));
  writeFileSync(instructions, `${JSON.stringify({ instruction: 'Name a color.' })}\n`);
});

it('an aligned model directory whose chat template builds another prompt than --base is refused, showing both', async () => {
  const args = ['eval', 'shift', '--base', base, '--aligned', chat, '--instructions', instructions];
  const out = join(tmp, 'shift.json');
  const r = await run([...args, '--format', 'chat-template', '--max-tokens', '2', '--out', out]);
  expect([r.code, r.stderr]).toEqual([
    2,
    `error: --aligned ${basename(chat)} and --base ${basename(base)} build different prompts under --format chat-template ` +
      '(each from its own tokenizer_config.json and chat_template.jinja): for instruction #0 (# counting from 0) ' +
      `--aligned's is "### user:\\n{instruction}\\n### assistant:\\n", --base's "<|user|>\\n{instruction}\\n<|assistant|>\\n"; ` +
      "the base model would rank the aligned model's tokens after a prompt they were not generated after, and the shift would mix two prompt formats\n" +
      "hint: give --format tulu (the paper's format: the same prompt for both), or models with the same chat template\n",
  ]);
  // nothing was generated
  expect(r.stdout).toBe('');
  // the paper's format is the same prompt for both: the shift runs
  const tulu = await run([...args, '--max-tokens', '2', '--out', out, '--json']);
  expect(tulu.code, tulu.stderr).toBe(0);
  expect(JSON.parse(tulu.stdout).outputs).toBe(1);
});

/** `eval generate` of 2 tokens an instruction, without rules, under the model's own chat template. */
const generateChatTemplate = (model: string, out: string) =>
  run([
    'eval',
    'generate',
    '--model',
    model,
    '--rules',
    'off',
    '--format',
    'chat-template',
    '--instructions',
    instructions,
    '--max-tokens',
    '2',
    '--token-ids',
    '--out',
    out,
  ]);

it('aligned outputs generated under another chat template than --base has are warned about', async () => {
  const outputs = join(tmp, 'chat-outputs.json');
  const g = await generateChatTemplate(chat, outputs);
  expect(g.code, g.stderr).toBe(0);
  const r = await run(['eval', 'shift', '--base', base, '--aligned', outputs, '--json']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toContain(
    `warning: --aligned ${outputs}: its outputs were generated under --format chat-template by a model whose tokenizer_config.json differs from --base's (its run record, ${outputs}.done): ` +
      'each model renders its own chat template, so --base may rank the tokens after another prompt than the one they followed, and the shift mix two prompt formats; ' +
      "give --aligned the model directory instead (its prompts are then compared with --base's), or outputs generated with --format tulu\n",
  );
  // outputs of a model with --base's own template: no warning
  const same = join(tmp, 'base-outputs.json');
  const h = await generateChatTemplate(base, same);
  expect(h.code, h.stderr).toBe(0);
  const quiet = await run(['eval', 'shift', '--base', base, '--aligned', same, '--json']);
  expect(quiet.code, quiet.stderr).toBe(0);
  expect(quiet.stderr).not.toContain('warning');
});
