import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describeShared, SHARED_DIR, sharedPath } from '@implicit-it/testkit';
import { expect, it } from 'vitest';
import {
  buildDataset,
  concatMessages,
  encodeMessages,
  loadEncodingTokenizer,
  pythonStrip,
} from '../src/index.js';
import { missingModules, PYTHON } from './python-env.js';

const missing = await missingModules(['transformers']);
if (missing.length)
  console.warn(`[skip] Python parity: ${PYTHON} lacks transformers (set IMPLICIT_IT_PYTHON)`);

// The reference: transformers' own Llama-2 tokenizer in Python, on the full texts open-instruct builds.
describeShared(
  'token ids match transformers (Python) on real examples',
  ['fixtures/tokenizers/llama2/tokenizer.json', 'data/lima/lima_data.jsonl', 'data/mbpp/mbpp.jsonl'],
  () => {
    it.skipIf(missing.length > 0)('LIMA multi-turn and MBPP', { timeout: 120_000 }, async () => {
      const tok = await loadEncodingTokenizer(sharedPath('fixtures/tokenizers/llama2'));
      const lima = (await buildDataset({ recipe: 'lima', dataDir: join(SHARED_DIR, 'data') })).train.filter(
        (e) => e.messages.length > 2,
      );
      const mbpp = (await buildDataset({ recipe: 'mbpp', dataDir: join(SHARED_DIR, 'data') })).train.slice(
        0,
        100,
      );
      const examples = [...lima, ...mbpp];
      expect(lima).toHaveLength(30);
      const texts = examples.map((e) => pythonStrip(concatMessages(e.messages, tok.eosToken)));
      const run = spawnSync(
        PYTHON,
        [
          '-c',
          'import json,sys\nfrom transformers import AutoTokenizer\nt=AutoTokenizer.from_pretrained(sys.argv[1])\nprint(json.dumps(t(json.load(sys.stdin)).input_ids))',
          sharedPath('fixtures/tokenizers/llama2'),
        ],
        { input: JSON.stringify(texts), encoding: 'utf8', maxBuffer: 1 << 28 },
      );
      expect(run.status, run.stderr).toBe(0);
      const py = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as number[][];
      examples.forEach((e, i) => {
        expect(encodeMessages(e, tok, { maxSeqLength: 1 << 20 }).inputIds, e.id).toEqual(py[i]);
      });
    });
  },
);
