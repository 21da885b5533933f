import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sharedPath } from '@implicit-it/testkit';
import { describeJsdoc } from '@implicit-it/testkit/jsdoc';
import { loadTokenizer, type Tokenizer } from '../src/index.js';

// Every export of the package carries a description and an @example (style.md), every @example in
// src/ type-checks against the package's own API, as a consumer would write it, and the values the
// examples state in comments (`tok.encode('Hello'); // [1, 15043] with Llama-2`) are the values they
// give, on the shared Llama-2 tokenizer.
const pkgDir = resolve(import.meta.dirname, '..');

const pkg = { pkgDir, name: '@implicit-it/tokenizers' };
// what the examples name without defining: a consumer's loaded tokenizer, a parsed tokenizer.json,
// the ids a model generated, a tokenizer directory
const prelude = `declare const tok: Tokenizer;
declare const tokenizerJson: JsonObject;
declare const generatedIds: number[];
declare const dir: string;
`;

const LLAMA2 = 'fixtures/tokenizers/llama2';
const llama2Dir = sharedPath(LLAMA2);

// the names the examples leave to the reader, as values: the Llama-2 tokenizer (loaded once, ~0.4 s),
// its tokenizer.json (parsed anew for each example: an example may change it), its directory, and ids
// a model could have generated with it
let loaded: Promise<{ tok: Tokenizer; json: string }> | undefined;
async function free() {
  loaded ??= (async () => ({
    tok: await loadTokenizer(llama2Dir),
    json: readFileSync(`${llama2Dir}/tokenizer.json`, 'utf8'),
  }))();
  const { tok, json } = await loaded;
  return {
    tok,
    tokenizerJson: JSON.parse(json),
    generatedIds: tok.encode('Sure! 🎉 Here it is.', { addSpecialTokens: false }),
    dir: llama2Dir,
  };
}

// a new export gets a description and an @example too
describeJsdoc({
  ...pkg,
  prelude,
  exports: 37,
  stated: {
    module: () => import('../src/index.js'),
    importer: (s) => import(s),
    free,
    // a consumer's tokenizer directory is the shared Llama-2 fixture
    rewrite: {
      "'./models/llama2'": JSON.stringify(llama2Dir),
      "'fixtures/llama2'": JSON.stringify(llama2Dir),
    },
    shared: [`${LLAMA2}/tokenizer.json`, `${LLAMA2}/tokenizer_config.json`],
    minimum: 29,
  },
});
