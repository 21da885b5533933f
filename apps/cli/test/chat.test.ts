import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { loadModel } from '@implicit-it/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { CACHE, CLI, run, tinyModelDir } from './helpers.js';

/**
 * `chat` in a real terminal: tmux gives it a pseudo-terminal, send-keys types, capture-pane reads the
 * screen. Skipped with a message when tmux is absent (apt-get install -y tmux).
 */
const TMUX = ['/usr/bin/tmux', '/usr/local/bin/tmux'].find((p) => existsSync(p));
if (!TMUX) console.warn('[skip] chat pseudo-terminal test: tmux is missing (apt-get install -y tmux)');

const session = `implicit-it-chat-${process.pid}`;
const tmux = (...args: string[]) => execFileSync(TMUX!, args, { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', session);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pattern: RegExp, ms = 20_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const text = screen();
    if (pattern.test(text)) return text;
    if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}; screen:\n${text}`);
    await sleep(100);
  }
}

describe('chat with piped stdin', () => {
  it('answers every piped line in order, slash commands included, then exits 0 at EOF', async () => {
    const model = await tinyModelDir();
    const input = '/history\nHi\n/history\n/rules off\nHello again\n/history\n';
    const r = await run(['chat', '--model', model, '--max-tokens', '3', '--rules', 'eos'], { input });
    expect(r.code, r.stderr).toBe(0);
    // two replies: the lines that came while the first one was generating were not lost
    expect(r.stdout.match(/assistant> /g)).toHaveLength(2);
    expect(r.stdout).toContain('rules: off\n');
    // before the first turn, /history says there is nothing rather than printing nothing
    expect(r.stdout).toContain('you> (no messages yet)\nyou> ');
    // the first /history lists the first turn; the second /history both turns, after the second reply
    const histories = r.stdout.split('you> ').filter((s) => s.startsWith('user: '));
    expect(histories).toHaveLength(2);
    expect(histories[0]!.match(/^user: /gm)).toHaveLength(1);
    expect(histories[1]!.match(/^user: /gm)).toEqual(['user: ', 'user: ']);
    expect(histories[1]).toContain('user: Hello again\n');
  });

  it('/rules alone says which rules are in use and keeps them (a JSON spec shown whole)', async () => {
    const model = await tinyModelDir();
    const input = '/rules\n/rules {"used":{"penalty":-3}}\n/rules\n/rules off\n/rules\n';
    const r = await run(['chat', '--model', model, '--max-tokens', '2', '--rules', 'eos'], { input });
    expect(r.code, r.stderr).toBe(0);
    const said = r.stdout.split('you> ').slice(1, -1);
    expect(said).toEqual([
      'rules in use: eos (/rules SPEC changes them)\n',
      'rules: custom JSON\n',
      'rules in use: {"used":{"penalty":-3}} (/rules SPEC changes them)\n',
      'rules: off\n',
      'rules in use: off (/rules SPEC changes them)\n',
    ]);
  });

  it('names /rules in its errors, and says what to do when a turn does not fit the context', async () => {
    const model = await tinyModelDir();
    const words = (n: number) => 'word '.repeat(n).trim();
    // the tiny model's context is 512 positions: 600 words never fit, 150 fit once but not twice
    const input = `/rules bogus\n${words(600)}\n${words(150)}\n${words(150)}\n/reset\nHi\n`;
    const r = await run(['chat', '--model', model, '--max-tokens', '2', '--rules', 'off'], { input });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('/rules: unknown rule set "bogus"');
    expect(r.stdout).not.toContain('--rules:');
    const errors = r.stdout.split('\n').filter((line) => line.includes('error:'));
    expect(errors).toHaveLength(2);
    expect(r.stdout).toContain('the message does not fit the context: shorten it\n');
    expect(r.stdout).toContain('the conversation no longer fits the context: /reset starts a new one\n');
    // the 150-word turn and "Hi" after /reset are answered
    expect(r.stdout.match(/\[max tokens\]/g)).toHaveLength(2);
  });

  it('a reply cut by the end of the context says so, not "max tokens"', async () => {
    const model = await tinyModelDir();
    // 'word ' is 3 tokens: a prompt of about 500 of the tiny model's 512 positions, whose reply runs
    // into the end before 50 tokens
    const input = `${'word '.repeat(163).trim()}\n`;
    const r = await run(['chat', '--model', model, '--max-tokens', '50', '--rules', 'off'], { input });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('[the context is full: /reset starts a new conversation]');
    expect(r.stdout).not.toContain('[max tokens]');
  });

  it('offers only chat formats: --format raw is refused by the flag itself (exit 2), and --help does not list it', async () => {
    const r = await run(['chat', '--model', await tinyModelDir(), '--format', 'raw'], { input: 'Hi\n' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "error: option '-f, --format <format>' argument 'raw' is invalid. Allowed choices are tulu, chat-template.",
    );
    const help = await run(['chat', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      'prompt format (choices: "tulu", "chat-template", default: "tulu")',
    );
  });

  it('names the seed of each sampled reply', async () => {
    const model = await tinyModelDir();
    const r = await run(['chat', '--model', model, '-n', '2', '-t', '1', '--seed', '7'], { input: 'Hi\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/assistant> .*\[max tokens; seed 7\]\n/);
    // --help says so (it said generate's "a new one each run, shown after the output")
    const help = (await run(['chat', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain(
      '--seed <n> seed of the sampler (default: a new one for each sampled reply, shown after it)',
    );
  });

  it('keeps a prefix cache by default: the next turn goes on from the last reply (-v says how much)', async () => {
    const model = await tinyModelDir();
    const long =
      'Tell me about tiramisu, the coffee dessert made of ladyfingers, mascarpone, eggs, sugar and cocoa, and where in Italy it comes from.';
    const input = `${long}\nAnd the recipe?\n`;
    const args = ['chat', '--model', model, '-n', '4', '-v'];
    const r = await run(args, { input });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('[implicit-it] prefix cache of 256 MiB');
    const notes = [...r.stdout.matchAll(/\[max tokens; (\d+) of (\d+) prompt tokens reused\]/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    // the first turn has nothing to reuse; the second reuses the first turn's prompt and its reply
    // but for the reply's last token (sampled, never fed), as far as the reply's text tokenizes
    // again to the same ids in the second prompt
    expect(notes).toHaveLength(2);
    expect(notes[0]![0]).toBe(0);
    const m = await loadModel(model, { log: () => {} });
    try {
      const messages = [{ role: 'user' as const, content: long }];
      const [reply] = await m.generate({ messages }, { maxNewTokens: 4, rules: 'hewitt2024' });
      const held = [...reply!.prompt.ids, ...reply!.tokenIds.slice(0, -1)];
      const turn2 = [...messages, { role: 'assistant' as const, content: reply!.text }];
      const asked = m.prompt({ messages: [...turn2, { role: 'user', content: 'And the recipe?' }] }).ids;
      let common = 0;
      while (common < held.length && held[common] === asked[common]) common++;
      expect(notes[0]![1]).toBe(reply!.prompt.ids.length);
      expect(common).toBeGreaterThan(notes[0]![1]);
      expect(notes[1]![0]).toBe(common);
    } finally {
      await m.dispose();
    }
    // the same turns without the cache (--prefix-cache 0): the same replies, and no notes
    const plain = await run([...args, '--prefix-cache', '0'], { input });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).not.toContain('prefix cache');
    expect(plain.stdout).not.toContain('reused');
    const replies = (out: string) => out.match(/assistant> .*/g)!.map((l) => l.replace(/ \[.*\]$/, ''));
    expect(replies(r.stdout)).toEqual(replies(plain.stdout));
  });
});

describe.skipIf(!TMUX)('chat in a pseudo-terminal (tmux)', () => {
  let model: string;
  beforeAll(async () => {
    model = await tinyModelDir();
  });

  it('streams replies turn after turn, takes /commands, quits with /exit (exit 0)', async () => {
    const command = `NO_COLOR=1 HF_HUB_OFFLINE=1 IMPLICIT_IT_CACHE=${CACHE} ${process.execPath} ${CLI} chat --model ${model} -n 12; echo "EXIT CODE $?"; sleep 60`;
    tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '50', command);
    try {
      await waitFor(/you> $/m);
      tmux('send-keys', '-t', session, 'Hello there', 'Enter');
      await waitFor(/assistant> .+\n.*you> $/m);
      tmux('send-keys', '-t', session, '/rules off', 'Enter');
      await waitFor(/rules: off/);
      tmux('send-keys', '-t', session, 'And a second question', 'Enter');
      await waitFor(/And a second question\nassistant> .+\n.*you> $/m);
      tmux('send-keys', '-t', session, '/history', 'Enter');
      const history = await waitFor(/user: And a second question\nassistant: /);
      // two user turns and two assistant turns in the conversation
      expect(history.match(/^user: /gm)).toHaveLength(2);
      expect(history.match(/^assistant: /gm)).toHaveLength(2);
      tmux('send-keys', '-t', session, '/reset', 'Enter');
      await waitFor(/conversation cleared/);
      tmux('send-keys', '-t', session, '/exit', 'Enter');
      const end = await waitFor(/EXIT CODE \d+/);
      expect(end).toMatch(/EXIT CODE 0/);
      expect(end).toContain(`implicit-it chat with ${basename(model)}, rules: hewitt2024, format: tulu`);
    } finally {
      tmux('kill-session', '-t', session);
    }
  });

  it('Ctrl-C during a reply stops it and the chat goes on', async () => {
    // the offline default model (SmolLM2-135M shapes): a 300-token reply lasts seconds
    const command = `NO_COLOR=1 HF_HUB_OFFLINE=1 IMPLICIT_IT_CACHE=${CACHE} ${process.execPath} ${CLI} chat --offline --rules off -n 300; echo "EXIT CODE $?"; sleep 60`;
    tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '50', command);
    try {
      await waitFor(/you> $/m, 120_000);
      tmux('send-keys', '-t', session, 'Tell me a long story', 'Enter');
      await waitFor(/assistant> \s*\S/);
      tmux('send-keys', '-t', session, 'C-c');
      await waitFor(/\[stopped: this turn is left out of the conversation\]\n.*you> $/m);
      tmux('send-keys', '-t', session, '/history', 'Enter');
      await waitFor(/\/history\n\(no messages yet\)\n.*you> $/m); // the stopped turn was taken back
      tmux('send-keys', '-t', session, '/exit', 'Enter');
      const end = await waitFor(/EXIT CODE \d+/);
      expect(end).toMatch(/EXIT CODE 0/);
      expect(end).not.toContain('[max tokens]');
    } finally {
      tmux('kill-session', '-t', session);
    }
  }, 180_000);

  it('Ctrl-C at an empty prompt quits', async () => {
    const command = `NO_COLOR=1 HF_HUB_OFFLINE=1 ${process.execPath} ${CLI} chat --model ${model} -n 4; echo "EXIT CODE $?"; sleep 60`;
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '30', command);
    try {
      await waitFor(/you> $/m);
      tmux('send-keys', '-t', session, 'C-c');
      expect(await waitFor(/EXIT CODE \d+/)).toMatch(/EXIT CODE 0/);
    } finally {
      tmux('kill-session', '-t', session);
    }
  });
});
