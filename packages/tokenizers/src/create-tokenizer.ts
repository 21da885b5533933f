import { Template } from '@huggingface/jinja';
import { Tokenizer as InnerTokenizerClass } from '@huggingface/tokenizers';
import { type ListsEveryKey, shownValue } from '@implicit-it/rules';
import { type Detokenizer, type DetokenizerOptions, WindowDetokenizer } from './detokenizer.js';
import { checkTokenId, PromptError, TokenizerInputError, TokenizerLoadError } from './errors.js';
import { misnamedTemplateMessage, unknownFieldMessage } from './field-checks.js';
import { type JsonObject, TOKENIZER_FILE_NAMES, type TokenizerFiles } from './files.js';
import { joinPath } from './join-path.js';
import { applyLegacyFalsePrepend, encodeOnce } from './legacy-prepend.js';
import { encodeWithLiteralRanges, type InnerTokenizer } from './literal-ranges.js';
import { rebuildPostProcessor } from './post-processor.js';
import { buildPromptWith, type Prompt, type PromptInput, type TextRange } from './prompt.js';
import { additionalSpecialTokens, resolveSpecialIds, specialTokenEntry } from './special-tokens.js';
import { detectPieceEncoding, type PieceEncoding, pieceBytes } from './surfaces.js';
import type { DecodeOptions, EncodeOptions, Tokenizer } from './tokenizer.js';
import type { ChatMessage } from './tulu.js';
import { type AddedTokenInfo, TokenizerVocabulary } from './vocabulary.js';

/** Decodes token bytes; an incomplete or invalid sequence becomes U+FFFD. */
const UTF8 = new TextDecoder();

/**
 * Options of `createTokenizer` and `loadTokenizer`.
 *
 * @example
 * // stop at Llama-2's </s> and at a newline (13)
 * const tok = await loadTokenizer('./models/llama2', { eosIds: [2, 13] });
 */
export interface TokenizerOptions {
  /** EOS ids to use instead of the ones the files name (e.g. several stop tokens). */
  eosIds?: readonly number[] | undefined;
  /**
   * A jinja chat template to use instead of the tokenizer's own, or the name of one of
   * tokenizer_config.json's named templates (`chat_template` as a list of `{ name, template }`).
   */
  chatTemplate?: string | undefined;
}

const TOKENIZER_OPTIONS = ['eosIds', 'chatTemplate'] as const satisfies readonly (keyof TokenizerOptions)[];
// every option is listed (one added to TokenizerOptions but not here would be refused)
const _allOptionsListed: ListsEveryKey<TokenizerOptions, typeof TOKENIZER_OPTIONS> = true;
void _allOptionsListed;

const ENCODE_OPTIONS = [
  'addSpecialTokens',
  'literalRanges',
] as const satisfies readonly (keyof EncodeOptions)[];
const DECODE_OPTIONS = [
  'skipSpecialTokens',
  'cleanUpTokenizationSpaces',
] as const satisfies readonly (keyof DecodeOptions)[];
const DETOKENIZER_OPTIONS = [
  'skipSpecialTokens',
  'context',
] as const satisfies readonly (keyof DetokenizerOptions)[];
// every option is listed (one added to the interfaces but not here would be refused)
const _encodeListed: ListsEveryKey<EncodeOptions, typeof ENCODE_OPTIONS> = true;
const _decodeListed: ListsEveryKey<DecodeOptions, typeof DECODE_OPTIONS> = true;
const _detokenizerListed: ListsEveryKey<DetokenizerOptions, typeof DETOKENIZER_OPTIONS> = true;
void [_encodeListed, _decodeListed, _detokenizerListed];

/**
 * Throws for `options` of `fn` that are not an object of its options (`known`): Hugging Face's
 * snake_case names (`add_special_tokens`) or a bare `false` would otherwise be left unread, and the
 * defaults used without a word.
 */
function checkOptions(options: unknown, known: readonly string[], fn: string, example: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new TokenizerInputError(
      `${fn}: options must be an object such as ${example}, got ${shownValue(options)}`,
    );
  const unknown = unknownFieldMessage(options, known, 'an option');
  if (unknown) throw new TokenizerInputError(`${fn}: ${unknown}`);
}

const SPECIAL_KEYS = [
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
];

/** The `model.type`s @huggingface/tokenizers builds (others would fall back to a model that encodes to undefined ids). */
const MODEL_TYPES = ['BPE', 'Unigram', 'WordPiece'];

/**
 * The parts of a tokenizer.json besides its model, null where there is none: Python's tokenizers
 * writes each (null for none); other writers may leave them out, which @huggingface/tokenizers refuses.
 */
const PIPELINE_PARTS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;

function malformed(files: TokenizerFiles, field: string, message: string): never {
  throw new TokenizerLoadError(
    'tokenizers.malformed_file',
    joinPath(files.source, 'tokenizer.json'),
    message,
    {
      field,
    },
  );
}

/** The fields of `TokenizerFiles`. */
const FILE_FIELDS = ['source', ...Object.keys(TOKENIZER_FILE_NAMES)];

/** Throws for a JSON file of `files` given as its text: the parsed object is what `field` takes. */
function notParsed(files: TokenizerFiles, field: 'tokenizerJson' | JsonFileField): never {
  throw new TokenizerLoadError(
    'tokenizers.malformed_file',
    joinPath(files.source, TOKENIZER_FILE_NAMES[field]),
    `files.${field} must be the parsed JSON object, got a string: JSON.parse the file's text first`,
    { field },
  );
}

type JsonFileField = 'tokenizerConfig' | 'specialTokensMap' | 'generationConfig';

function validateTokenizerJson(files: TokenizerFiles): { size: number; added: AddedTokenInfo[] } {
  if (typeof files !== 'object' || files === null) {
    throw new TokenizerLoadError(
      'tokenizers.missing_file',
      'createTokenizer',
      `files must be { source, tokenizerJson, ... } (see readTokenizerFiles), got ${files === null ? 'null' : typeof files}`,
    );
  }
  // a field misspelt (tokenizer_config) would leave its file out without a word
  const unknown = unknownFieldMessage(files, FILE_FIELDS, 'a field of the files createTokenizer takes');
  if (unknown) throw new TokenizerInputError(`createTokenizer: ${unknown}`);
  if (typeof files.source !== 'string') {
    throw new TokenizerInputError(
      `createTokenizer: files.source must be a string naming where the files came from (a directory, a URL or any label: errors name it), got ${shownValue(files.source)}`,
    );
  }
  const json = files.tokenizerJson;
  if (typeof json === 'string') notParsed(files, 'tokenizerJson');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TokenizerLoadError(
      'tokenizers.missing_file',
      joinPath(files.source, 'tokenizer.json'),
      `files.tokenizerJson is missing (got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}); ` +
        'pass the parsed tokenizer.json object, e.g. from readTokenizerFiles(dir)',
      { field: 'tokenizerJson' },
    );
  }
  // the optional files: one of another type would be read as absent (a string's fields are undefined)
  for (const field of ['tokenizerConfig', 'specialTokensMap', 'generationConfig'] as const) {
    const value: unknown = files[field];
    if (value === undefined) continue;
    if (typeof value === 'string') notParsed(files, field);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TokenizerLoadError(
        'tokenizers.malformed_file',
        joinPath(files.source, TOKENIZER_FILE_NAMES[field]),
        `files.${field} must be the parsed JSON object (or undefined where there is no such file), got ${shownValue(value)}`,
        { field },
      );
    }
  }
  if (files.chatTemplate !== undefined && typeof files.chatTemplate !== 'string') {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      joinPath(files.source, TOKENIZER_FILE_NAMES.chatTemplate),
      `files.chatTemplate must be the text of chat_template.jinja (a string), got ${shownValue(files.chatTemplate)}`,
      { field: 'chatTemplate' },
    );
  }
  const model = json.model as JsonObject | undefined;
  if (typeof model !== 'object' || model === null || Array.isArray(model)) {
    malformed(files, 'model', 'must be an object (the tokenizer model: type, vocab, merges)');
  }
  if (model.type !== undefined && !MODEL_TYPES.includes(model.type as string)) {
    throw new TokenizerLoadError(
      'tokenizers.unsupported',
      joinPath(files.source, 'tokenizer.json'),
      `${JSON.stringify(model.type)} is not a tokenizer model @huggingface/tokenizers builds (${MODEL_TYPES.join(', ')})`,
      { field: 'model.type' },
    );
  }
  const vocab = model.vocab;
  let size = 0;
  if (Array.isArray(vocab)) size = vocab.length;
  else if (typeof vocab === 'object' && vocab !== null) {
    for (const [piece, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        malformed(
          files,
          `model.vocab[${JSON.stringify(piece)}]`,
          `must be a non-negative integer id, found ${id}`,
        );
      }
      if ((id as number) >= size) size = (id as number) + 1;
    }
  } else malformed(files, 'model.vocab', 'must be an object mapping pieces to ids (or a Unigram list)');
  if (model.type === 'BPE' && model.merges === undefined) {
    malformed(
      files,
      'model.merges',
      'a BPE model needs its merges (a list of "a b" or ["a", "b"]), found none',
    );
  }
  if (model.merges !== undefined) {
    if (!Array.isArray(model.merges)) malformed(files, 'model.merges', 'must be a list of merges');
    model.merges.forEach((m: unknown, i: number) => {
      const ok =
        typeof m === 'string' ||
        (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string');
      if (!ok)
        malformed(files, `model.merges[${i}]`, `must be "a b" or ["a", "b"], found ${JSON.stringify(m)}`);
    });
  }
  const addedJson = json.added_tokens ?? [];
  if (!Array.isArray(addedJson)) malformed(files, 'added_tokens', 'must be a list of added tokens');
  const added = addedJson.map((t: unknown, i: number): AddedTokenInfo => {
    const token = t as JsonObject;
    if (typeof token?.content !== 'string' || !Number.isInteger(token.id) || (token.id as number) < 0) {
      malformed(
        files,
        `added_tokens[${i}]`,
        `must be { id: integer, content: string }, found ${JSON.stringify(t)}`,
      );
    }
    return { id: token.id as number, content: token.content, special: token.special === true };
  });
  for (const t of added) if (t.id >= size) size = t.id + 1;
  if (size === 0) malformed(files, 'model.vocab', 'is empty');
  return { size, added };
}

/** A chat template and where it came from (for error messages), with the named ones of a list. */
interface ChatTemplateSource {
  template: string | undefined;
  /** e.g. `<dir>/tokenizer_config.json, field chat_template`, or `the chatTemplate option`. */
  origin: string;
  /** tokenizer_config.json's `chat_template` as a list of `{ name, template }`, by name. */
  named: Map<string, string>;
}

/**
 * The chat template as Hugging Face picks it: the `chatTemplate` option (a template, or the name of
 * one of tokenizer_config.json's named templates), else chat_template.jinja, else tokenizer_config.json's
 * `chat_template`: a string, or from a list of named templates the one named `default` (none when
 * no template is so named: `apply_chat_template` then asks for a name rather than picking one).
 */
function chatTemplateOf(files: TokenizerFiles, options: TokenizerOptions): ChatTemplateSource {
  const configFile = joinPath(files.source, 'tokenizer_config.json');
  const named = new Map<string, string>();
  const value = files.tokenizerConfig?.chat_template;
  let own: string | undefined;
  let origin = `${configFile}, field chat_template`;
  if (typeof value === 'string') own = value;
  else if (Array.isArray(value)) {
    value.forEach((entry: unknown, i: number) => {
      const { name, template } = (entry ?? {}) as { name?: unknown; template?: unknown };
      if (typeof name !== 'string') {
        throw new TokenizerLoadError(
          'tokenizers.malformed_file',
          configFile,
          `must be a template name (a string), found ${JSON.stringify(name)}`,
          {
            field: `chat_template[${i}].name`,
          },
        );
      }
      if (typeof template !== 'string') {
        throw new TokenizerLoadError(
          'tokenizers.malformed_file',
          configFile,
          `must be a jinja template string, found ${JSON.stringify(template)}`,
          {
            field: `chat_template[${i}].template`,
          },
        );
      }
      named.set(name, template);
    });
    own = named.get('default');
    origin = `${configFile}, field chat_template, template "default"`;
  } else if (value !== undefined && value !== null) {
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      configFile,
      `must be a jinja template string or a list of { name, template }, found ${typeof value}`,
      { field: 'chat_template' },
    );
  }
  if (options.chatTemplate !== undefined) {
    const byName = named.get(options.chatTemplate);
    const misnamed =
      byName === undefined
        ? misnamedTemplateMessage(options.chatTemplate, [...named.keys()], 'chatTemplate')
        : undefined;
    if (misnamed) throw new TokenizerInputError(`${misnamed} (${configFile})`);
    return byName === undefined
      ? { template: options.chatTemplate, origin: 'the chatTemplate option', named }
      : {
          template: byName,
          origin: `${configFile}, field chat_template, template ${JSON.stringify(options.chatTemplate)}`,
          named,
        };
  }
  if (files.chatTemplate !== undefined) {
    return { template: files.chatTemplate, origin: joinPath(files.source, 'chat_template.jinja'), named };
  }
  return { template: own, origin, named };
}

/**
 * tokenizer_config.json with its special tokens as transformers reads them with special_tokens_map.json
 * (see `specialTokenEntry`), as plain strings, for @huggingface/tokenizers. Its
 * `additional_special_tokens` (what `decode` skips besides special added tokens) are
 * tokenizer_config.json's, else special_tokens_map.json's: chat templates see the list
 * `additionalSpecialTokens` reads.
 */
function hfConfig(files: TokenizerFiles, chatTemplate: string | undefined): JsonObject {
  const config: JsonObject = { ...(files.tokenizerConfig ?? {}) };
  for (const key of SPECIAL_KEYS) {
    const value = specialTokenEntry(files, key)?.value;
    if (typeof value === 'object' && value !== null && typeof (value as JsonObject).content === 'string') {
      config[key] = (value as JsonObject).content;
    } else if (value !== undefined) config[key] = value;
  }
  const additional = config.additional_special_tokens ?? files.specialTokensMap?.additional_special_tokens;
  if (Array.isArray(additional)) {
    config.additional_special_tokens = additional.map((t) =>
      typeof t === 'object' && t !== null && typeof (t as JsonObject).content === 'string'
        ? (t as JsonObject).content
        : t,
    );
  }
  config.chat_template = chatTemplate ?? null;
  return config;
}

class HfTokenizer implements Tokenizer {
  readonly source: string;
  readonly pieceEncoding: PieceEncoding;
  readonly eosIds: readonly number[];
  readonly eosSource: string | undefined;
  readonly bosId: number | undefined;
  readonly addsBos: boolean;
  readonly padId: number;
  readonly chatTemplate: string | undefined;
  readonly chatTemplateNames: readonly string[];
  private readonly chatTemplateSource: ChatTemplateSource;
  readonly specialTokenTexts: readonly string[];
  readonly inner: InnerTokenizerClass;
  readonly size: number;
  private readonly added: AddedTokenInfo[];
  private readonly specialIds: Set<number>;
  private readonly addedById: Map<number, string>;
  private readonly byteFallback: boolean;
  private vocab: TokenizerVocabulary | undefined;
  private readonly singleLengths = [new Map<number, number>(), new Map<number, number>()];
  /** Memo of `bytesOf`, by id: undefined not computed yet, null no piece. */
  private byteMemo: (Uint8Array | null | undefined)[] | undefined;
  /** Memo of `skippedByDecode`, by id: 0 not computed yet, 1 skipped, 2 kept. */
  private skipMemo: Uint8Array | undefined;
  /** Llama `legacy: false`: "▁" is prepended once per text, as Python does (see legacy-prepend.ts). */
  private readonly prependOnce: boolean;
  private readonly spaceId: number | undefined;
  /** The special tokens a chat template sees as variables (`bos_token`, `eos_token`, ...). */
  private readonly templateTokens: Record<string, string>;
  /** `additional_special_tokens` for chat templates, as Python's `special_tokens_map` (only when set). */
  private readonly additionalSpecialTokens: readonly string[] | undefined;
  private readonly templates = new Map<string, Template>();
  /** BOS added by `encode` itself (`add_bos_token: true` the post-processor does not carry out). */
  private readonly prependBos: boolean = false;
  /** EOS appended by `encode` (`add_eos_token: true` of a class that rebuilds its post-processor). */
  private readonly appendEos: number | undefined;

  constructor(files: TokenizerFiles, options: TokenizerOptions) {
    const { size, added } = validateTokenizerJson(files);
    this.source = files.source;
    this.size = size;
    this.added = added;
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    this.addedById = new Map(added.map((t) => [t.id, t.content]));
    this.specialTokenTexts = Object.freeze(added.filter((t) => t.special).map((t) => t.content));
    this.chatTemplateSource = chatTemplateOf(files, options);
    this.chatTemplate = this.chatTemplateSource.template;
    this.chatTemplateNames = Object.freeze([...this.chatTemplateSource.named.keys()]);
    const model = files.tokenizerJson.model as JsonObject;
    this.byteFallback = model.byte_fallback === true;
    this.pieceEncoding = detectPieceEncoding(files.tokenizerJson);
    const config = hfConfig(files, this.chatTemplate);
    // Llama, Gemma, GPT-NeoX...: the post-processor Python builds in place of tokenizer.json's
    const rebuilt = rebuildPostProcessor(files);
    const tokenizerJson =
      rebuilt === undefined
        ? files.tokenizerJson
        : { ...files.tokenizerJson, post_processor: rebuilt.postProcessor };
    this.templateTokens = {};
    for (const key of SPECIAL_KEYS) {
      const value = config[key];
      if (typeof value === 'string' && value !== '') this.templateTokens[key] = value;
    }
    // the class's own BOS and EOS where the files name none, as Python's special_tokens_map has them
    if (rebuilt !== undefined) {
      const { bos, eos } = rebuilt.defaults;
      if (specialTokenEntry(files, 'bos_token') === undefined) this.templateTokens.bos_token = bos;
      if (specialTokenEntry(files, 'eos_token') === undefined) this.templateTokens.eos_token = eos;
    }
    const additional = additionalSpecialTokens(files);
    this.additionalSpecialTokens =
      additional !== undefined && additional.length > 0 ? Object.freeze(additional) : undefined;
    try {
      const parts = Object.fromEntries(PIPELINE_PARTS.map((k) => [k, null]));
      this.inner = new InnerTokenizerClass({ ...parts, ...tokenizerJson }, config);
    } catch (error) {
      throw new TokenizerLoadError(
        'tokenizers.unsupported',
        joinPath(files.source, 'tokenizer.json'),
        `@huggingface/tokenizers cannot build this tokenizer (${(error as Error).message}); ` +
          're-save it with a recent Python transformers (tokenizer.save_pretrained)',
        { cause: error },
      );
    }
    this.prependOnce = applyLegacyFalsePrepend(this.inner as never, files.tokenizerConfig);
    this.spaceId = this.prependOnce ? (this.inner.token_to_id('\u2581') ?? undefined) : undefined;
    const special = resolveSpecialIds(
      { ...files, tokenizerJson },
      { size, tokenToId: (t) => this.inner.token_to_id(t) },
      new Set(this.specialTokenTexts),
      rebuilt?.defaults,
    );
    if (options.eosIds) {
      for (const id of options.eosIds) this.checkId(id, 'options.eosIds');
      this.eosIds = Object.freeze([...new Set(options.eosIds)]);
      this.eosSource = 'options.eosIds';
    } else {
      this.eosIds = Object.freeze(special.eosIds);
      this.eosSource = special.eosSource;
    }
    this.bosId = special.bosId;
    // no pad token named: the first EOS id, the caller's where given (transformers' generate pads with
    // the EOS it stops on), else 0; padded positions are masked, so any id is valid
    this.padId = special.padId ?? this.eosIds[0] ?? 0;
    if (rebuilt !== undefined) {
      // the post-processor adds the BOS as Python's does (transformers.js keeps the file's); the EOS
      // of `add_eos_token` is appended by `encode` (see rebuildPostProcessor)
      this.addsBos = rebuilt.addBos;
      this.appendEos =
        rebuilt.appendEos === undefined
          ? undefined
          : (this.inner.token_to_id(rebuilt.appendEos) ?? undefined);
    } else {
      const probe = this.bosId === undefined ? [] : this.encode('a', { addSpecialTokens: true });
      const postProcessorAdds = probe.length > 1 && probe[0] === this.bosId;
      // `add_bos_token: true` in tokenizer_config.json (which transformers.js and Python's
      // GPT2TokenizerFast ignore) is honoured where the post-processor does not add the BOS already
      // (e.g. an OLMo tokenizer a finetune job gave its EOS as BOS)
      this.prependBos =
        !postProcessorAdds && this.bosId !== undefined && files.tokenizerConfig?.add_bos_token === true;
      this.addsBos = postProcessorAdds || this.prependBos;
    }
  }

  get vocabulary(): TokenizerVocabulary {
    this.vocab ??= new TokenizerVocabulary({
      size: this.size,
      eosIds: this.eosIds,
      vocab: this.inner.get_vocab(false),
      added: this.added,
      encoding: this.pieceEncoding,
      byteFallback: this.byteFallback,
    });
    return this.vocab;
  }

  encode(text: string, options?: EncodeOptions): number[] {
    if (typeof text !== 'string')
      throw new TokenizerInputError(`encode: text must be a string, got ${typeof text}`);
    checkOptions(options, ENCODE_OPTIONS, 'encode', '{ addSpecialTokens: false }');
    const addSpecial = options?.addSpecialTokens ?? true;
    const encode = (t: string, special: boolean) => this.inner.encode(t, { add_special_tokens: special }).ids;
    const run = () => {
      const ids = this.prependOnce
        ? encodeOnce(encode, text, addSpecial, this.spaceId, (id) => this.specialIds.has(id))
        : encode(text, addSpecial);
      if (addSpecial && this.prependBos) ids.unshift(this.bosId!);
      if (addSpecial && this.appendEos !== undefined) ids.push(this.appendEos);
      return ids;
    };
    const ranges = checkRanges(options?.literalRanges, text.length);
    if (ranges.length === 0) return run();
    return encodeWithLiteralRanges(this.inner as unknown as InnerTokenizer, text, ranges, run);
  }

  decode(ids: ArrayLike<number>, options?: DecodeOptions): string {
    if (typeof ids !== 'object' || ids === null || typeof (ids as { length?: unknown }).length !== 'number') {
      throw new TokenizerInputError(
        `decode: ids must be an array of token ids, got ${ids === null ? 'null' : typeof ids}`,
      );
    }
    checkOptions(options, DECODE_OPTIONS, 'decode', '{ skipSpecialTokens: true }');
    const list = Array.isArray(ids) ? (ids as number[]) : Array.from(ids);
    for (let i = 0; i < list.length; i++) this.checkId(list[i]!, `decode: ids[${i}]`);
    if (list.length === 0) return '';
    return this.inner.decode(list, {
      skip_special_tokens: options?.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options?.cleanUpTokenizationSpaces ?? false,
    });
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  tokenBytes(id: number): Uint8Array {
    this.checkId(id, 'tokenBytes: id');
    const bytes = this.bytesOf(id);
    if (bytes === null) {
      throw new TokenizerInputError(`tokenBytes: token id ${id} has no piece in ${this.source}`);
    }
    return bytes.slice(); // the memo's own array stays unshared
  }

  tokenText(id: number): string {
    this.checkId(id, 'tokenText: id');
    const bytes = this.bytesOf(id);
    return bytes === null ? this.decode([id]) : UTF8.decode(bytes);
  }

  /**
   * The UTF-8 bytes `id` adds to decoded text (its added-token content, or its piece's bytes),
   * memoized by id: streaming reads them for its tokens. null for an id with no piece (a gap in
   * tokenizer.json's ids). `id` must be checked already.
   */
  private bytesOf(id: number): Uint8Array | null {
    // preallocated: assigning far ids into an empty array would make it a slow dictionary
    this.byteMemo ??= new Array<Uint8Array | null | undefined>(this.size).fill(undefined);
    let bytes = this.byteMemo[id];
    if (bytes === undefined) {
      const added = this.addedById.get(id);
      const piece = added === undefined ? this.inner.id_to_token(id) : undefined;
      bytes =
        added !== undefined
          ? new TextEncoder().encode(added)
          : piece === undefined
            ? null
            : pieceBytes(piece, this.pieceEncoding, this.byteFallback);
      this.byteMemo[id] = bytes;
    }
    return bytes;
  }

  buildPrompt(input: PromptInput): Prompt {
    return buildPromptWith(this, input);
  }

  /** @internal used by prompt building: a named template of tokenizer_config.json's list, if any. */
  chatTemplateNamed(name: string): string | undefined {
    return this.chatTemplateSource.named.get(name);
  }

  /** @internal used by prompt building */
  renderChatTemplate(
    messages: readonly ChatMessage[],
    template: string,
    addGenerationPrompt: boolean,
  ): string {
    const origin =
      template === this.chatTemplate
        ? this.chatTemplateSource.origin
        : [...this.chatTemplateSource.named].find(([, t]) => t === template) !== undefined
          ? `${joinPath(this.source, 'tokenizer_config.json')}, field chat_template`
          : 'the template given to buildPrompt';
    const of = `the chat template of ${this.source} (${origin})`;
    let compiled = this.templates.get(template);
    if (compiled === undefined) {
      try {
        compiled = new Template(template);
      } catch (error) {
        throw new PromptError(
          'tokenizers.invalid_prompt',
          `${of} is not a valid jinja template (${(error as Error).message}); fix it or pass { template }`,
        );
      }
      this.templates.set(template, compiled);
    }
    try {
      // the variables transformers' apply_chat_template gives a template (no tools, no documents)
      return compiled.render({
        messages: messages as ChatMessage[],
        add_generation_prompt: addGenerationPrompt,
        tools: null,
        documents: null,
        ...this.templateTokens,
        ...(this.additionalSpecialTokens ? { additional_special_tokens: this.additionalSpecialTokens } : {}),
      });
    } catch (error) {
      throw new PromptError(
        'tokenizers.invalid_prompt',
        `${of} failed to render these messages: ${(error as Error).message}`,
      );
    }
  }

  createDetokenizer(options?: DetokenizerOptions): Detokenizer {
    checkOptions(options, DETOKENIZER_OPTIONS, 'createDetokenizer', '{ skipSpecialTokens: true }');
    const skip = options?.skipSpecialTokens ?? false;
    const decodeOptions = { skip_special_tokens: skip, clean_up_tokenization_spaces: false };
    const tokenizer = this.inner;
    const decodeWindow = (ids: number[]) => tokenizer.decode(ids, decodeOptions);
    // an id with no piece (a gap in tokenizer.json's ids) decodes as the unknown token, whose text is
    // complete characters
    const bytes = (id: number): Uint8Array =>
      this.bytesOf(id) ?? new TextEncoder().encode(decodeWindow([id]));
    return new WindowDetokenizer(
      decodeWindow,
      bytes,
      skip ? this.skippedByDecode() : undefined,
      this.size,
      this.singleLengths[skip ? 1 : 0]!,
      this.source,
      options?.context,
    );
  }

  /**
   * Whether `decode(..., { skipSpecialTokens: true })` leaves `id` out: as transformers.js does, by
   * its token text (special added tokens and additional_special_tokens; an id with no piece reads as
   * the unknown token).
   */
  private skippedByDecode(): (id: number) => boolean {
    const inner = this.inner as unknown as {
      special_tokens?: readonly string[];
      model?: { unk_token?: string | null };
      id_to_token(id: number): string | undefined;
    };
    const texts = new Set(inner.special_tokens ?? this.specialTokenTexts);
    const unk = inner.model?.unk_token ?? undefined;
    // a lookup per streamed token: memoized by id (ids are checked against the size before)
    this.skipMemo ??= new Uint8Array(this.size);
    const memo = this.skipMemo;
    return (id) => {
      let known = memo[id]!;
      if (known === 0) {
        const token = inner.id_to_token(id) ?? unk;
        known = token !== undefined && texts.has(token) ? 1 : 2;
        memo[id] = known;
      }
      return known === 1;
    };
  }

  private checkId(id: number, where: string): void {
    checkTokenId(id, `${where}: token id`, this.size, this.source);
  }
}

/** `EncodeOptions.literalRanges`, validated; empty ones dropped. */
function checkRanges(ranges: readonly TextRange[] | undefined, length: number): TextRange[] {
  if (ranges === undefined) return [];
  if (!Array.isArray(ranges)) {
    throw new TokenizerInputError('encode: literalRanges must be a list of [start, end] ranges');
  }
  return ranges.filter((range, i) => {
    const [start, end] = Array.isArray(range) ? range : [];
    if (!Number.isInteger(start) || !Number.isInteger(end) || start! < 0 || start! > end! || end! > length) {
      throw new TokenizerInputError(
        `encode: literalRanges[${i}] must be [start, end] with integers 0 <= start <= end <= ${length} (the text's length), got ${JSON.stringify(range)}`,
      );
    }
    return start! < end!;
  });
}

/**
 * Builds a `Tokenizer` from tokenizer files already in memory (see `readTokenizerFiles`), with
 * `@huggingface/tokenizers`, the library transformers.js wraps (no network; chat templates render
 * with `@huggingface/jinja`, given the variables transformers.js's `apply_chat_template` gives).
 * Both tokenizer.json merge serializations load (`"a b"` strings and `["a", "b"]` pairs). Throws `TokenizerLoadError` for malformed files.
 *
 * @example
 * const tok = createTokenizer({ source: 'inline', tokenizerJson, tokenizerConfig: { eos_token: '</s>' } });
 * tok.encode('hello', { addSpecialTokens: false });
 */
export function createTokenizer(files: TokenizerFiles, options: TokenizerOptions = {}): Tokenizer {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new TokenizerInputError(`options: expected an object, got ${JSON.stringify(options)}`);
  const unknown = unknownFieldMessage(
    options,
    TOKENIZER_OPTIONS,
    'an option of loadTokenizer / createTokenizer',
  );
  if (unknown) throw new TokenizerInputError(unknown);
  const { eosIds, chatTemplate } = options;
  if (eosIds !== undefined && !Array.isArray(eosIds))
    throw new TokenizerInputError(
      `eosIds: must be an array of token ids (e.g. [2]), got ${shownValue(eosIds)}`,
    );
  if (chatTemplate !== undefined && typeof chatTemplate !== 'string')
    throw new TokenizerInputError(
      `chatTemplate: must be a jinja template or the name of one of tokenizer_config.json's named templates (a string), got ${shownValue(chatTemplate)}`,
    );
  return new HfTokenizer(files, options);
}
