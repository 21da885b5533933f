import { TokenizerLoadError } from './errors.js';
import type { JsonObject, TokenizerFiles } from './files.js';
import { joinPath } from './join-path.js';
import { type ClassDefaults, specialTokenText } from './special-tokens.js';

/**
 * The Python fast tokenizers (transformers 4.x) whose `__init__` ends with `update_post_processor()`,
 * which replaces tokenizer.json's post-processor with a `TemplateProcessing` of `bos_token` (where
 * `add_bos_token`) and `eos_token` (where `add_eos_token`), whatever the file's did: by
 * `tokenizer_class` without its `Fast`, with the defaults of their `__init__` (`add_eos_token` is false
 * in all). GPT-NeoX's `add_bos_token` defaults to false, so its tokenizer adds no BOS unless the config
 * says so.
 */
const REBUILDING_CLASSES: Readonly<Record<string, { bos: string; eos: string; addBos: boolean }>> = {
  LlamaTokenizer: { bos: '<s>', eos: '</s>', addBos: true },
  CodeLlamaTokenizer: { bos: '<s>', eos: '</s>', addBos: true },
  GemmaTokenizer: { bos: '<bos>', eos: '<eos>', addBos: true },
  CohereTokenizer: { bos: '<BOS_TOKEN>', eos: '<|END_OF_TURN_TOKEN|>', addBos: true },
  GPTNeoXTokenizer: { bos: '<|endoftext|>', eos: '<|endoftext|>', addBos: false },
};

/** What a rebuilding class makes of a tokenizer directory (see `rebuildPostProcessor`). */
export interface RebuiltPostProcessor {
  /** The class's BOS and EOS where the files name none. */
  defaults: ClassDefaults;
  /** The post-processor to use in place of tokenizer.json's: `<bos> $A` or `$A`. */
  postProcessor: JsonObject;
  /** Whether encoding with special tokens puts the BOS first. */
  addBos: boolean;
  /** The EOS token encoding with special tokens appends (`add_eos_token`), if any. */
  appendEos: string | undefined;
}

/** The id tokenizer.json gives `token`: its added token of that content, else its vocabulary's. */
function jsonTokenId(json: JsonObject, token: string): number | undefined {
  const added = (json.added_tokens as { id: number; content: string }[] | undefined)?.find(
    (t) => t.content === token,
  );
  if (added !== undefined) return added.id;
  const vocab = (json.model as JsonObject).vocab;
  if (Array.isArray(vocab)) {
    const id = vocab.findIndex((entry) => Array.isArray(entry) && entry[0] === token);
    return id < 0 ? undefined : id;
  }
  const id = Object.hasOwn(vocab as JsonObject, token) ? (vocab as JsonObject)[token] : undefined;
  return typeof id === 'number' ? id : undefined;
}

/**
 * For a `tokenizer_class` that rebuilds its post-processor when Python loads it (see
 * `REBUILDING_CLASSES`; transformers 4.x `LlamaTokenizerFast.__init__`: `self._add_bos_token =
 * add_bos_token; self._add_eos_token = add_eos_token; self.update_post_processor()`, and the same in
 * CodeLlama's, Gemma's, Cohere's and GPT-NeoX's), the post-processor it builds, as
 * `update_post_processor` does: `bos_token` and `eos_token` as the files name them (the class's
 * defaults where they name none), `add_bos_token` and `add_eos_token` from tokenizer_config.json (the
 * class's defaults where it leaves them out; null is false, as Python's None). Where a flag is on and
 * its token is null, Python raises `ValueError("add_bos_token = True but bos_token = None")`; this
 * throws a `TokenizerLoadError` naming the file and the fix. undefined for any other class, whose
 * Python tokenizer keeps tokenizer.json's post-processor.
 *
 * The EOS is left out of the returned post-processor and appended by `encode` (`appendEos`): the ids
 * are the same, and the legacy-false encoding counts the ids the post-processor puts before the text
 * as all it adds.
 */
export function rebuildPostProcessor(files: TokenizerFiles): RebuiltPostProcessor | undefined {
  const config = files.tokenizerConfig;
  const className = String(config?.tokenizer_class ?? '').replace(/Fast$/, '');
  const own = Object.hasOwn(REBUILDING_CLASSES, className) ? REBUILDING_CLASSES[className] : undefined;
  if (own === undefined) return undefined;
  const configFile = joinPath(files.source, 'tokenizer_config.json');
  const flag = (key: 'add_bos_token' | 'add_eos_token', fallback: boolean): boolean => {
    const value = config?.[key];
    if (value === undefined) return fallback;
    if (value === null || typeof value === 'boolean') return value === true;
    throw new TokenizerLoadError(
      'tokenizers.malformed_file',
      configFile,
      `must be true or false, found ${JSON.stringify(value)}`,
      { field: key },
    );
  };
  const addBos = flag('add_bos_token', own.addBos);
  const addEos = flag('add_eos_token', false);
  const token = (role: 'bos' | 'eos', on: boolean): { text: string; id: number } | undefined => {
    const key = `${role}_token`;
    const flagKey = `add_${role}_token`;
    if (!on) return undefined;
    const named = specialTokenText(files, key);
    const upper = role.toUpperCase();
    if (named?.token === null) {
      const why =
        config?.[flagKey] === true ? `${flagKey} is true` : `${flagKey} is true by default for ${className}`;
      throw new TokenizerLoadError(
        'tokenizers.malformed_file',
        joinPath(files.source, named.file),
        `is null, and ${className} adds the ${upper} token (${why}): Python's transformers refuses to ` +
          `load it ("${flagKey} = True but ${key} = None"); name the ${upper} token in ${key}, or set ` +
          `${flagKey} to false in tokenizer_config.json`,
        { field: key },
      );
    }
    const text = named?.token ?? own[role];
    const id = jsonTokenId(files.tokenizerJson, text);
    if (id === undefined) {
      throw new TokenizerLoadError(
        'tokenizers.malformed_file',
        named === undefined ? configFile : joinPath(files.source, named.file),
        named === undefined
          ? `names no ${upper} token, and ${className}'s default ${JSON.stringify(text)} that ${flagKey} ` +
              `adds is not a token of tokenizer.json; name the ${upper} token in ${key}, or set ${flagKey} to false`
          : `names ${JSON.stringify(text)}, which is not a token of tokenizer.json; fix the field or set ${flagKey} to false`,
        { field: key },
      );
    }
    return { text, id };
  };
  const bos = token('bos', addBos);
  const appendEos = token('eos', addEos)?.text;
  const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const lead = (typeId: number) =>
    bos === undefined ? [] : [{ SpecialToken: { id: bos.text, type_id: typeId } }];
  return {
    defaults: { className, bos: own.bos, eos: own.eos },
    postProcessor: {
      type: 'TemplateProcessing',
      single: [...lead(0), seq('A', 0)],
      pair: [...lead(0), seq('A', 0), ...lead(1), seq('B', 1)],
      special_tokens:
        bos === undefined ? {} : { [bos.text]: { id: bos.text, ids: [bos.id], tokens: [bos.text] } },
    },
    addBos,
    appendEos,
  };
}
