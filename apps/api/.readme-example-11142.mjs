import { createApp } from '@implicit-it/api';
import { createTinyModel } from '@implicit-it/modelkit/test';
import { loadModel } from '@implicit-it/runtime';

// any Hugging Face ONNX model directory works; here a tiny random one (its answers are noise)
const { dir } = await createTinyModel();
const model = await loadModel(dir, { log: () => {} });
const app = createApp({ models: [{ id: 'tiny', model }], rules: 'hewitt2024' });

const res = await app.request('/v1/chat/completions', {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({
    model: 'tiny',
    messages: [{ role: 'user', content: 'Give me a recipe for tiramisu.' }],
    max_tokens: 16,
    rules: 'eos-uniform-diversity',
  }),
});
const body = await res.json();
console.log(res.status, body.object, body.usage.completion_tokens > 0); // 200 chat.completion true
await model.dispose();
