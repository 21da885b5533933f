// `node --test scripts/changelog.test.mjs` (the root `pnpm test` runs it): the changelog lines of
// .changeset/changelog.cjs, the module .changeset/config.json names for `changeset version`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';

const changesetDir = new URL('../.changeset/', import.meta.url);
const config = JSON.parse(readFileSync(new URL('config.json', changesetDir), 'utf8'));
const { getReleaseLine, getDependencyReleaseLine } = createRequire(changesetDir)(config.changelog).default;

const changeset = (id, commit, summary = 'Something.') => ({ id, commit, summary, releases: [] });
const dependency = (name) => ({
  name,
  newVersion: '0.1.0',
  type: 'minor',
  oldVersion: '0.0.0',
  changesets: [],
});

test('a dependent whose dependencies several changesets updated says so once, naming each commit once', async () => {
  const line = await getDependencyReleaseLine(
    [
      changeset('a', 'ebbdaed0123456789'),
      changeset('b', 'ebbdaed0123456789'),
      changeset('c', '1234567abcdef'),
      changeset('d', undefined),
    ],
    [dependency('@implicit-it/rules'), dependency('@implicit-it/tokenizers')],
    { repo: '' },
  );
  assert.equal(
    line,
    '- Updated dependencies [ebbdaed, 1234567]\n  - @implicit-it/rules@0.1.0\n  - @implicit-it/tokenizers@0.1.0',
  );
  assert.equal(
    await getDependencyReleaseLine([changeset('a', undefined)], [dependency('x')], {}),
    '- Updated dependencies\n  - x@0.1.0',
  );
  assert.equal(await getDependencyReleaseLine([changeset('a', 'ebbdaed')], [], {}), '');
});

test("a release line is the changeset's commit and summary, later lines indented under it (as changesets' default)", async () => {
  const line = await getReleaseLine(
    changeset('a', 'ebbdaed0123', 'First line.  \n\n- a point\n  more'),
    'minor',
    {},
  );
  assert.equal(line, '- ebbdaed: First line.\n  \n  - a point\n    more');
  assert.equal(await getReleaseLine(changeset('a', undefined, 'Only.'), 'patch', {}), '- Only.');
});
