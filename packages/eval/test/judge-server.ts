import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small OpenAI-compatible judge server for tests, on 127.0.0.1 only: POST /v1/chat/completions
 * answers with one token and real `top_logprobs`, deterministically. It reads the two answers from
 * the prompt and prefers the longer one: P(first) : P(second) : P("The") =
 * 0.98 (L1 + 1) / S : 0.98 (L2 + 1) / S : 0.02 with S = L1 + L2 + 2.
 * With `model`, the answer's log-probabilities come from that model instead (e.g. a modelkit model).
 * Markers in the request text change its behaviour: `[no-logprobs]` (no logprobs field), `[flaky]`
 * (503 on the first attempt), `[rate]` (429 with retry-after-ms on the first attempt), `[garbage]`
 * (answers "The" without m or M among the top logprobs), `[too-long]` (400, as a server refuses a
 * prompt longer than its model's context).
 */
export interface JudgeServer {
  baseURL: string;
  /** Completed chat-completion requests (200 answers). */
  served: number;
  /** All requests, errors included. */
  received: number;
  close(): Promise<void>;
}

const MAX_BODY = 4 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A judge model: the log-probabilities of its first answer token, best first. */
export type JudgeModel = (
  messages: { role: string; content: string }[],
) => { token: string; logprob: number }[];

export async function startJudgeServer(
  options: { delayMs?: number; apiKey?: string; model?: JudgeModel } = {},
): Promise<JudgeServer> {
  const attempts = new Map<string, number>();
  const state = { served: 0, received: 0 };
  const server: Server = createServer(async (req, res) => {
    state.received++;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions')
      return send(404, { error: { message: 'not found' } });
    if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return send(401, { error: { message: 'bad key' } });
    }
    const text = await readBody(req);
    if (text === undefined) return send(413, { error: { message: 'body too large' } });
    const body = JSON.parse(text) as {
      model: string;
      messages: { role: string; content: string }[];
      max_tokens: number;
      logprobs: boolean;
      top_logprobs: number;
    };
    if (body.max_tokens !== 1 || body.logprobs !== true || !(body.top_logprobs >= 2)) {
      return send(400, { error: { message: 'expected max_tokens 1, logprobs true, top_logprobs >= 2' } });
    }
    const user = body.messages.find((m) => m.role === 'user')!.content;
    const n = (attempts.get(user) ?? 0) + 1;
    attempts.set(user, n);
    if (user.includes('[too-long]'))
      return send(400, { error: { message: "the prompt is longer than the model's context" } });
    if (user.includes('[flaky]') && n === 1) return send(503, { error: { message: 'try again' } });
    if (user.includes('[rate]') && n === 1)
      return send(429, { error: { message: 'slow down' } }, { 'retry-after-ms': '5' });
    const answers = JSON.parse(
      user.slice(user.indexOf('## Answers\n\n') + 12, user.indexOf('\n\n## What to do')),
    ) as { assistant: string; answer: string }[];
    const [l1, l2] = answers.map((a) => [...a.answer].length) as [number, number];
    const s = l1 + l2 + 2;
    let top = [
      { token: 'm', logprob: Math.log((0.98 * (l1 + 1)) / s) },
      { token: 'M', logprob: Math.log((0.98 * (l2 + 1)) / s) },
      { token: 'The', logprob: Math.log(0.02) },
    ];
    if (user.includes('[garbage]'))
      top = [
        { token: 'The', logprob: -0.01 },
        { token: 'Both', logprob: -5 },
      ];
    if (options.model) top = options.model(body.messages);
    top.sort((a, b) => b.logprob - a.logprob);
    top = top.slice(0, body.top_logprobs);
    const answer = top[0]!.token;
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    state.served++;
    send(200, {
      id: `cmpl-${state.served}`,
      object: 'chat.completion',
      model: body.model,
      choices: [
        {
          index: 0,
          finish_reason: 'length',
          message: { role: 'assistant', content: answer },
          logprobs: user.includes('[no-logprobs]')
            ? null
            : { content: [{ token: answer, logprob: top[0]!.logprob, top_logprobs: top }] },
        },
      ],
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    get served() {
      return state.served;
    },
    get received() {
      return state.received;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
