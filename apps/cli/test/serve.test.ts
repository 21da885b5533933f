import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createTinyModel, SLOW_PREFILL_MODEL } from '@implicit-it/modelkit/test';
import { missingShared } from '@implicit-it/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reachableUrls } from '../src/commands/serve.js';
import { hostTag } from '../src/default-model.js';
import { run, startServe, stop, tinyModelDir, waitFor } from './helpers.js';

describe('serve', () => {
  let model: string;
  beforeAll(async () => {
    model = await tinyModelDir();
  });

  it('serves the API and the playground on loopback, with an API key, and stops on Ctrl-C (exit 0)', async () => {
    const s = startServe([
      '--model',
      `tiny=${model}`,
      '--api-key',
      'sk-cli',
      '--api-key',
      'sk-cli-old', // a key being rotated out: both are taken
      '--rules',
      'eos-uniform',
      '--cors',
      'http://localhost:3000',
      '--json',
      '--log-requests',
    ]);
    let stdout = '';
    s.child.stdout.on('data', (d) => {
      stdout += d;
    });
    const url = await s.url;
    try {
      await new Promise((r) => setTimeout(r, 100));
      expect(JSON.parse(stdout)).toEqual({
        url,
        models: ['tiny'],
        rules: 'eos-uniform',
        playground: `${url}/`,
        apiKey: true,
      });
      expect(s.stderr()).toMatch(/models:\s+tiny/);
      expect(s.stderr()).toMatch(/rules:\s+eos-uniform/);
      expect(s.stderr()).toMatch(/onnxruntime:\s+in a worker thread per model/);
      const health = await fetch(`${url}/health`);
      expect(await health.json()).toMatchObject({ status: 'ok', models: ['tiny'] });
      const refused = await fetch(`${url}/v1/models`);
      expect(refused.status).toBe(401);
      // --log-requests: a line per request, with its request id and the peer's address
      await waitFor(() => s.stderr().includes('GET /v1/models 401 '));
      expect(s.stderr()).toMatch(
        new RegExp(
          `\\[implicit-it api\\] GET /v1/models 401 \\d+ ms ${refused.headers.get('X-Request-Id')} from 127\\.0\\.0\\.1\\n`,
        ),
      );
      // a web page on the allowed origin: its preflight is answered without the key
      const preflight = await fetch(`${url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
      expect(s.stderr()).toMatch(/CORS:\s+http:\/\/localhost:3000/);
      expect(s.stderr()).toMatch(/API key:\s+required \(Authorization: Bearer \.\.\.; any of 2 keys\)/);
      const old = await fetch(`${url}/v1/models`, { headers: { Authorization: 'Bearer sk-cli-old' } });
      expect(old.status).toBe(200);
      const headers = { Authorization: 'Bearer sk-cli', 'Content-Type': 'application/json' };
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5 }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { usage: { completion_tokens: number } };
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
      const page = await fetch(`${url}/`);
      expect(await page.text()).toContain('implicit-it playground');
    } finally {
      expect(await stop(s.child, s.exited)).toBe(0);
    }
  });

  it('with --shutdown-grace 0, stops on Ctrl-C in the middle of generations without an error in its log', async () => {
    const s = startServe(['--model', `tiny=${model}`, '--shutdown-grace', '0']);
    const url = await s.url;
    const body = (stream: boolean) =>
      JSON.stringify({
        model: 'tiny',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 400,
        logit_bias: { 2: -100 }, // no end-of-sequence: both run until the server stops
        rules: false,
        stream,
      });
    const post = (stream: boolean) =>
      fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: body(stream),
      });
    const plain = post(false).catch((e: Error) => e);
    const streamed = await post(true);
    const reader = streamed.body!.getReader();
    await reader.read(); // generation is under way
    expect(await stop(s.child, s.exited)).toBe(0);
    await reader.read().catch(() => {});
    await plain;
    expect(s.stderr()).toContain('stopping...');
    // what the stop cut is said: the generations (or a request still queued), ended without a grace
    expect(s.stderr()).toMatch(
      /\nstopped: (\d generations?|\d generations? and 1 queued request|1 queued request) ended unfinished at once \(--shutdown-grace 0\) \(their clients got 503 server_shutting_down\)\n/,
    );
    expect(s.stderr()).not.toMatch(/stream failed|disposed|Error/);
  });

  it('on Ctrl-C, requests in flight finish (--shutdown-grace, default 10 s); a second Ctrl-C stops at once', async () => {
    // a streamed generation without end-of-sequence, under way once its first chunk is read
    const streaming = async (url: string, maxTokens: number) => {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny',
          messages: [{ role: 'user', content: 'Hi' }],
          max_tokens: maxTokens,
          logit_bias: { 2: -100 },
          rules: false,
          stream: true,
        }),
      });
      const reader = res.body!.getReader();
      await reader.read();
      return reader;
    };
    // a model whose 300 tokens take long enough (the tiny model's can end, on a busy machine,
    // between the first chunk read here and the signal reaching the server)
    const { dir: larger } = await createTinyModel(SLOW_PREFILL_MODEL);
    const s = startServe(['--model', `tiny=${larger}`]);
    const reader = await streaming(await s.url, 300);
    s.child.kill('SIGINT');
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain('"finish_reason":"length"');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(await s.exited).toBe(0);
    expect(s.stderr()).toContain(
      'stopping: 1 generation running; they get up to 10 s to finish (new requests get 503; Ctrl-C again stops now)',
    );
    expect(s.stderr().trimEnd().endsWith('\nstopped')).toBe(true); // it finished within the grace

    // a second signal does not wait: the larger model's 2,000-token stream lasts seconds, so it is
    // still running when the second signal lands
    const again = startServe(['--model', `tiny=${larger}`, '--shutdown-grace', '600']);
    const longReader = await streaming(await again.url, 5000);
    again.child.kill('SIGTERM');
    await waitFor(() => again.stderr().includes('stopping'));
    const t0 = Date.now();
    again.child.kill('SIGINT'); // the other signal, as Ctrl-C after a SIGTERM
    expect(await again.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(again.stderr().match(/stopping/g)).toHaveLength(1); // the second signal forces, said once stopped
    expect(again.stderr()).toContain(
      'stopped: 1 generation ended unfinished by the second signal (their clients got 503 server_shutting_down)',
    );
    // cut short: the stream ends with the shutdown's error event, without a finish or [DONE]
    const expectCut = async (reader: typeof longReader) => {
      let rest = '';
      for (;;) {
        const chunk = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (chunk.done) break;
        rest += new TextDecoder().decode(chunk.value);
      }
      expect(rest).toContain('"code":"server_shutting_down"');
      expect(rest).not.toMatch(/"finish_reason":"|\[DONE\]/);
    };
    await expectCut(longReader);

    // the two signals back to back: the second is not lost, nor does it find no handler
    const third = startServe(['--model', `tiny=${larger}`, '--shutdown-grace', '600']);
    const thirdReader = await streaming(await third.url, 5000);
    const t1 = Date.now();
    third.child.kill('SIGTERM');
    third.child.kill('SIGINT');
    expect(await third.exited).toBe(0);
    expect(Date.now() - t1).toBeLessThan(5000);
    await expectCut(thirdReader);
  });

  it('names an 8-bit model whose concurrent requests move each other, unless --concurrency 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'implicit-it-cli-serve-q8-'));
    try {
      expect((await run(['model', 'create', '--preset', 'tiny', '--out', dir, '--dtypes', 'q8'])).code).toBe(
        0,
      );
      // (the second also on the server's thread: the note reads the model's info either way)
      for (const [flags, noted] of [
        [[], true],
        [['--concurrency', '1', '--no-worker'], false],
      ] as const) {
        const s = startServe(['--model', `q8=${dir}`, '--dtype', 'q8', ...flags]);
        await s.url;
        try {
          await new Promise((r) => setTimeout(r, 100));
          const note =
            /note:\s+q8 is an 8-bit graph rounding activations per batch: .*\(--concurrency 1 gives each its own\)/;
          expect(note.test(s.stderr())).toBe(noted);
          expect(s.stderr()).toMatch(
            noted ? /onnxruntime:\s+in a worker thread/ : /onnxruntime:\s+on this thread \(--no-worker\)/,
          );
        } finally {
          expect(await stop(s.child, s.exited)).toBe(0);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--help's curl example runs as written against the serve example before it", async () => {
    // commands as a shell reads them: lines continued with a backslash joined, and the body quoted
    // over two lines kept whole (a newline inside JSON is whitespace)
    const help = (await run(['serve', '--help'])).stdout.replace(/ *\\\n\s*/g, ' ');
    const curl = /\$ curl http:\/\/127\.0\.0\.1:(\d+)(\/v1\/\S+) .*?-d '([^']+)'/.exec(help);
    expect(curl, help).not.toBeNull();
    // the serve example before it (comment lines between them are skipped)
    const before = help
      .slice(0, curl!.index)
      .split('\n')
      .filter((l) => l.trim().startsWith('$ '));
    const serveLine = /\$ implicit-it serve --model (\S+) --port (\d+)(.*)$/.exec(before.at(-1)!);
    expect(serveLine, before.at(-1)).not.toBeNull();
    const [, port, path, body] = curl!;
    const [, dir, servePort, rest] = serveLine!;
    expect(port).toBe(servePort);
    // the model the example serves, here in a directory of the example's name
    const tmp = mkdtempSync(join(tmpdir(), 'implicit-it-serve-example-'));
    const named = join(tmp, basename(dir!));
    cpSync(model, named, { recursive: true });
    const s = startServe(['--model', named, ...rest!.trim().split(/\s+/)]);
    try {
      const url = await s.url;
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: body!,
      });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as { object: string }).object).toBe('chat.completion');
    } finally {
      expect(await stop(s.child, s.exited)).toBe(0);
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('on --host 0.0.0.0, prints and gives (--json) the loopback URL and the network addresses, all of them reachable', async () => {
    const s = startServe(['--model', `tiny=${model}`, '--host', '0.0.0.0', '--json', '--no-playground']);
    let stdout = '';
    s.child.stdout.on('data', (d) => {
      stdout += d;
    });
    const url = await s.url;
    try {
      await waitFor(() => stdout.endsWith('\n'));
      const port = new URL(url).port;
      const printed = JSON.parse(stdout) as { url: string; listening: string; network: string[] };
      expect(printed).toMatchObject({ url, listening: `http://0.0.0.0:${port}`, playground: null });
      const ipv4 = Object.values(networkInterfaces())
        .flat()
        .filter((i) => i && !i.internal && i.family === 'IPv4');
      expect(printed.network).toHaveLength(new Set(ipv4.map((i) => i!.address)).size);
      for (const at of [url, ...printed.network])
        expect(await (await fetch(`${at}/health`)).json()).toMatchObject({ status: 'ok' });
      expect(s.stderr()).toContain(
        `listening on http://0.0.0.0:${port} (every interface): ${url} from this machine\n`,
      );
      expect(s.stderr()).toMatch(
        printed.network.length > 0
          ? `  network:     ${printed.network.join(', ')}\n`
          : '  network:     no other interface has an address\n',
      );
    } finally {
      expect(await stop(s.child, s.exited)).toBe(0);
    }
  });

  it('a port in use is an error that says what to do (exit 1)', async () => {
    const s = startServe(['--model', `tiny=${model}`]);
    const url = await s.url;
    try {
      const port = new URL(url).port;
      const r = await run(['serve', '--model', `tiny=${model}`, '--port', port, '--host', '127.0.0.1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port} (EADDRINUSE`);
      expect(r.stderr).toContain('pick another with --port N (0 picks a free one)');
    } finally {
      await stop(s.child, s.exited);
    }
  });

  it('refuses a --host that does not resolve with exit 2, naming the flag, before loading a model', async () => {
    const r = await run(['serve', '--model', '/nonexistent/model', '--host', '999.1.1.1', '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: --host: 999.1.1.1 is neither an IP address nor a host name this machine resolves (ENOTFOUND)\n' +
        'hint: give an address of this machine: 127.0.0.1 (this machine only, the default), 0.0.0.0 (every interface), or its IP\n',
    );
  });

  it('refuses an empty API key and a bad --cors with exit 2, naming them, before loading a model', async () => {
    const args = ['serve', '--model', '/nonexistent/model', '--port', '0'];
    const empty = await run([...args, '--api-key', '']);
    expect([empty.code, empty.stderr]).toEqual([
      2,
      'error: --api-key is empty: the server would take requests without a key\n' +
        'hint: give the key (an unset shell variable expands to nothing), or leave --api-key out to serve without one\n',
    ]);
    const fromEnv = await run(args, { env: { IMPLICIT_IT_API_KEY: ' ' } });
    expect([fromEnv.code, fromEnv.stderr]).toEqual([
      2,
      'error: IMPLICIT_IT_API_KEY is empty: the server would take requests without a key\n' +
        'hint: set IMPLICIT_IT_API_KEY to the key, or unset it to serve without one\n',
    ]);
    // a key read from a file with its newline: no client could send it, every request would be a 401
    const newline = await run(args, { env: { IMPLICIT_IT_API_KEY: 'sk-local\n' } });
    expect([newline.code, newline.stderr]).toEqual([
      2,
      'error: IMPLICIT_IT_API_KEY begins or ends with whitespace, which no client can send (HTTP strips it from the Authorization header)\n' +
        'hint: remove it: a key read from a file keeps its final newline (printf %s KEY writes none, echo does)\n',
    ]);
    const padded = await run([...args, '--api-key', 'sk-new', '--api-key', ' sk-old']);
    expect(padded.stderr).toBe(
      'error: --api-key begins or ends with whitespace, which no client can send (HTTP strips it from the Authorization header)\n' +
        'hint: remove it: a key read from a file keeps its final newline (printf %s KEY writes none, echo does)\n',
    );
    const cors = await run([...args, '--cors', 'bogus']);
    expect([cors.code, cors.stderr]).toEqual([
      2,
      'error: --cors: "bogus" is not an origin; expected scheme://host[:port] such as http://localhost:3000, or \'*\'\n' +
        'hint: give one or more origins, comma-separated (--cors http://localhost:3000), or * for any\n',
    ]);
  });

  it('--stream-stall-timeout: a stream whose client stops reading is stopped and its slots freed; --max-choices; --stream-keep-alive; --body-limit', async () => {
    const s = startServe([
      '--model',
      `tiny=${model}`,
      '--stream-stall-timeout',
      '1',
      '--stream-keep-alive',
      '1',
      '--concurrency',
      '8',
      '--max-choices',
      '8',
      '--body-limit',
      '0.01',
    ]);
    const url = await s.url;
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.on('error', () => {});
    try {
      // 8 long choices with 20 alternatives a token: more than the socket buffers hold
      const body = JSON.stringify({
        model: 'tiny',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 480,
        n: 8,
        stream: true,
        logprobs: true,
        top_logprobs: 20,
        logit_bias: { 2: -100 },
        rules: false,
      });
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      socket.pause(); // reads nothing
      expect(s.stderr()).toMatch(
        /limits:\s+8 generations a request \(prompts × n\), bodies up to 0\.01 MiB \(--body-limit\); a stream stopped after 1 s without its client reading/,
      );
      expect(s.stderr()).toContain(
        'keep-alive:  a stream waiting 1 s for the model (queued, a long prefill) gets its 200 and a ": keep-alive" comment, then one each 1 s',
      );
      // a stream queued behind the stalled one, which holds every slot: after 1 s its 200 and a
      // comment, then, once the stalled one is stopped, its answer
      const active = async () => ((await (await fetch(`${url}/health`)).json()) as { active: number }).active;
      for (let i = 0; i < 600 && (await active()) < 8; i++) await new Promise((r) => setTimeout(r, 50));
      const queued = fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny',
          messages: [{ role: 'user', content: 'Hi' }],
          max_tokens: 2,
          stream: true,
        }),
      }).then(async (res) => ({ status: res.status, text: await res.text() }));
      // --body-limit 0.01: 10,486 bytes; a 413 says so, and how to raise it
      const big = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny',
          prompt: [Array.from({ length: 4000 }, (_, i) => 3 + i)],
          max_tokens: 1,
        }),
      });
      expect(big.status).toBe(413);
      expect(((await big.json()) as { error: { message: string } }).error.message).toBe(
        "The request body is larger than this server's limit of 10486 bytes (10.24 KiB): send less in one request (fewer prompts), or have the limit raised (implicit-it serve --body-limit MiB; createApp's bodyLimit option).",
      );
      // --max-choices: 9 generations are one too many
      const many = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: ['a', 'b', 'c'], n: 3, max_tokens: 1 }),
      });
      expect(many.status).toBe(400);
      expect(((await many.json()) as { error: { message: string } }).error.message).toMatch(
        /^n: 3 prompts × n 3: 9 generations, above this server's limit of 8 a request/,
      );
      await waitFor(() => s.stderr().includes('stream stalled ('), 60_000);
      expect(s.stderr()).toMatch(
        /stream stalled \(req_\w+\): its client accepted no data for 1 s; its generation is stopped and its slots freed/,
      );
      const idle = async () =>
        ((await (await fetch(`${url}/health`)).json()) as { active: number }).active === 0;
      let free = await idle();
      for (let i = 0; i < 100 && !free; i++) {
        await new Promise((r) => setTimeout(r, 50));
        free = await idle();
      }
      expect(free).toBe(true);
      const { status, text } = await queued;
      expect(status).toBe(200);
      expect(text).toMatch(/^: keep-alive\n\n(: keep-alive\n\n)*data: \{/);
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    } finally {
      socket.destroy();
      expect(await stop(s.child, s.exited)).toBe(0);
    }
  });

  it('--no-fallback: without --model and with the hub unreachable, exits 3 instead of serving the random stand-in', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'implicit-it-nofallback-'));
    try {
      const env = {
        IMPLICIT_IT_CACHE: cache,
        HF_HUB_OFFLINE: undefined,
        IMPLICIT_IT_OFFLINE: undefined,
        HF_ENDPOINT: 'http://127.0.0.1:9', // nothing listens on the discard port
      };
      const r = await run(['serve', '--no-fallback', '--port', '0'], { env, timeout: 60_000 });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(
        'the Hugging Face hub (http://127.0.0.1:9) is not reachable, and --no-fallback forbids the random-weights stand-in',
      );
      expect(r.stderr).not.toMatch(/creating the random-weights stand-in|listening on/);
      expect(existsSync(join(cache, 'models', 'smollm2-135m-random'))).toBe(false);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('refuses bad options with exit 2', async () => {
    for (const limit of ['0', '-1', '257', 'lots']) {
      const r = await run(['serve', '--model', model, '--body-limit', limit]);
      expect([r.code, r.stderr]).toEqual([
        2,
        `error: option '--body-limit <MiB>' argument '${limit}' is invalid. expected a number in (0, 256], got "${limit}"\n(add --help for usage and examples)\n`,
      ]);
    }
    expect((await run(['serve', '--model', model, '--port', '70000'])).code).toBe(2);
    expect((await run(['serve', '--model', model, '--rules', 'bogus'])).code).toBe(2);
    expect((await run(['serve', '--model', `a=${model}`, '--model', `a=${model}`, '--port', '0'])).code).toBe(
      2,
    );
  });
});

describe('the embedded default model (offline)', () => {
  const cache = mkdtempSync(join(tmpdir(), 'implicit-it-default-'));
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  it('creates the random-weights SmolLM2-135M stand-in once, says so, and serves it by default', async () => {
    const env = { IMPLICIT_IT_CACHE: cache };
    // what a run stopped while writing it leaves (its process gone), and one being written now
    const modelsDir = join(cache, 'models');
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const abandoned = join(modelsDir, `smollm2-135m-random.tmp-${hostTag()}-${gone}`);
    const writing = join(modelsDir, `smollm2-135m-random.tmp-${hostTag()}-${process.pid}`);
    for (const dir of [abandoned, writing]) {
      mkdirSync(join(dir, 'onnx'), { recursive: true });
      writeFileSync(join(dir, 'onnx', 'model.onnx'), 'part of a graph');
    }
    // with ../shared here, a stand-in left by a run without it (modelkit's toy tokenizer) is written again
    const withShared = !missingShared('fixtures/tokenizers/smollm/tokenizer.json');
    const dir = join(cache, 'models', 'smollm2-135m-random');
    if (withShared) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'implicit-it-random-model.json'),
        JSON.stringify({ preset: 'smollm2-135m', seed: 0, tokenizer: 'modelkit tiny', weights: 'random' }),
      );
    }
    const first = await run(['generate', '--offline', '-n', '3', '--json', 'Hi'], { env, timeout: 240_000 });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(
      withShared
        ? /writing the random-weights stand-in model in .* again: it has modelkit's tiny tokenizer \(written while \.\.\/shared was missing\), and SmolLM2's is now in /
        : /creating the random-weights stand-in model/,
    );
    // the abandoned one was kept for good (up to 540 MB a stopped run)
    expect(first.stderr).toContain(`removed ${abandoned}, left unfinished by a stopped run\n`);
    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(join(writing, 'onnx', 'model.onnx'))).toBe(true);
    expect(first.stderr).toMatch(/NOTICE: .*RANDOM weights/);
    expect(first.stderr).toMatch(/only the mechanics .* are real/);
    const out = JSON.parse(first.stdout);
    expect(out.model).toBe('smollm2-135m-random');
    expect(out.usage.completionTokens).toBeGreaterThan(0);
    expect(existsSync(join(dir, 'onnx', 'model.onnx'))).toBe(true);
    // SmolLM2-135M's shape; with ../shared it has the real SmolLM2 tokenizer (49152 ids), else modelkit's
    const inspect = JSON.parse((await run(['model', 'inspect', dir, '--json'])).stdout);
    expect(inspect.config).toMatchObject({ layers: 30, hiddenSize: 576, vocabSize: 49152 });
    if (withShared) expect(inspect.tokenizer.vocabularySize).toBe(49152);

    // `pnpm start` is `implicit-it serve` without --model: the same default, reused (not rebuilt)
    const s = startServe(['--offline'], env, 120_000);
    const url = await s.url;
    try {
      expect(s.stderr()).not.toMatch(/creating the random-weights|writing the random-weights/);
      expect(s.stderr()).toMatch(/NOTICE: .*RANDOM weights/);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data[0].id).toBe('smollm2-135m-random');
      const page = await (await fetch(`${url}/`)).text();
      expect(page).toMatch(/id="notice">smollm2-135m-random has RANDOM weights/);
    } finally {
      expect(await stop(s.child, s.exited)).toBe(0);
    }
  }, 400_000); // about 20 s alone; writing 540 MB and loading it twice crawls on a busy machine
});

describe('reachableUrls', () => {
  const eth0 = [
    { address: '10.1.2.3', family: 'IPv4', internal: false },
    { address: 'fe80::1', family: 'IPv6', internal: false },
    { address: '2001:db8::5', family: 'IPv6', internal: false },
  ];
  const lo = [
    { address: '127.0.0.1', family: 'IPv4', internal: true },
    { address: '::1', family: 'IPv6', internal: true },
  ];
  const table = { lo, eth0, eth1: [{ address: '10.1.2.3', family: 'IPv4', internal: false }] } as never;

  it('on 0.0.0.0: loopback, and the IPv4 addresses of the other interfaces, once each', () => {
    expect(reachableUrls('http://0.0.0.0:8080', table)).toEqual({
      local: 'http://127.0.0.1:8080',
      network: ['http://10.1.2.3:8080'],
    });
  });

  it('on ::: IPv6 loopback, and IPv4 and global IPv6 addresses (link-local ones need a zone)', () => {
    expect(reachableUrls('http://[::]:8080', table)).toEqual({
      local: 'http://[::1]:8080',
      network: ['http://10.1.2.3:8080', 'http://[2001:db8::5]:8080'],
    });
  });

  it('on any other address: the URL itself', () => {
    for (const url of ['http://127.0.0.1:8080', 'http://10.1.2.3:80', 'http://[::1]:3000'])
      expect(reachableUrls(url, table)).toEqual({ local: url, network: [] });
  });
});
