import { existsSync } from 'node:fs';
import { compileRules, type RuleSpec } from '@implicit-it/rules';
import { CONVERSATION_FORMATS, type ConversationFormat, loadTokenizer } from '@implicit-it/tokenizers';
import { type Command, Option } from 'commander';
import {
  ADD_BOS_HELP,
  addBosFlag,
  formerFlag,
  idsArg,
  intArg,
  NO_ADD_BOS_HELP,
  parseRules,
  promptSettings,
  renamedFlag,
} from '../flags.js';
import { CliError, EXIT, note, usage } from '../output.js';
import { noChatTemplate } from './generate.js';

interface TraceFlags {
  tokenizer: string;
  /** --rules' former name */
  preset?: string;
  rules?: string;
  instruction?: string;
  format: ConversationFormat;
  addBos?: boolean;
  promptIds?: number[];
  scopeStart?: number;
  response?: string;
  responseIds?: number[];
}

/** The trace: the sparse rule scores applied when predicting each response token. */
export interface RulesTrace {
  promptIds: number[];
  scopeStart: number;
  promptLength: number;
  steps: { t: number; scores: Record<string, number> }[];
}

async function run(flags: TraceFlags): Promise<void> {
  const rulesFlag = flags.rules === undefined && flags.preset !== undefined ? '--preset' : '--rules';
  const spec: RuleSpec = parseRules(
    renamedFlag(flags.rules, flags.preset, '--rules', '--preset'),
    'hewitt2024',
    rulesFlag,
  );
  if ((flags.instruction === undefined) === (flags.promptIds === undefined)) {
    throw usage(
      'give the prompt as --instruction TEXT or as --prompt-ids 1,2,3 --scope-start N (one of them)',
    );
  }
  if (flags.promptIds !== undefined && flags.addBos !== undefined) {
    throw usage(
      `${addBosFlag(flags.addBos)} is for --instruction: --prompt-ids are taken as they are (put the BOS id first yourself)`,
    );
  }
  if (flags.promptIds !== undefined && flags.scopeStart === undefined) {
    throw usage('--prompt-ids needs --scope-start N: the index of the first token of the last user message');
  }
  if ((flags.response === undefined) === (flags.responseIds === undefined)) {
    throw usage('give the response as --response TEXT or as --response-ids 4,5,6 (one of them)');
  }
  if (!existsSync(flags.tokenizer)) {
    throw new CliError(`--tokenizer: ${flags.tokenizer} does not exist`, EXIT.load);
  }
  const tok = await loadTokenizer(flags.tokenizer);
  if (flags.instruction !== undefined && flags.format === 'chat-template' && tok.chatTemplate === undefined)
    throw noChatTemplate(flags.tokenizer, 'a tokenizer that has a chat template');
  const rules = compileRules(spec, tok.vocabulary);

  let promptIds: number[];
  let scopeStart: number;
  if (flags.instruction !== undefined) {
    const prompt = tok.buildPrompt({ ...promptSettings(flags), instruction: flags.instruction });
    promptIds = prompt.ids;
    scopeStart = prompt.scopeStart;
  } else {
    promptIds = flags.promptIds!;
    scopeStart = flags.scopeStart!;
    if (scopeStart > promptIds.length) {
      throw usage(`--scope-start ${scopeStart} is past the end of the prompt (${promptIds.length} ids)`);
    }
  }
  const response =
    flags.responseIds ??
    (flags.response === '' ? [] : tok.encode(flags.response!, { addSpecialTokens: false }));
  const size = tok.vocabulary.size;
  for (const [name, ids] of [
    ['--prompt-ids', promptIds],
    ['--response-ids', response],
  ] as const) {
    const bad = ids.find((id) => id >= size);
    if (bad !== undefined) throw usage(`${name}: id ${bad} is outside the vocabulary [0, ${size})`);
  }
  // once the inputs are taken: a refused one is named alone, not after a note per unresolved entry
  for (const u of rules.unresolved)
    note(`note: ${u.rule} entry ${JSON.stringify(u.text)} does not resolve: ${u.reason}`);

  const state = rules.createState({ promptIds, scopeStart, promptLength: promptIds.length });
  const steps: RulesTrace['steps'] = [];
  for (let t = 0; t <= response.length; t++) {
    const scores: Record<string, number> = {};
    for (const [id, score] of rules.scores(state)) scores[String(id)] = score;
    steps.push({ t, scores });
    if (t < response.length) state.append(response[t]!);
  }
  const trace: RulesTrace = { promptIds, scopeStart, promptLength: promptIds.length, steps };
  process.stdout.write(`${JSON.stringify(trace)}\n`);
}

export function registerRules(program: Command): void {
  const rules = program
    .command('rules')
    .description('inspect what the rules do')
    .addHelpText(
      'after',
      `
Examples:
  $ implicit-it rules trace --tokenizer ./models/tiny --instruction "Hi" \\
      --response "Hello there"
  $ implicit-it rules trace --help`,
    );
  rules
    .command('trace')
    .description(
      'print ONE JSON object with the sparse rule scores applied when predicting each response token t = 0..R',
    )
    .requiredOption('--tokenizer <dir>', 'a Hugging Face tokenizer directory (or a model directory)')
    .option(
      '-r, --rules <spec>',
      'rules: hewitt2024 (default) | hewitt2024-prose | eos-uniform | ... | off | JSON | @file.json',
    )
    .addOption(formerFlag('--preset <name>', '--rules'))
    .option('--instruction <text>', 'the instruction, formatted as the paper does (see --format)')
    .addOption(
      new Option('--format <format>', 'prompt format of --instruction')
        .choices(CONVERSATION_FORMATS)
        .default('tulu'),
    )
    .option('--add-bos', `with --instruction: ${ADD_BOS_HELP}`)
    .option('--no-add-bos', `with --instruction: ${NO_ADD_BOS_HELP}`)
    .option('--prompt-ids <ids>', 'the prompt as comma-separated token ids', idsArg)
    .option(
      '--scope-start <n>',
      'with --prompt-ids: index of the first token of the last user message',
      intArg(0),
    )
    .option('--response <text>', 'the response, encoded without special tokens')
    .option('--response-ids <ids>', 'the response as comma-separated token ids', idsArg)
    .addHelpText(
      'after',
      `
Output (one line of JSON on stdout):
  {"promptIds":[...],"scopeStart":S,"promptLength":P,
   "steps":[{"t":0,"scores":{"<id>":score,...}},...]}
  steps[t].scores are the non-zero rule scores added to the logits when
  predicting response token t, for t = 0 .. number of response tokens (the last
  step predicts the token after the response).

Examples:
  $ implicit-it rules trace --tokenizer ../shared/fixtures/tokenizers/llama2 \\
      --instruction "Give me a recipe for tiramisu." --response "Sure! Here"
  $ implicit-it rules trace --tokenizer ./models/smol --rules eos-uniform \\
      --prompt-ids 1,529,29989 --scope-start 1 --response-ids 323,2126,275
  $ implicit-it rules trace --tokenizer ./models/smol \\
      --rules '{"used":{"penalty":-2}}' --instruction "Hi" --response "" \\
      | jq '.steps[0].scores'`,
    )
    .action(async (flags: TraceFlags) => run(flags));
}
