import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel } from '@implicit-it/runtime';

const { dir } = await createTinyModel({ seed: 1 });
console.log(dir);
const logs = [];
const model = await loadModel(dir, { log: (l) => logs.push(l) });
console.log(logs, model.info);
const [a] = await model.generate('Give me a recipe for tiramisu.', { maxNewTokens: 20 });
console.log(JSON.stringify(a.text), a.tokenIds, a.finishReason);
const [b] = await model.generate('Give me a recipe for tiramisu.', {
  maxNewTokens: 20,
  rules: 'hewitt2024',
  logprobs: 2,
  trace: true,
});
console.log(JSON.stringify(b.text), b.tokenIds, b.baseRanks, b.logprobs[0]);
const parts = [];
for await (const p of model.stream('Hello', { maxNewTokens: 10 })) parts.push(p.type);
console.log(parts.join(','));
const sc = await model.score([{ prompt: 'Hello', continuation: a.tokenIds.slice(0, 5) }], { ranks: true });
console.log(sc[0]);
