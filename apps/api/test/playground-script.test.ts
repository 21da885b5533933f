import { runInNewContext } from 'node:vm';
import { compileRules, type RuleSet, type RuleSpec, resolveRuleSpec } from '@implicit-it/rules';
import type { Model } from '@implicit-it/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, createApp } from '../src/index.js';
import { PLAYGROUND_SCRIPT } from '../src/playground/script.js';
import { json, tinyModel } from './helpers.js';

/** Just enough of a DOM element for the playground's script. */
class Element {
  id = '';
  value = '';
  checked = false;
  hidden = false;
  disabled = false;
  title = '';
  focused = false;
  /** Scrolling: each child is 20 px high, the box 100 px. */
  scrollTop = 0;
  clientHeight = 100;
  dataset: Record<string, string> = {};
  readonly children: Element[] = [];
  readonly listeners: Record<string, ((event?: unknown) => unknown)[]> = {};
  private readonly parts = new Map<string, Element>();
  private text = '';

  constructor(private readonly registry: Map<string, Element>) {}

  appendChild(child: Element) {
    this.children.push(child);
    if (child.id) this.registry.set(`#${child.id}`, child);
    for (const c of child.children) if (c.id) this.registry.set(`#${c.id}`, c);
  }
  /** Setting it drops the children, as in a DOM. */
  get textContent() {
    return this.text;
  }
  set textContent(text: string) {
    this.text = text;
    this.children.length = 0;
  }
  get scrollHeight() {
    return Math.max(this.clientHeight, 20 * this.children.length);
  }
  set scrollHeight(_: number) {}
  focus() {
    this.focused = true;
  }
  addEventListener(type: string, fn: (event?: unknown) => unknown) {
    this.listeners[type] = [...(this.listeners[type] ?? []), fn];
  }
  querySelector(sel: string): Element {
    if (!this.parts.has(sel)) this.parts.set(sel, new Element(this.registry));
    return this.parts.get(sel)!;
  }
  setAttribute() {}
}

/**
 * Runs the page's script as served by `app` on a stub DOM; returns its elements and the `rules` of
 * the requests a click on Generate sends.
 */
async function loadPage(app: ApiApp, respond?: (body: string, init: RequestInit) => Promise<Response>) {
  const html = await (await app.request('/')).text();
  const config = JSON.parse(html.match(/window\.PLAYGROUND = (.*);<\/script>/)![1]!);
  const elements = new Map<string, Element>();
  const document = {
    querySelector(sel: string) {
      if (!elements.has(sel)) elements.set(sel, new Element(elements));
      return elements.get(sel)!;
    },
    createElement: () => new Element(elements),
  };
  // the instruction the page's textarea starts with
  document.querySelector('#instruction').value = html.match(/<textarea id="instruction"[^>]*>([^<]*)</)![1]!;
  const sent: unknown[][] = [];
  let batch: unknown[] = [];
  const fetch = async (_url: string, init: RequestInit & { body: string }) => {
    batch.push(JSON.parse(init.body).rules);
    if (respond) return respond(init.body, init);
    throw new TypeError('Failed to fetch');
  };
  runInNewContext(PLAYGROUND_SCRIPT, {
    window: { PLAYGROUND: config },
    document,
    fetch,
    AbortController,
    TextDecoder,
    Error,
  });
  const el = (sel: string) => document.querySelector(sel);
  return {
    config,
    el,
    /** Ticks or unticks a rule's box as a click does. */
    set(rule: string, on: boolean) {
      const box = el(`#rule-${rule}`);
      box.checked = on;
      for (const fn of box.listeners.change ?? []) fn();
    },
    /** Clicks Generate; the rules of the two requests (base column, rules column). */
    async generate() {
      batch = [];
      await el('#generate').listeners.click![0]!();
      sent.push(batch);
      return batch;
    },
  };
}

describe("the playground's columns", () => {
  it('show the finish reason of a whole stream, and an error for a stream cut before it finished', async () => {
    const model = await tinyModel();
    const app = createApp({ models: [{ id: 'tiny', model }], log: () => {} });
    // the server's real stream, or the same with everything from the finish chunk on left out
    let cut = false;
    const respond = async (body: string) => {
      const res = await app.request('/v1/chat/completions', json(JSON.parse(body)));
      const text = await res.text();
      const kept = cut ? text.slice(0, text.indexOf('"finish_reason":"')).replace(/[^\n]*$/, '') : text;
      return new Response(kept, { status: res.status, headers: res.headers });
    };
    const page = await loadPage(app, respond);
    page.el('#model').value = 'tiny'; // the select's first option, as a browser sets it
    await page.generate();
    const meta = page.el('#col-rules').querySelector('.meta');
    expect(page.el('#col-rules').dataset.state).toBe('done');
    expect(meta.textContent).toMatch(/ tokens, finish: (stop|length) \| unshifted /);
    cut = true;
    await page.generate();
    expect(page.el('#col-rules').dataset.state).toBe('error');
    expect(meta.children.at(-1)!.textContent).toBe(
      'the stream ended before the reply finished (server stopped or connection lost)',
    );
  });
});

describe("the playground's rules column", () => {
  let model: Model;
  const server = (rules: RuleSpec | RuleSet) =>
    createApp({ models: [{ id: 'tiny', model }], log: () => {}, rules });

  beforeAll(async () => {
    model = await tinyModel();
  });

  it("sends the server's own rules (true) with the boxes as the server has them", async () => {
    const page = await loadPage(server('hewitt2024-prose'));
    for (const rule of ['eos', 'uniform', 'used']) expect(page.el(`#rule-${rule}`).checked).toBe(true);
    expect(page.el('#rule-start').checked).toBe(false);
    expect(page.el('#rules-name').textContent).toBe('hewitt2024-prose');
    expect(await page.generate()).toEqual([false, true]);
  });

  it("sends the server's rule set without the unticked rules, a ticked rule it lacks as the paper's", async () => {
    const app = server('hewitt2024-prose');
    const page = await loadPage(app);
    const prose = resolveRuleSpec('hewitt2024-prose');
    page.set('uniform', false);
    expect(page.el('#rules-name').textContent).toBe('hewitt2024-prose without uniform');
    const [, spec] = await page.generate();
    expect(spec).toEqual({ eos: prose.eos, used: prose.used });
    // the prose variants are kept: the EOS bonus held after the ramp, the penalty over the response
    expect(spec).toMatchObject({ eos: { afterRamp: 'hold' }, used: { scope: 'response' } });
    page.set('start', true);
    expect(page.el('#rules-name').textContent).toBe('hewitt2024-prose without uniform + start');
    expect((await page.generate())[1]).toEqual({ eos: prose.eos, used: prose.used, start: {} });
    // and the server takes what the page sends
    const res = await app.request(
      '/v1/chat/completions',
      json({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, rules: spec }),
    );
    expect(res.status).toBe(200);
    // every box unticked: no rules; ticked back as the server has them: the server's own again
    for (const rule of ['eos', 'used', 'start']) page.set(rule, false);
    expect(page.el('#rules-name').textContent).toBe('no rules on');
    expect((await page.generate())[1]).toBe(false);
    for (const rule of ['eos', 'uniform', 'used']) page.set(rule, true);
    expect((await page.generate())[1]).toBe(true);
  });

  it("starts from the first model's default rules: its own in models[], or a compiled RuleSet's config", async () => {
    const own = await loadPage(
      createApp({ models: [{ id: 'tiny', model, rules: 'hewitt2024-prose' }], log: () => {}, rules: 'eos' }),
    );
    expect(own.el('#rules-name').textContent).toBe('hewitt2024-prose');
    expect(['eos', 'uniform', 'used', 'start'].map((r) => own.el(`#rule-${r}`).checked)).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(await own.generate()).toEqual([false, true]);
    const compiled = await loadPage(server(compileRules('eos-uniform', model.tokenizer.vocabulary)));
    expect(compiled.el('#rules-name').textContent).toBe('server rules');
    expect(['eos', 'uniform', 'used', 'start'].map((r) => compiled.el(`#rule-${r}`).checked)).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  it("follows the model selected: its boxes, their texts and the column's name are that model's rules", async () => {
    const page = await loadPage(
      createApp({
        models: [
          { id: 'prose', model, rules: 'hewitt2024-prose' },
          { id: 'ramp', model, rules: 'eos' },
        ],
        log: () => {},
      }),
    );
    const boxes = () => ['eos', 'uniform', 'used', 'start'].map((r) => page.el(`#rule-${r}`).checked);
    const help = () => page.el('#rules').children.map((label) => label.children[2]!.textContent);
    const select = (id: string) => {
      page.el('#model').value = id;
      for (const fn of page.el('#model').listeners.change ?? []) fn();
    };
    select('prose');
    expect([page.el('#rules-name').textContent, boxes()]).toEqual([
      'hewitt2024-prose',
      [true, true, true, false],
    ]);
    select('ramp');
    expect([page.el('#rules-name').textContent, boxes()]).toEqual(['eos', [true, false, false, false]]);
    expect(help()).toEqual([
      'end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
      expect.stringMatching(/^off in eos; ticking adds: 15 fixed scores: /),
      expect.stringMatching(/^off in eos; ticking adds: -1\.5 for each token already used/),
      expect.stringMatching(/^off in eos; ticking adds: favours words at the first steps/),
    ]);
    // boxes as the model has them: its own rules (true); one more ticked: named from its rules
    expect(await page.generate()).toEqual([false, true]);
    page.set('used', true);
    expect(page.el('#rules-name').textContent).toBe('eos + diversity');
    select('prose');
    expect([page.el('#rules-name').textContent, boxes()]).toEqual([
      'hewitt2024-prose',
      [true, true, true, false],
    ]);
    expect(help()[2]).toBe('-1.5 for each token already used in the answer (scope response)');
  });

  it('works from a rule-set JSON server default and from none', async () => {
    const custom = { used: { penalty: -3 }, uniform: { entries: [{ text: ' I', score: -9 }] } };
    const page = await loadPage(server(custom));
    expect(['eos', 'uniform', 'used', 'start'].map((r) => page.el(`#rule-${r}`).checked)).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect(await page.generate()).toEqual([false, true]);
    page.set('uniform', false);
    page.set('eos', true);
    expect((await page.generate())[1]).toEqual({
      eos: resolveRuleSpec('hewitt2024').eos,
      used: resolveRuleSpec(custom).used,
    });

    const none = await loadPage(server(false));
    expect(none.el('#rules-name').textContent).toBe('no rules on');
    expect(await none.generate()).toEqual([false, true]);
    none.set('eos', true);
    expect(none.el('#rules-name').textContent).toBe('eos');
    expect((await none.generate())[1]).toEqual({ eos: resolveRuleSpec('eos').eos });
  });
});

/** A chat stream's chunk as the server writes it: one token of `text`, ranked first by the base model. */
const chunk = (text: string, finish: string | null = null, extra: Record<string, unknown> = {}) =>
  `data: ${JSON.stringify({ ...extra, choices: [{ index: 0, delta: { content: text }, trace: [{ base_rank: 1 }], finish_reason: finish }] })}\n\n`;

/**
 * A streamed response of `events`, each read on its own; `before(i)` runs before the i-th is read
 * (its error, or a rejection, fails that read as a broken connection does).
 */
function streamed(events: string[], before: (i: number) => unknown = () => {}) {
  let i = 0;
  const bytes = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await before(i);
      if (i < events.length) controller.enqueue(bytes.encode(events[i++]!));
      else controller.close();
    },
  });
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } });
}

const abortError = () => new DOMException('The user aborted a request.', 'AbortError');
/** Rejects as a browser's fetch and read do once `signal` is aborted. */
const aborted = (signal: AbortSignal) =>
  new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(abortError())));

describe("the playground's page", () => {
  let model: Model;
  const server = (rules: RuleSpec) => createApp({ models: [{ id: 'tiny', model }], log: () => {}, rules });
  const columnError = (page: Awaited<ReturnType<typeof loadPage>>, id: string) =>
    page.el(id).querySelector('.meta').children.at(-1)?.textContent;

  beforeAll(async () => {
    model = await tinyModel();
  });

  it("describes each rule's box by the server's rules, not hewitt2024's", async () => {
    const page = await loadPage(
      server({ uniform: { entries: [{ text: 'm', score: 30 }] }, used: { penalty: -3 } }),
    );
    const help = page.el('#rules').children.map((label) => label.children[2]!.textContent);
    expect(help).toEqual([
      'off in server rules; ticking adds: end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
      '1 fixed score: "m" +30',
      '-3 for each token already used in the instruction or the answer (scope conversation)',
      'off in server rules; ticking adds: favours words at the first steps: the first token\'s word score x5, "!" +15 as the second, "\\n" -10 as the third',
    ]);
    const hewitt = await loadPage(server('hewitt2024'));
    expect(hewitt.el('#rules').children.map((label) => label.children[2]!.textContent)).toEqual([
      'end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
      '15 fixed scores: "<" -4, " <" -4, "|" -4, " I" -5, ...',
      '-1.5 for each token already used in the instruction or the answer (scope conversation)',
      expect.stringMatching(/^off in hewitt2024; ticking adds: favours words at the first steps: /),
    ]);
  });

  it("shows the response's rules_unresolved above the rules column's tokens, and clears it on the next run", async () => {
    const app = server('hewitt2024');
    const real = async (body: string) => {
      const res = await app.request('/v1/chat/completions', json(JSON.parse(body)));
      return new Response(await res.text(), { status: res.status, headers: res.headers });
    };
    const page = await loadPage(app, real);
    page.el('#model').value = 'tiny';
    await page.generate();
    const notice = page.el('#col-rules').querySelector('.unresolved');
    expect(notice.hidden).toBe(false);
    // hewitt2024 on modelkit's tiny tokenizer: 8 of its 15 uniform entries name no token of it
    expect(notice.textContent).toBe(
      '8 rule entries match no token of this model and are left out: " <", " We", " should", " *", " -", "   ", " #", " ##"',
    );
    expect(notice.title.split('\n')[0]).toBe('uniform " <": no vocabulary item has the surface text " <"');
    // (the base column sends no rules: nothing there is left out)
    expect(page.el('#col-base').querySelector('.unresolved').hidden).toBe(true);
    // every rule off: none left out, no notice
    for (const rule of ['eos', 'uniform', 'used']) page.set(rule, false);
    await page.generate();
    expect(notice.hidden).toBe(true);
    expect(notice.textContent).toBe('');

    // one entry, and more than the notice names
    const list = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        rule: 'uniform',
        text: `Sure${i}!`,
        reason: 'no vocabulary item',
      }));
    for (const [n, text] of [
      [1, '1 rule entry matches no token of this model and is left out: "Sure0!"'],
      [
        11,
        '11 rule entries match no token of this model and are left out: "Sure0!", "Sure1!", "Sure2!", "Sure3!", "Sure4!", "Sure5!", "Sure6!", "Sure7!", and 3 more',
      ],
    ] as const) {
      const stub = await loadPage(app, async () =>
        streamed([chunk('', null, { rules_unresolved: list(n) }), chunk('a', 'length'), 'data: [DONE]\n\n']),
      );
      await stub.generate();
      expect(stub.el('#col-rules').querySelector('.unresolved').textContent).toBe(text);
    }
  });

  it('refuses an empty instruction on the page, and sends nothing', async () => {
    const page = await loadPage(server('hewitt2024'));
    const instruction = page.el('#instruction');
    const error = page.el('#instruction-error');
    expect(instruction.value).toBe('Give me a recipe for tiramisu.');
    instruction.value = ' \n\t ';
    expect(await page.generate()).toEqual([]);
    expect(error.hidden).toBe(false);
    expect(error.textContent).toBe('Write an instruction first: an empty one is not sent.');
    expect(instruction.focused).toBe(true);
    expect(page.el('#col-rules').dataset.state).toBeUndefined();
    // typing hides the message; an instruction is sent
    for (const fn of instruction.listeners.input!) fn();
    expect(error.hidden).toBe(true);
    instruction.value = 'Hi.';
    expect(await page.generate()).toEqual([false, true]);
  });

  it("submits nothing on Enter in a field of the controls' form", async () => {
    const page = await loadPage(server('hewitt2024'));
    let prevented = false;
    for (const fn of page.el('#controls').listeners.submit!)
      fn({
        preventDefault() {
          prevented = true;
        },
      });
    expect(prevented).toBe(true);
  });

  it("says when the server cannot be reached or the connection breaks, and 'stopped' for the user's Stop", async () => {
    // no server: fetch rejects ("Failed to fetch" in Chromium)
    const down = await loadPage(server('hewitt2024'));
    await down.generate();
    for (const id of ['#col-base', '#col-rules']) {
      expect(down.el(id).dataset.state).toBe('error');
      expect(columnError(down, id)).toBe(
        'could not reach the server (Failed to fetch): is it still running?',
      );
    }
    // the connection breaks in the middle of the stream: the read rejects ("network error")
    const broken = await loadPage(server('hewitt2024'), async () =>
      streamed([chunk('a'), chunk('b')], (i) => {
        if (i === 1) throw new TypeError('network error');
      }),
    );
    await broken.generate();
    expect(columnError(broken, '#col-rules')).toBe(
      'lost the connection to the server (network error): is it still running?',
    );
    expect(
      broken
        .el('#col-rules')
        .querySelector('.tokens')
        .children.map((t) => t.textContent),
    ).toEqual(['a']);
    // Stop, while waiting for the response and while reading it
    for (const during of ['fetch', 'read']) {
      const page = await loadPage(server('hewitt2024'), async (_body, init) =>
        during === 'fetch'
          ? aborted(init.signal!)
          : streamed([chunk('a')], (i) => (i === 1 ? aborted(init.signal!) : 0)),
      );
      const done = page.generate();
      await new Promise((resolve) => setTimeout(resolve, 10));
      page.el('#stop').listeners.click![0]!();
      await done;
      for (const id of ['#col-base', '#col-rules']) expect(columnError(page, id)).toBe('stopped');
    }
  });

  it('keeps the view at the newest token while it is at the bottom, and where the user scrolled otherwise', async () => {
    const newlines = [
      ...Array.from({ length: 30 }, () => chunk('\n')),
      chunk('\n', 'length'),
      'data: [DONE]\n\n',
    ];
    let scrollUpAt = -1;
    const page = await loadPage(server('hewitt2024'), async () =>
      streamed(newlines, (i) => {
        if (i === scrollUpAt) tokens.scrollTop = 0;
      }),
    );
    const tokens = page.el('#col-rules').querySelector('.tokens');
    await page.generate();
    expect(tokens.children).toHaveLength(31);
    expect(tokens.scrollTop).toBe(31 * 20); // followed to the last token (20 px each)
    // scrolled up mid-stream (at the 10th token): left there
    scrollUpAt = 10;
    await page.generate();
    expect(tokens.children).toHaveLength(31);
    expect(tokens.scrollTop).toBe(0);
  });
});
