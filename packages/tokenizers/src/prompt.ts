import type { ListsEveryKey } from '@implicit-it/rules';
import { PromptError } from './errors.js';
import { misnamedTemplateMessage, unknownFieldMessage } from './field-checks.js';
import { joinPath } from './join-path.js';
import { type ChatMessage, scopeMessageIndex, tuluSegments } from './tulu.js';

/**
 * A prompt ready for the runtime and the rules.
 *
 * @example
 * import { compileRules } from '@implicit-it/rules';
 *
 * const prompt: Prompt = tok.buildPrompt({ format: 'tulu', instruction: 'Name a city.' });
 * const rules = compileRules('hewitt2024', tok.vocabulary);
 * const state = rules.createState({ promptIds: prompt.ids, scopeStart: prompt.scopeStart });
 */
export interface Prompt {
  /** Token ids of the whole prompt, BOS included when the format adds one. */
  ids: number[];
  /**
   * S in rules-spec.md: index in `ids` of the first token of the last user message. When the
   * tokenizer merges the message's first characters with the text before it into one token, S is
   * that merged token (the first token holding any character of the message). A conversation with no
   * user message (e.g. a system prompt alone) starts the scope at its last message instead; and if a
   * chat template does not write that message verbatim, at 0 (the whole prompt).
   */
  scopeStart: number;
  /** P in rules-spec.md: `ids.length`. */
  promptLength: number;
  /** The prompt as text: what was tokenized, with a BOS the builder prepended written as its token. */
  text: string;
}

/**
 * Messages or a single instruction (a one-message user conversation).
 *
 * @example
 * const conversation: Conversation = {
 *   messages: [
 *     { role: 'system', content: 'Answer in one word.' },
 *     { role: 'user', content: 'Name a city.' },
 *   ],
 * };
 * const prompt = tok.buildPrompt({ format: 'tulu', ...conversation });
 */
export type Conversation =
  | { messages: readonly ChatMessage[]; instruction?: undefined }
  | { instruction: string; messages?: undefined };

/**
 * What `buildPrompt` builds:
 * - `tulu`: the paper's format `<|user|>\n{instruction}\n<|assistant|>\n`, with BOS first where the
 *   tokenizer adds it when encoding with special tokens (`addBos`, default: `tokenizer.addsBos`;
 *   Llama-2 `<s>`, none for GPT-2, SmolLM2, OLMo), as the paper's pipeline has it: its evaluation
 *   writes the prompt without BOS and tokenizes it with special tokens, and `@implicit-it/finetune`
 *   trains on the same ids. Multi-turn as open-instruct's `create_prompt_with_tulu_chat_format`
 *   (`</s>`, i.e. the EOS token, after assistant turns). `addBos: true` prepends the BOS, or on a
 *   tokenizer without one (OLMo) its EOS, as open-instruct and `@implicit-it/finetune`'s `addBos` do.
 * - `chat-template`: the model's own jinja template (or `template`: a template, or the name of one of
 *   tokenizer_config.json's named templates), rendered by
 *   `@huggingface/jinja` (as transformers.js does) and tokenized without added special tokens, as Hugging Face's
 *   `apply_chat_template` does; `addGenerationPrompt` defaults to true; `addBos` (default false)
 *   prepends BOS (on a tokenizer without one, its EOS, as in `tulu`) when the rendered template does
 *   not start with that token.
 * - `raw`: the text as is, tokenized with the tokenizer's special tokens (`addSpecialTokens`,
 *   default true); `scopeStart` is the first token of the text. Special tokens written in the text
 *   are read as special tokens: a raw prompt is the caller's own.
 *
 * In `tulu` and `chat-template`, `specialTokensInContent` says what a special token's text written
 * inside a message (`<|im_end|>`, `</s>`) becomes: `'text'` (default) tokenizes it as ordinary text,
 * as OpenAI does and as Hugging Face does with `split_special_tokens=True`, so a user cannot close
 * their turn or forge another role's; `'parse'` reads it as the special token, as Hugging Face's
 * `apply_chat_template` and the paper's code (which tokenize the rendered string) do. Prompts whose
 * messages hold no special token's text are the same either way.
 *
 * @example
 * const input: PromptInput = {
 *   format: 'chat-template',
 *   messages: [{ role: 'user', content: 'Hi!' }],
 *   addGenerationPrompt: true,
 * };
 * const { ids, scopeStart } = tok.buildPrompt(input);
 */
export type PromptInput =
  | ({
      format: 'tulu';
      addBos?: boolean | undefined;
      specialTokensInContent?: SpecialTokensInContent | undefined;
    } & Conversation)
  | ({
      format: 'chat-template';
      addGenerationPrompt?: boolean | undefined;
      template?: string | undefined;
      addBos?: boolean | undefined;
      specialTokensInContent?: SpecialTokensInContent | undefined;
    } & Conversation)
  | { format: 'raw'; text: string; addSpecialTokens?: boolean | undefined };

/**
 * The prompt formats `buildPrompt` builds (see `PromptInput`).
 *
 * @example
 * const format: PromptFormat = tok.chatTemplate === undefined ? 'tulu' : 'chat-template';
 * const prompt = tok.buildPrompt({ format, instruction: 'Name a city.' });
 */
export type PromptFormat = PromptInput['format'];

/**
 * Every `PromptFormat`, as a list to check a value against or name in a message.
 *
 * @example
 * `format: expected one of ${PROMPT_FORMATS.join(', ')}`; // 'format: expected one of tulu, chat-template, raw'
 */
export const PROMPT_FORMATS = ['tulu', 'chat-template', 'raw'] as const satisfies readonly PromptFormat[];

// every format is listed (one added to PromptInput but not here would be refused)
const _allFormatsListed: ListsEveryKey<Record<PromptFormat, unknown>, typeof PROMPT_FORMATS> = true;
void _allFormatsListed;

/**
 * The fields a prompt of each format takes (`buildPrompt` refuses others, naming the one meant). A
 * field added to `PromptInput` goes here too, or every prompt that gives it is refused.
 */
const PROMPT_FIELDS: Readonly<Record<PromptFormat, readonly string[]>> = {
  tulu: ['format', 'instruction', 'messages', 'addBos', 'specialTokensInContent'],
  'chat-template': [
    'format',
    'instruction',
    'messages',
    'addGenerationPrompt',
    'template',
    'addBos',
    'specialTokensInContent',
  ],
  raw: ['format', 'text', 'addSpecialTokens'],
};

/** For each format, what its unknown fields that other formats take are (said instead of a suggestion). */
const FIELDS_ELSEWHERE = Object.fromEntries(
  PROMPT_FORMATS.map((format) => {
    const elsewhere: Record<string, string> = {
      chatTemplate: "an option of loadTokenizer; a prompt's own template is `template`",
    };
    for (const other of PROMPT_FORMATS)
      for (const f of PROMPT_FIELDS[other])
        if (!PROMPT_FIELDS[format].includes(f)) elsewhere[f] ??= `a field of a '${other}' prompt`;
    return [format, elsewhere];
  }),
) as Record<PromptFormat, Readonly<Record<string, string>>>;

/**
 * The formats that build a prompt from an instruction or chat messages: every `PromptFormat` but
 * `raw` (a text continued as is). What a chat server or a chat command offers.
 *
 * @example
 * const format: ConversationFormat = tok.chatTemplate === undefined ? 'tulu' : 'chat-template';
 * const prompt = tok.buildPrompt({ format, messages: [{ role: 'user', content: 'Hi!' }] });
 */
export type ConversationFormat = Exclude<PromptFormat, 'raw'>;

/**
 * Every `ConversationFormat`, as a list to check a value against or name in a message.
 *
 * @example
 * CONVERSATION_FORMATS.join(', '); // 'tulu, chat-template'
 */
export const CONVERSATION_FORMATS: readonly ConversationFormat[] = PROMPT_FORMATS.filter(
  (f): f is ConversationFormat => f !== 'raw',
);

/**
 * What special-token text inside a message becomes (see `PromptInput`).
 *
 * @example
 * const asText: SpecialTokensInContent = 'text';
 * tok.buildPrompt({ format: 'tulu', instruction: 'Say </s>', specialTokensInContent: asText }).ids.includes(2); // false
 * tok.buildPrompt({ format: 'tulu', instruction: 'Say </s>', specialTokensInContent: 'parse' }).ids.includes(2); // true
 */
export type SpecialTokensInContent = 'text' | 'parse';

/**
 * A character range `[start, end)` of a text.
 *
 * @example
 * const text = 'Echo </s> back';
 * const quoted: TextRange = [5, 9]; // '</s>'
 * tok.encode(text, { literalRanges: [quoted] }).includes(2); // false: read as text, not as EOS
 */
export type TextRange = readonly [start: number, end: number];

/** What prompt building needs from a tokenizer. @internal */
export interface PromptTokenizer {
  readonly source: string;
  readonly bosId: number | undefined;
  /** Whether encoding with special tokens puts BOS first (the `tulu` default of `addBos`). */
  readonly addsBos: boolean;
  readonly eosIds: readonly number[];
  readonly chatTemplate: string | undefined;
  /** The names of tokenizer_config.json's named chat templates (a list of `{ name, template }`), if any. */
  readonly chatTemplateNames?: readonly string[];
  /** The template of that list named `name`, if any (`template` may name one, as in Hugging Face). */
  chatTemplateNamed?(name: string): string | undefined;
  /** The contents of the special added tokens (`</s>`, `<|im_end|>`). */
  readonly specialTokenTexts: readonly string[];
  encode(
    text: string,
    options?: { addSpecialTokens?: boolean; literalRanges?: readonly TextRange[] },
  ): number[];
  idToToken(id: number): string | undefined;
  renderChatTemplate(
    messages: readonly ChatMessage[],
    template: string,
    addGenerationPrompt: boolean,
  ): string;
}

/** Stands in for the last user message to find where it starts (mixed case: a case filter changes it). */
const SENTINEL = 'ImplicitItScope7Sentinel';
/** Stands in for message `i` to find where each message's content lies in a rendered template. */
const contentSentinel = (i: number) => `ImplicitItContent${i}Sentinel`;
const CONTENT_SENTINEL = /ImplicitItContent(\d+)Sentinel/g;

/**
 * Where the messages' contents lie in `body`, a chat template's rendering of `messages`: the template
 * is rendered again with one sentinel per message and the two renderings are aligned. A template may
 * trim a content (Llama 2's `.strip()`); undefined when a content is written any other way.
 */
function templateContentRanges(
  tok: PromptTokenizer,
  messages: readonly ChatMessage[],
  template: string,
  addGenerationPrompt: boolean,
  body: string,
): TextRange[] | undefined {
  const marked = messages.map((m, i) => ({ ...m, content: contentSentinel(i) }));
  const rendered = tok.renderChatTemplate(marked, template, addGenerationPrompt);
  const found = [...rendered.matchAll(CONTENT_SENTINEL)];
  const ranges: TextRange[] = [];
  let pos = 0;
  let from = 0;
  for (const [k, match] of found.entries()) {
    const fragment = rendered.slice(from, match.index);
    if (!body.startsWith(fragment, pos)) return undefined;
    pos += fragment.length;
    from = match.index + match[0].length;
    const next = rendered.slice(from, found[k + 1]?.index ?? rendered.length);
    const content = messages[Number(match[1])]?.content;
    if (content === undefined) return undefined;
    const written = [content, content.trim(), content.trimStart(), content.trimEnd()].find(
      (c) => body.startsWith(c, pos) && body.startsWith(next, pos + c.length),
    );
    if (written === undefined) return undefined;
    ranges.push([pos, pos + written.length]);
    pos += written.length;
  }
  return body.slice(pos) === rendered.slice(from) ? ranges : undefined;
}

/** The ranges of `ranges` that start before `end`, cut at `end`. */
function rangesBefore(ranges: readonly TextRange[], end: number): TextRange[] {
  return ranges.filter(([start]) => start < end).map(([start, stop]) => [start, Math.min(stop, end)]);
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The token that starts a document: the tokenizer's BOS or, when it names none (OLMo, Qwen2.5), its
 * first EOS (undefined when it names neither). It is what `addBos` prepends, as open-instruct sets
 * `tokenizer.bos_token = tokenizer.eos_token` for such tokenizers and the paper's OLMo prompts start
 * with `|||IP_ADDRESS|||`, the EOS of OLMo's original tokenizer (rules-spec.md).
 *
 * @example
 * documentStartId(tok); // 1 (Llama-2's <s>; OLMo, which has no BOS, gives its EOS 50279)
 */
export function documentStartId(tok: Pick<PromptTokenizer, 'bosId' | 'eosIds'>): number | undefined {
  return tok.bosId ?? tok.eosIds[0];
}

/** `documentStartId`, or an error naming `addBos` where the tokenizer names neither token. */
function bosStandIn(tok: PromptTokenizer): number {
  const id = documentStartId(tok);
  if (id === undefined) {
    throw new PromptError(
      'tokenizers.invalid_prompt',
      `addBos: ${tok.source} names neither a BOS nor an EOS token (bos_token, eos_token in tokenizer_config.json); drop addBos`,
    );
  }
  return id;
}

function messagesOf(input: Conversation): readonly ChatMessage[] {
  if (typeof input.instruction === 'string') {
    if (input.messages !== undefined) {
      throw new PromptError('tokenizers.invalid_prompt', 'give either instruction or messages, not both');
    }
    return [{ role: 'user', content: input.instruction }];
  }
  if (input.messages === undefined) {
    throw new PromptError('tokenizers.invalid_prompt', 'give instruction (a string) or messages (a list)');
  }
  return input.messages;
}

/**
 * Builds prompt ids, S and P. The whole prompt text is tokenized once (so the ids are exactly what
 * tokenizing the full prompt gives, as the reference code does); S is found by tokenizing only the
 * text before the last user message (with no user message, the last message: `scopeMessageIndex`) and
 * taking the length of the common prefix of both id lists.
 * Pieces are never tokenized separately and concatenated: SentencePiece adds a leading `▁` to every
 * separately encoded piece, and byte-level BPE may merge across a boundary.
 *
 * @internal
 */
export function buildPromptWith(tok: PromptTokenizer, input: PromptInput): Prompt {
  const format: unknown = input?.format;
  if (!(PROMPT_FORMATS as readonly unknown[]).includes(format)) {
    const quoted = PROMPT_FORMATS.map((f) => `'${f}'`);
    throw new PromptError(
      'tokenizers.invalid_prompt',
      `format: expected ${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}, got ${JSON.stringify(format)}`,
    );
  }
  const unknown = unknownFieldMessage(
    input,
    PROMPT_FIELDS[input.format],
    `a field of a '${input.format}' prompt`,
    FIELDS_ELSEWHERE[input.format],
  );
  if (unknown) throw new PromptError('tokenizers.invalid_prompt', unknown);
  if (input.format === 'raw') {
    if (typeof input.text !== 'string') {
      throw new PromptError('tokenizers.invalid_prompt', 'text: a raw prompt needs text (a string)');
    }
    const ids = tok.encode(input.text, { addSpecialTokens: input.addSpecialTokens ?? true });
    const plain =
      input.addSpecialTokens === false ? ids : tok.encode(input.text, { addSpecialTokens: false });
    let scopeStart = 0;
    for (let k = 0; k + plain.length <= ids.length; k++) {
      if (commonPrefixLength(ids.slice(k), plain) === plain.length) {
        scopeStart = k;
        break;
      }
    }
    return { ids, scopeStart, promptLength: ids.length, text: input.text };
  }

  const messages = messagesOf(input);
  const mode: unknown = input.specialTokensInContent ?? 'text';
  if (mode !== 'text' && mode !== 'parse') {
    throw new PromptError(
      'tokenizers.invalid_prompt',
      `specialTokensInContent: expected 'text' or 'parse', got ${JSON.stringify(mode)}`,
    );
  }
  // only a message that holds a special token's text needs its content kept apart
  const literal =
    mode === 'text' &&
    Array.isArray(messages) &&
    messages.some(
      (m) => typeof m?.content === 'string' && tok.specialTokenTexts.some((t) => m.content.includes(t)),
    );
  let before: string;
  let body: string;
  let bos: number[] = [];
  let contentRanges: TextRange[] = [];
  let scopeAtStart = false;
  if (input.format === 'tulu') {
    const eos = tok.eosIds[0];
    const { segments, scope } = tuluSegments(messages, eos === undefined ? undefined : tok.idToToken(eos));
    body = '';
    before = '';
    segments.forEach((segment, i) => {
      if (i === scope) before = body;
      if (literal && segment.content) contentRanges.push([body.length, body.length + segment.text.length]);
      body += segment.text;
    });
    if (input.addBos ?? tok.addsBos) bos = [bosStandIn(tok)];
  } else {
    const byName = input.template === undefined ? undefined : tok.chatTemplateNamed?.(input.template);
    const misnamed =
      input.template !== undefined && byName === undefined
        ? misnamedTemplateMessage(input.template, tok.chatTemplateNames ?? [], 'template')
        : undefined;
    if (misnamed) throw new PromptError('tokenizers.invalid_prompt', misnamed);
    const template = byName ?? input.template ?? tok.chatTemplate;
    if (template === undefined) {
      const names = tok.chatTemplateNames ?? [];
      throw new PromptError(
        'tokenizers.no_chat_template',
        names.length > 0
          ? `${tok.source} has chat templates named ${names.map((n) => JSON.stringify(n)).join(', ')} and none named "default" ` +
              `(${joinPath(tok.source, 'tokenizer_config.json')}, field chat_template); ` +
              "pass { template } (a template or one of those names) or use format 'tulu'"
          : `${tok.source} has no chat template (chat_template in tokenizer_config.json or chat_template.jinja); ` +
              "pass { template } or use format 'tulu'",
      );
    }
    const last = scopeMessageIndex(messages);
    const addGen = input.addGenerationPrompt ?? true;
    body = tok.renderChatTemplate(messages, template, addGen);
    const marked = messages.map((m, i) => (i === last ? { ...m, content: SENTINEL } : m));
    const withSentinel = tok.renderChatTemplate(marked, template, addGen);
    const at = withSentinel.indexOf(SENTINEL);
    if (at >= 0 && body.startsWith(withSentinel.slice(0, at))) before = withSentinel.slice(0, at);
    else if (messages[last]!.role !== 'user') {
      // no user message, and the template hides the last message (or leaves it out): S is only a
      // convention then, so the scope is the whole prompt rather than an error
      scopeAtStart = true;
      before = '';
    } else {
      throw new PromptError(
        'tokenizers.scope_not_found',
        'the chat template does not write the last user message verbatim, so where it starts is unknown; ' +
          "use format 'tulu' or a template that inserts message content as is",
      );
    }
    if (literal) {
      const ranges = templateContentRanges(tok, messages, template, addGen, body);
      if (ranges === undefined) {
        throw new PromptError(
          'tokenizers.scope_not_found',
          'a message holds the text of a special token, and the chat template does not write message contents ' +
            "as they are, so they cannot be kept as text; pass specialTokensInContent: 'parse' to read them as " +
            "special tokens, or use format 'tulu'",
        );
      }
      contentRanges = ranges;
    }
    if (input.addBos) bos = [bosStandIn(tok)];
  }

  const bodyIds = tok.encode(body, { addSpecialTokens: false, literalRanges: contentRanges });
  // the template's own BOS (or the EOS standing in for it) is not doubled
  if (input.format === 'chat-template' && bos.length > 0 && bodyIds[0] === bos[0]) bos = [];
  const ids = [...bos, ...bodyIds];
  const beforeIds = tok.encode(before, {
    addSpecialTokens: false,
    literalRanges: rangesBefore(contentRanges, before.length),
  });
  const scopeStart = scopeAtStart ? 0 : commonPrefixLength([...bos, ...beforeIds], ids);
  const bosText = bos.length ? (tok.idToToken(bos[0]!) ?? '') : '';
  return { ids, scopeStart, promptLength: ids.length, text: bosText + body };
}
