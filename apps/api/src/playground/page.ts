import type { RuleSetConfig } from '@implicit-it/rules';
import { ruleHelp } from './rule-help.js';
import { PLAYGROUND_SCRIPT } from './script.js';
import { PLAYGROUND_STYLE } from './style.js';

/**
 * What the page needs to know about the server, embedded at start-up.
 *
 * @example
 * import { resolveRuleSpec } from '@implicit-it/rules';
 *
 * const config: PlaygroundConfig = {
 *   models: ['smollm2'], rules: resolveRuleSpec('hewitt2024'), rulesName: 'hewitt2024',
 *   ruleDefaults: resolveRuleSpec('eos-uniform-diversity-start'), auth: false, maxTokens: 512,
 * };
 */
export interface PlaygroundConfig {
  models: string[];
  /**
   * The server's default rule set, resolved: its rules are the boxes ticked at first (each box shows
   * that rule's options here); with boxes unticked the page sends it without those rules (with the
   * boxes as the server has them, `rules: true`, the server's own).
   */
  rules: RuleSetConfig;
  /** What the page calls the server's rule set (`hewitt2024`, `hewitt2024-prose`, ...). */
  rulesName: string;
  /**
   * Each model's default rules and their name, by id, where the page serves several: the boxes
   * follow the model selected (`rules` and `rulesName` are the first model's).
   */
  modelRules?: Record<string, { rules: RuleSetConfig; rulesName: string }>;
  /**
   * Each rule as the paper's subset names turn it on: what ticking a box the server's rule set leaves
   * off adds (a rule absent here is added with its defaults, `true`).
   */
  ruleDefaults: RuleSetConfig;
  /** Whether requests need an API key (the page then asks for one). */
  auth: boolean;
  maxTokens: number;
  /** Shown in a banner on top of the page. */
  notice?: string;
}

/** The config with each box's text (`ruleHelp`) for the first model's rules and for every model's. */
function withRuleHelp(config: PlaygroundConfig) {
  const modelRules =
    config.modelRules &&
    Object.fromEntries(
      Object.entries(config.modelRules).map(([id, shown]) => [
        id,
        { ...shown, ruleHelp: ruleHelp({ ...shown, ruleDefaults: config.ruleDefaults }) },
      ]),
    );
  return { ...config, ruleHelp: ruleHelp(config), ...(modelRules ? { modelRules } : {}) };
}

const escapeHtml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const escapeJson = (value: unknown) =>
  JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');

/**
 * The playground: one self-contained HTML page (inline CSS and JS, no external requests). It sends the
 * instruction twice to `/v1/chat/completions` (rules off, and the chosen rules) with `stream` and the
 * `trace` extension, and colours each token by its rank under the base model alone. Beside each rule's
 * box it says what ticking the box sends: the rule's options in `rules`, or, for a rule `rules` leaves
 * off, "off in `rulesName`" and what ticking adds (`ruleDefaults`; `RULE_DEFAULTS` of
 * `@implicit-it/rules` for the fields they leave out).
 *
 * @example
 * import { Hono } from 'hono';
 *
 * const site = new Hono();
 * site.get('/playground', (c) => c.html(playgroundPage(config)));
 */
export function playgroundPage(config: PlaygroundConfig): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>implicit-it playground</title>
<link rel="icon" href="data:,">
<style>${PLAYGROUND_STYLE}</style>
</head>
<body>
<header>
  <h1>implicit-it <span>playground</span></h1>
  <p>A <em>base</em> model, and the same model multiplied by three hand-written rules
  (Hewitt et al., 2024, <cite>Instruction Following without Instruction Tuning</cite>). Each token of an answer is
  coloured by where the base model alone ranked it at that step.</p>
</header>
<main>
  ${config.notice ? `<p class="notice" id="notice">${escapeHtml(config.notice)}</p>` : ''}
  <form class="controls" id="controls">
    <label for="instruction" class="label">Instruction</label>
    <textarea id="instruction" rows="3" placeholder="Give me a recipe for tiramisu.">Give me a recipe for tiramisu.</textarea>
    <p class="field-error" id="instruction-error" role="alert" hidden></p>
    <div class="row">
      <label>Model <select id="model"></select></label>
      <label>Max tokens <input id="max-tokens" type="number" min="1" value="128"></label>
      <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0"></label>
      <label id="key-field" hidden>API key <input id="api-key" type="password" autocomplete="off"></label>
      <span class="spacer"></span>
      <button id="stop" type="button" disabled>Stop</button>
      <button id="generate" type="button" class="primary" title="Ctrl+Enter">Generate</button>
    </div>
    <fieldset id="rules">
      <legend>Rules of the right-hand column</legend>
    </fieldset>
  </form>
  <section class="columns">
    <article id="col-base" class="column" data-state="idle">
      <h2>Base model <small>rules off</small></h2>
      <div class="tokens" aria-live="polite"></div>
      <div class="meta"></div>
    </article>
    <article id="col-rules" class="column" data-state="idle">
      <h2>Base + rules <small id="rules-name"></small></h2>
      <p class="unresolved" hidden></p>
      <div class="tokens" aria-live="polite"></div>
      <div class="meta"></div>
    </article>
  </section>
  <footer class="legend" id="legend">
    <span><i class="tok unshifted">token</i> unshifted: the base model's own top-1</span>
    <span><i class="tok marginal">token</i> marginal: its 2nd or 3rd choice</span>
    <span><i class="tok shifted">token</i> shifted: ranked lower by the base model</span>
    <span class="note">(categories of Lin et al., 2023; hover a token for its rank)</span>
  </footer>
</main>
<script>window.PLAYGROUND = ${escapeJson(withRuleHelp(config))};</script>
<script>${PLAYGROUND_SCRIPT}</script>
</body>
</html>
`;
}
