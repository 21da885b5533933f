import { existsSync, mkdirSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRuleSpec } from '@implicit-it/rules';
import { describeWithBinary } from '@implicit-it/testkit';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningServer, serve } from '../src/index.js';
import { tinyModel } from './helpers.js';

/**
 * The playground in headless Chromium: Debian's `chromium` package (`apt-get install -y chromium`)
 * driven by playwright-core, which downloads no browser of its own. Skipped with a message when
 * /usr/bin/chromium is absent; a failure then when IMPLICIT_IT_REQUIRE_TOOLS=1 (CI).
 */
const CHROMIUM = process.env.IMPLICIT_IT_CHROMIUM ?? '/usr/bin/chromium';
const OUT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-output');
export const SCREENSHOT = join(OUT_DIR, 'playground.png');

/**
 * The console's errors and warnings of `page` from now on, and Chromium's `[DOM]` notes (logged as
 * verbose: a password field outside a form, ...).
 */
function consoleProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning' || m.text().startsWith('[DOM]'))
      problems.push(`${m.type()}: ${m.text()} (${m.location().url})`);
  });
  return problems;
}

/** The text beside each rule's box, in the page's order (eos, uniform, used, start). */
const boxTexts = (page: Page) => page.$$eval('#rules label small', (els) => els.map((e) => e.textContent));

describeWithBinary('playground in headless Chromium', CHROMIUM, 'apt-get install -y chromium', () => {
  let server: RunningServer;
  let browser: Browser;

  beforeAll(async () => {
    const model = await tinyModel();
    server = await serve({ models: [{ id: 'tiny', model }], port: 0, hostname: '127.0.0.1', log: () => {} });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('streams both columns side by side and colours every token by its base-model rank', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const external: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith(server.url)) external.push(req.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const problems = consoleProblems(page);
    await page.goto(server.url);
    // a page load logs nothing (no /favicon.ico 404: the page declares its icon inline)
    await page.waitForLoadState('networkidle');
    expect(problems).toEqual([]);

    // toggles for each rule, the server's default (hewitt2024: eos, uniform, used on; start off)
    for (const rule of ['eos', 'uniform', 'used']) expect(await page.isChecked(`#rule-${rule}`)).toBe(true);
    expect(await page.isChecked('#rule-start')).toBe(false);
    expect(await page.textContent('#rules-name')).toBe('hewitt2024');
    await expect(page.textContent('#legend')).resolves.toMatch(/unshifted.*marginal.*shifted/s);
    expect(await boxTexts(page)).toEqual([
      'end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
      '15 fixed scores: "<" -4, " <" -4, "|" -4, " I" -5, ...',
      '-1.5 for each token already used in the instruction or the answer (scope conversation)',
      'off in hewitt2024; ticking adds: favours words at the first steps: the first token\'s word score x5, "!" +15 as the second, "\\n" -10 as the third',
    ]);
    expect(await page.isVisible('#col-rules .unresolved')).toBe(false);

    await page.fill('#instruction', 'Give me a recipe for tiramisu.');
    await page.fill('#max-tokens', '64');
    await page.click('#generate');
    await page.waitForSelector('#col-base[data-state="done"]', { timeout: 30_000 });
    await page.waitForSelector('#col-rules[data-state="done"]', { timeout: 30_000 });

    const column = (id: string) =>
      page.$$eval(`${id} .tokens .tok`, (spans) =>
        spans.map((s) => ({ text: s.textContent ?? '', cls: s.className, title: s.getAttribute('title') })),
      );
    const base = await column('#col-base');
    const ruled = await column('#col-rules');
    expect(base.length).toBeGreaterThan(0);
    expect(ruled.length).toBeGreaterThan(0);
    for (const t of [...base, ...ruled]) expect(t.cls).toMatch(/^tok (unshifted|marginal|shifted)( eos)?$/);
    const text = (spans: { cls: string; text: string }[]) =>
      spans
        .filter((t) => !t.cls.endsWith(' eos'))
        .map((t) => t.text)
        .join('');
    // the base model alone, greedy: every token is its own top-1
    expect(base.every((t) => t.cls === 'tok unshifted')).toBe(true);
    // with the rules some tokens moved (for this model and prompt the EOS ramp and the penalties do)
    expect(ruled.some((t) => t.cls !== 'tok unshifted')).toBe(true);
    expect(await page.textContent('#col-rules .meta')).toMatch(/tokens, finish: (stop|length)/);
    // hewitt2024's uniform entries that no token of the tiny tokenizer has, said above the tokens
    expect(await page.isVisible('#col-rules .unresolved')).toBe(true);
    expect(await page.textContent('#col-rules .unresolved')).toBe(
      '8 rule entries match no token of this model and are left out: " <", " We", " should", " *", " -", "   ", " #", " ##"',
    );
    // as shown: the three spaces of "   " are not collapsed into one
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, after CSS white-space, is what is checked
    expect(await page.innerText('#col-rules .unresolved')).toContain('"   "');

    // the columns hold exactly what the API answers for the same requests
    const api = async (rules: unknown) => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny',
          messages: [{ role: 'user', content: 'Give me a recipe for tiramisu.' }],
          max_tokens: 64,
          rules,
        }),
      });
      return (await res.json()).choices[0].message.content as string;
    };
    expect(text(base)).toBe(await api(false));
    expect(text(ruled)).toBe(await api('eos-uniform-diversity'));
    // the answer with rules ended by EOS, which the EOS ramp pushed up: shown as a marker
    if ((await page.textContent('#col-rules .meta'))?.includes('finish: stop')) {
      expect(ruled.at(-1)!.cls).toMatch(/ eos$/);
    }

    mkdirSync(OUT_DIR, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);

    // toggling every rule off makes the right column the base model's answer
    for (const rule of ['eos', 'uniform', 'used']) await page.uncheck(`#rule-${rule}`);
    expect(await page.textContent('#rules-name')).toBe('no rules on');
    await page.click('#generate');
    await page.waitForSelector('#col-rules[data-state="done"]', { timeout: 30_000 });
    await page.waitForSelector('#col-base[data-state="done"]', { timeout: 30_000 });
    const off = await column('#col-rules');
    expect(text(off)).toBe(text(base));

    expect(await page.isVisible('#col-rules .unresolved')).toBe(false);

    expect(errors).toEqual([]);
    expect(problems).toEqual([]);
    expect(external).toEqual([]);
    await page.close();
  });

  it("describes each rule's box by the server's rules (a rule-set JSON)", async () => {
    const model = await tinyModel();
    const custom = await serve({
      models: [{ id: 'tiny', model }],
      port: 0,
      hostname: '127.0.0.1',
      rules: { uniform: { entries: [{ text: 'm', score: 30 }] }, used: { penalty: -3 } },
      log: () => {},
    });
    try {
      const page = await browser.newPage();
      const problems = consoleProblems(page);
      await page.goto(custom.url);
      expect(await boxTexts(page)).toEqual([
        'off in server rules; ticking adds: end-of-sequence score rises from 0 to 15 over 250 tokens, then 0',
        '1 fixed score: "m" +30',
        '-3 for each token already used in the instruction or the answer (scope conversation)',
        expect.stringMatching(/^off in server rules; ticking adds: favours words at the first steps: /),
      ]);
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      await custom.close();
    }
  });

  it('refuses an empty instruction on the page, and sends nothing', async () => {
    const page = await browser.newPage();
    let sent = 0;
    page.on('request', (req) => {
      if (req.url().endsWith('/v1/chat/completions')) sent++;
    });
    await page.goto(server.url);
    expect(await page.isVisible('#instruction-error')).toBe(false);
    await page.fill('#instruction', '  \n  ');
    await page.click('#generate');
    expect(await page.isVisible('#instruction-error')).toBe(true);
    expect(await page.textContent('#instruction-error')).toBe(
      'Write an instruction first: an empty one is not sent.',
    );
    await page.waitForTimeout(200);
    expect(sent).toBe(0);
    expect(await page.getAttribute('#col-rules', 'data-state')).toBe('idle');
    await page.fill('#instruction', 'Hi.');
    expect(await page.isVisible('#instruction-error')).toBe(false);
    await page.close();
  });

  it('keeps a long answer in a scrolling box that follows it', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    // 128 newline tokens, as a base model may answer
    const chunk = (content: string, finish: string | null) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, trace: [{ base_rank: 1 }], finish_reason: finish }] })}\n\n`;
    const newlines = [
      ...Array.from({ length: 127 }, () => chunk('\n', null)),
      chunk('\n', 'length'),
      'data: [DONE]\n\n',
    ];
    await page.route('**/v1/chat/completions', (route) =>
      route.fulfill({ status: 200, contentType: 'text/event-stream', body: newlines.join('') }),
    );
    await page.goto(server.url);
    await page.click('#generate');
    await page.waitForSelector('#col-rules[data-state="done"]', { timeout: 30_000 });
    await page.waitForSelector('#col-base[data-state="done"]', { timeout: 30_000 });
    const box = await page.$eval('#col-rules .tokens', (el) => ({
      clientHeight: el.clientHeight,
      scrollHeight: el.scrollHeight,
      scrollTop: el.scrollTop,
    }));
    expect(box.scrollHeight).toBeGreaterThan(2000); // 128 lines
    expect(box.clientHeight).toBeLessThanOrEqual(0.6 * 860);
    expect(box.scrollTop + box.clientHeight).toBeGreaterThanOrEqual(box.scrollHeight - 2); // at the last token
    expect(await page.evaluate(() => document.documentElement.scrollHeight)).toBeLessThan(1500);
    await page.close();
  });

  it('says in words when the server cannot be reached', async () => {
    const page = await browser.newPage();
    // nothing listening: the column says so, not just "Failed to fetch"
    await page.route('**/v1/chat/completions', (route) => route.abort('connectionrefused'));
    await page.goto(server.url);
    await page.click('#generate');
    await page.waitForSelector('#col-rules[data-state="error"]', { timeout: 30_000 });
    expect(await page.textContent('#col-rules .meta')).toBe(
      'could not reach the server (Failed to fetch): is it still running?',
    );
    await page.close();
  });

  it('works behind a reverse proxy that serves it under a path (its requests go there too)', async () => {
    // as nginx's `location /llm/ { proxy_pass http://127.0.0.1:8080/; }`: /llm/X is the server's /X,
    // and the proxy's other paths are not the server's
    const upstream = new URL(server.url);
    const proxy = createServer((req, res) => {
      const url = req.url ?? '';
      if (!url.startsWith('/llm/')) {
        res.writeHead(404, { 'Content-Type': 'text/html' }).end('<h1>404 Not Found</h1>');
        return;
      }
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: url.slice(4),
          method: req.method,
          headers: req.headers,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(forward);
    });
    await new Promise<void>((listening) => proxy.listen(0, '127.0.0.1', listening));
    try {
      const page = await browser.newPage();
      const posts: string[] = [];
      page.on('request', (req) => {
        if (req.method() === 'POST') posts.push(new URL(req.url()).pathname);
      });
      await page.goto(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}/llm/`);
      await page.fill('#max-tokens', '8');
      await page.click('#generate');
      await page.waitForSelector('#col-base[data-state="done"], #col-base[data-state="error"]', {
        timeout: 30_000,
      });
      await page.waitForSelector('#col-rules[data-state="done"], #col-rules[data-state="error"]', {
        timeout: 30_000,
      });
      expect(await page.getAttribute('#col-base', 'data-state')).toBe('done');
      expect(await page.getAttribute('#col-rules', 'data-state')).toBe('done');
      expect(posts).toEqual(['/llm/v1/chat/completions', '/llm/v1/chat/completions']);
      await page.close();
    } finally {
      await new Promise((closed) => proxy.close(closed));
    }
  });

  it("uses the server's rule set in the rules column (hewitt2024-prose), less the unticked rules", async () => {
    const model = await tinyModel();
    const prose = await serve({
      models: [{ id: 'tiny', model }],
      port: 0,
      hostname: '127.0.0.1',
      rules: 'hewitt2024-prose',
      log: () => {},
    });
    try {
      const page = await browser.newPage();
      const sent: unknown[] = [];
      page.on('request', (req) => {
        if (req.url().endsWith('/v1/chat/completions')) sent.push(JSON.parse(req.postData()!).rules);
      });
      await page.goto(prose.url);
      expect(await page.textContent('#rules-name')).toBe('hewitt2024-prose');
      const answer = async () => {
        await page.fill('#max-tokens', '24');
        await page.click('#generate');
        await page.waitForSelector('#col-rules[data-state="done"]', { timeout: 30_000 });
        await page.waitForSelector('#col-base[data-state="done"]', { timeout: 30_000 });
        return page.$$eval('#col-rules .tokens .tok:not(.eos)', (spans) =>
          spans.map((s) => s.textContent).join(''),
        );
      };
      const api = async (rules: unknown) => {
        const res = await fetch(`${prose.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            model: 'tiny',
            messages: [{ role: 'user', content: 'Give me a recipe for tiramisu.' }],
            max_tokens: 24,
            rules,
          }),
        });
        return (await res.json()).choices[0].message.content as string;
      };
      expect(await answer()).toBe(await api('hewitt2024-prose'));
      expect(sent).toEqual([false, true]);
      await page.uncheck('#rule-uniform');
      expect(await page.textContent('#rules-name')).toBe('hewitt2024-prose without uniform');
      const { eos, used } = resolveRuleSpec('hewitt2024-prose');
      expect(await answer()).toBe(await api({ eos, used }));
      expect(sent.slice(2)).toEqual([false, { eos, used }]);
      await page.close();
    } finally {
      await prose.close();
    }
  });

  it('asks for the API key when the server has one, and reports errors in the column', async () => {
    const model = await tinyModel();
    const keyed = await serve({
      models: [{ id: 'tiny', model }],
      port: 0,
      hostname: '127.0.0.1',
      apiKey: 'sk-play',
      log: () => {},
    });
    try {
      const page = await browser.newPage();
      const problems = consoleProblems(page);
      await page.goto(keyed.url);
      await page.waitForLoadState('networkidle');
      expect(await page.isVisible('#api-key')).toBe(true);
      // the key field is in a form (no DOM warning), and Enter there submits nothing: no reload
      await page.evaluate(() => Object.assign(window, { loaded: true }));
      await page.press('#api-key', 'Enter');
      await page.press('#max-tokens', 'Enter');
      await page.waitForTimeout(200);
      expect(await page.evaluate(() => (window as unknown as { loaded?: boolean }).loaded)).toBe(true);
      expect(problems).toEqual([]);
      await page.click('#generate');
      await page.waitForSelector('#col-rules[data-state="error"]', { timeout: 30_000 });
      expect(await page.textContent('#col-rules .meta')).toMatch(/API key/);
      await page.fill('#api-key', 'sk-play');
      await page.fill('#max-tokens', '8');
      await page.click('#generate');
      await page.waitForSelector('#col-rules[data-state="done"]', { timeout: 30_000 });
      await page.close();
    } finally {
      await keyed.close();
    }
  });
});
