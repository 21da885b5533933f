import { createInterface } from 'node:readline';
import { ImplicitItError, type RuleSpec } from '@implicit-it/rules';
import { type ChatMessage, CONVERSATION_FORMATS, type ConversationFormat } from '@implicit-it/tokenizers';
import type { Command } from 'commander';
import {
  addBosFlag,
  CHAT_PREFIX_CACHE_MIB,
  type ModelFlags,
  openModel,
  parseRules,
  rulesLabel,
} from '../flags.js';
import { forTerminal, painter } from '../output.js';
import { checkAndNoteRules } from '../rule-notes.js';
import {
  addGenerationOptions,
  checkChatTemplate,
  DEFAULT_MODEL_HELP,
  generationOptions,
  samplingSeed,
  shiftStyle,
} from './generate.js';

interface ChatFlags extends ModelFlags {
  rules?: string;
  format: ConversationFormat;
  addBos?: boolean;
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
  system?: string;
  trace?: boolean;
}

const seedOf = (seed: number | undefined) => (seed !== undefined ? { seed } : {});

const HELP = `commands: /rules <spec> (e.g. off, hewitt2024, eos-uniform),
          /rules (the rules in use), /reset (forget the conversation),
          /history, /help, /exit (or Ctrl-D).
          Ctrl-C stops a reply; Ctrl-C at an empty prompt quits.`;

async function run(flags: ChatFlags): Promise<void> {
  let rules: RuleSpec = parseRules(flags.rules);
  const opened = await openModel(flags);
  await checkChatTemplate(opened, flags.format);
  const { model } = opened;
  try {
    checkAndNoteRules(rules, model.tokenizer.vocabulary, `--rules ${rulesLabel(rules)}`);
  } catch (error) {
    await model.dispose();
    throw error;
  }
  const out = painter(process.stdout);
  const system: ChatMessage[] = flags.system ? [{ role: 'system', content: flags.system }] : [];
  let messages: ChatMessage[] = [...system];

  process.stdout.write(
    `${out('bold', 'implicit-it chat')} with ${opened.id}, rules: ${rulesLabel(rules)}, format: ${flags.format}${flags.addBos === undefined ? '' : ` (${addBosFlag(flags.addBos)})`}\n${out('dim', HELP)}\n`,
  );
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: process.stdin.isTTY === true,
    historySize: 200,
  });
  let generating: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (generating) generating.abort(new Error('interrupted'));
    else if (rl.line.length > 0) {
      rl.write(null, { ctrl: true, name: 'u' });
      rl.prompt();
    } else rl.close();
  });
  const prompt = () => {
    rl.setPrompt(out('green', 'you> '));
    rl.prompt();
  };

  const contextFull = (usage: { promptTokens: number; completionTokens: number } | null) =>
    usage !== null &&
    model.info.maxPositions !== undefined &&
    usage.promptTokens + usage.completionTokens >= model.info.maxPositions;

  const reply = async (): Promise<void> => {
    generating = new AbortController();
    process.stdout.write(out('cyan', 'assistant> '));
    let text = '';
    let rank: number | undefined;
    let finish = '';
    let usage: { promptTokens: number; completionTokens: number; cachedTokens?: number } | null = null;
    const seed = samplingSeed(flags);
    try {
      for await (const part of model.stream(
        { messages },
        {
          ...generationOptions({ ...flags, ...seedOf(seed) }, rules),
          trace: flags.trace === true,
          signal: generating.signal,
        },
      )) {
        if (part.type === 'token') rank = part.baseRank;
        else if (part.type === 'text-delta') {
          const style = flags.trace ? shiftStyle(rank) : null;
          const shown = forTerminal(part.text);
          process.stdout.write(style ? out(style, shown) : shown);
        } else if (part.type === 'finish') {
          text = part.text;
          finish = part.finishReason;
          usage = part.usage;
        }
      }
      messages.push({ role: 'assistant', content: text });
      // a sampled reply names its seed (`--seed N` gives that reply again)
      const notes = [
        // cut by the end of the context rather than by --max-tokens: the next turn cannot fit either
        ...(finish === 'length'
          ? [contextFull(usage) ? 'the context is full: /reset starts a new conversation' : 'max tokens']
          : []),
        ...(seed !== undefined ? [`seed ${seed}`] : []),
        // with --prefix-cache: how much of the conversation so far was not prefilled again
        ...(flags.verbose && usage?.cachedTokens !== undefined
          ? [`${usage.cachedTokens} of ${usage.promptTokens} prompt tokens reused`]
          : []),
      ];
      process.stdout.write(notes.length > 0 ? out('dim', ` [${notes.join('; ')}]\n`) : '\n');
    } catch (error) {
      if (generating.signal.aborted) {
        // the turn is taken back whole: its message is not answered in the conversation
        process.stdout.write(out('dim', ' [stopped: this turn is left out of the conversation]\n'));
        messages.pop();
      } else throw error;
    } finally {
      generating = null;
    }
  };

  const handle = async (line: string): Promise<boolean> => {
    const input = line.trim();
    if (!input) return true;
    if (input.startsWith('/')) {
      const [command, ...rest] = input.split(/\s+/);
      switch (command) {
        case '/exit':
        case '/quit':
          return false;
        case '/reset':
          messages = [...system];
          process.stdout.write(out('dim', 'conversation cleared\n'));
          return true;
        case '/rules':
          // alone, it says which rules are in use: it once set hewitt2024, which lost a custom rule set
          // typed to see what was in use
          if (rest.join('') === '') {
            const shown = typeof rules === 'object' ? JSON.stringify(rules) : rulesLabel(rules);
            process.stdout.write(out('dim', `rules in use: ${shown} (/rules SPEC changes them)\n`));
            return true;
          }
          try {
            const next = parseRules(rest.join(' '), 'hewitt2024', '/rules');
            // refused (a rule matching no token), the rules stay as they were
            checkAndNoteRules(next, model.tokenizer.vocabulary, `/rules ${rulesLabel(next)}`);
            rules = next;
            process.stdout.write(out('dim', `rules: ${rulesLabel(rules)}\n`));
          } catch (error) {
            process.stdout.write(out('red', `${(error as Error).message}\n`));
          }
          return true;
        case '/history':
          if (messages.length === 0) process.stdout.write(out('dim', '(no messages yet)\n'));
          for (const m of messages) process.stdout.write(`${out('dim', `${m.role}:`)} ${m.content}\n`);
          return true;
        case '/help':
          process.stdout.write(`${HELP}\n`);
          return true;
        default:
          process.stdout.write(out('red', `unknown command ${command}; /help lists them\n`));
          return true;
      }
    }
    messages.push({ role: 'user', content: input });
    try {
      await reply();
    } catch (error) {
      messages.pop();
      process.stdout.write(out('red', `error: ${(error as Error).message}\n`));
      // every later turn re-sends the conversation, so each would fail the same way until /reset
      if (ImplicitItError.isInstance(error) && error.code === 'runtime.prompt_too_long') {
        const hint =
          messages.length > system.length
            ? 'the conversation no longer fits the context: /reset starts a new one'
            : 'the message does not fit the context: shorten it';
        process.stdout.write(out('dim', `${hint}\n`));
      }
    }
    return true;
  };

  try {
    prompt();
    // readline keeps reading while a reply streams (no rl.pause()): in a terminal Ctrl-C is a key it
    // reads, so a paused readline would only see it after the reply, as a Ctrl-C at an empty prompt.
    // Lines that arrive meanwhile (piped stdin comes all at once) wait in the iterator's queue, which
    // yields every one of them before it ends at EOF (Ctrl-D or the end of the pipe)
    for await (const line of rl) {
      if (!(await handle(line))) break;
      prompt();
    }
  } finally {
    rl.close();
    await model.dispose();
  }
  process.stdout.write('\n');
}

export function registerChat(program: Command): void {
  const cmd = program
    .command('chat')
    .description('an interactive multi-turn chat, streamed (base model + rules)')
    .option('-s, --system <text>', 'a system message opening the conversation')
    .option('--trace', "colour each token by the base model's rank of it (1 plain, 2-3 yellow, lower red)");
  addGenerationOptions(
    cmd,
    CHAT_PREFIX_CACHE_MIB,
    CONVERSATION_FORMATS,
    'a new one for each sampled reply, shown after it',
  )
    .addHelpText(
      'after',
      `
In the chat: ${HELP}

Examples:
  $ implicit-it chat
  $ implicit-it chat --model ./models/smol --rules eos-uniform-diversity \\
      --max-tokens 200
  $ implicit-it chat --rules off --system "You are a helpful assistant." --trace
${DEFAULT_MODEL_HELP}`,
    )
    .action(async (flags: ChatFlags) => run(flags));
}
