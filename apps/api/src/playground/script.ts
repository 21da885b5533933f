/**
 * The playground's JavaScript (inline in the page; plain ES2020, no build step). It is a string, so it
 * uses no template literals of its own.
 */
export const PLAYGROUND_SCRIPT = String.raw`
(function () {
  'use strict';
  var config = window.PLAYGROUND;
  // each box's text (config.ruleHelp) is written on the server, from its rules (see rule-help.ts)
  var RULES = [
    { key: 'eos', part: 'eos', name: 'EOS ramp' },
    { key: 'uniform', part: 'uniform', name: 'Uniform token changes' },
    { key: 'used', part: 'diversity', name: 'Used-token penalty' },
    { key: 'start', part: 'start', name: 'Start rule' }
  ];
  var $ = function (sel) { return document.querySelector(sel); };
  var running = null;
  var instruction = $('#instruction');
  var instructionError = $('#instruction-error');

  var select = $('#model');
  config.models.forEach(function (id) {
    var opt = document.createElement('option');
    opt.value = id; opt.textContent = id; select.appendChild(opt);
  });
  $('#max-tokens').max = String(config.maxTokens);
  if (config.auth) {
    $('#key-field').hidden = false;
    $('#api-key').value = localStorage.getItem('implicit-it-api-key') || '';
  }
  /** Whether the server's rule set turns a rule on. */
  var serverHas = function (rule) { var v = config.rules[rule.key]; return v !== undefined && v !== false; };
  var fieldset = $('#rules');
  var helps = {};
  RULES.forEach(function (rule) {
    var label = document.createElement('label');
    var box = document.createElement('input');
    box.type = 'checkbox'; box.id = 'rule-' + rule.key; box.checked = serverHas(rule);
    box.addEventListener('change', showRulesName);
    var text = document.createElement('span');
    text.textContent = rule.name;
    var small = document.createElement('small');
    small.textContent = config.ruleHelp[rule.key];
    helps[rule.key] = small;
    label.appendChild(box); label.appendChild(text); label.appendChild(small);
    fieldset.appendChild(label);
  });
  // several models, each with default rules of its own: the boxes, their texts and the column's
  // name follow the model selected, ticked as that model has its rules
  select.addEventListener('change', function () {
    var own = config.modelRules && config.modelRules[select.value];
    if (!own) return;
    config.rules = own.rules; config.rulesName = own.rulesName; config.ruleHelp = own.ruleHelp;
    RULES.forEach(function (rule) {
      $('#rule-' + rule.key).checked = serverHas(rule);
      helps[rule.key].textContent = config.ruleHelp[rule.key];
    });
    showRulesName();
  });

  var checked = function (rule) { return $('#rule-' + rule.key).checked; };
  /**
   * The rules of the right-hand column: true (the server's own rule set) while the boxes are as the
   * server has them; otherwise the server's rule set without the unticked rules, a ticked rule it
   * leaves off as the paper's subsets have it; false with every box unticked.
   */
  function rulesSpec() {
    if (RULES.every(function (r) { return checked(r) === serverHas(r); })) return true;
    var spec = {}, any = false;
    RULES.forEach(function (r) {
      if (!checked(r)) return;
      // (a rule ruleDefaults lacks: its defaults, as its box says)
      spec[r.key] = serverHas(r) ? config.rules[r.key] : config.ruleDefaults[r.key] || true;
      any = true;
    });
    return any ? spec : false;
  }
  /** The right-hand column's rules in words: the server's rule set's name, less or plus some rules. */
  function rulesName() {
    if (!RULES.some(checked)) return 'no rules on';
    var off = RULES.filter(function (r) { return serverHas(r) && !checked(r); });
    var on = RULES.filter(function (r) { return !serverHas(r) && checked(r); });
    var part = function (r) { return r.part; };
    var name = RULES.some(serverHas) ? config.rulesName : '';
    if (off.length) name += ' without ' + off.map(part).join(', ');
    if (on.length) name += (name ? ' + ' : '') + on.map(part).join('-');
    return name;
  }
  function showRulesName() {
    $('#rules-name').textContent = rulesName();
  }
  showRulesName();

  function category(rank) {
    if (rank === null || rank === undefined) return 'unknown';
    if (rank <= 1) return 'unshifted';
    if (rank <= 3) return 'marginal';
    return 'shifted';
  }
  var ORDER = { unknown: 0, unshifted: 1, marginal: 2, shifted: 3 };

  function Column(id) {
    this.el = $(id);
    this.tokens = this.el.querySelector('.tokens');
    this.meta = this.el.querySelector('.meta');
    this.notice = this.el.querySelector('.unresolved'); // the rules column's only
  }
  Column.prototype.reset = function () {
    this.tokens.textContent = '';
    this.meta.textContent = '';
    if (this.notice) { this.notice.textContent = ''; this.notice.hidden = true; }
    this.counts = { unshifted: 0, marginal: 0, shifted: 0, unknown: 0 };
    this.n = 0;
    this.el.dataset.state = 'running';
  };
  /** Text of one chunk and the tokens that made it; the end-of-sequence token alone shows as a marker. */
  Column.prototype.add = function (text, trace, finish) {
    var worst = 'unknown', ranks = [];
    (trace || []).forEach(function (t) {
      var c = category(t.base_rank);
      ranks.push(t.base_rank);
      if (ORDER[c] > ORDER[worst]) worst = c;
    }, this);
    for (var i = 0; i < (trace || []).length; i++) this.counts[category(trace[i].base_rank)]++;
    this.n += (trace || []).length;
    var eos = !text && finish === 'stop' && ranks.length > 0;
    if (!text && !eos) return;
    var span = document.createElement('span');
    span.className = 'tok ' + worst + (eos ? ' eos' : '');
    span.textContent = eos ? '\u27e8end\u27e9' : text;
    span.title = (eos ? 'end of sequence; ' : '') + 'base-model rank ' + ranks.join(', ');
    // the view follows the stream while it is at the bottom; scrolled up, it stays where the user put it
    var box = this.tokens;
    var follow = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    box.appendChild(span);
    if (follow) box.scrollTop = box.scrollHeight;
  };
  /** The response's rules_unresolved: rule entries that match no token of the model, left out. */
  Column.prototype.unresolved = function (list) {
    if (!this.notice || !list || !list.length) return;
    var SHOWN = 8, n = list.length;
    var texts = list.slice(0, SHOWN).map(function (u) { return JSON.stringify(u.text); });
    this.notice.textContent = n + (n === 1 ? ' rule entry matches' : ' rule entries match') +
      ' no token of this model and ' + (n === 1 ? 'is' : 'are') + ' left out: ' + texts.join(', ') +
      (n > SHOWN ? ', and ' + (n - SHOWN) + ' more' : '');
    this.notice.title = list.map(function (u) { return u.rule + ' ' + JSON.stringify(u.text) + ': ' + u.reason; }).join('\n');
    this.notice.hidden = false;
  };
  Column.prototype.finish = function (reason, usage) {
    this.el.dataset.state = 'done';
    var c = this.counts, n = this.n || 1;
    var pct = function (k) { return Math.round((100 * c[k]) / n) + '%'; };
    this.meta.textContent = this.n + ' tokens, finish: ' + reason +
      ' | unshifted ' + pct('unshifted') + ', marginal ' + pct('marginal') + ', shifted ' + pct('shifted') +
      (usage ? ' | prompt ' + usage.prompt_tokens + ' tokens' : '');
  };
  Column.prototype.fail = function (message) {
    this.el.dataset.state = 'error';
    var span = document.createElement('span');
    span.className = 'error';
    span.textContent = message;
    this.meta.textContent = '';
    this.meta.appendChild(span);
  };

  var columns = { base: new Column('#col-base'), rules: new Column('#col-rules') };

  async function run(column, rules, signal) {
    column.reset();
    var headers = { 'Content-Type': 'application/json' };
    var key = $('#api-key').value;
    if (config.auth && key) {
      headers.Authorization = 'Bearer ' + key;
      localStorage.setItem('implicit-it-api-key', key);
    }
    var body = {
      model: select.value,
      messages: [{ role: 'user', content: instruction.value }],
      max_tokens: Number($('#max-tokens').value) || 128,
      temperature: Number($('#temperature').value) || 0,
      stream: true,
      stream_options: { include_usage: true },
      rules: rules,
      trace: true
    };
    var res;
    try {
      // relative to the page: behind a reverse proxy that serves it under a path (/llm/), the
      // requests go there too, not to the proxy's root
      res = await fetch('v1/chat/completions', {
        method: 'POST', headers: headers, body: JSON.stringify(body), signal: signal
      });
    } catch (e) {
      throw unreachable(e, 'could not reach the server');
    }
    if (!res.ok) {
      var err = await res.json().catch(function () { return null; });
      throw new Error(err && err.error ? err.error.message : 'HTTP ' + res.status);
    }
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buffer = '', reason = null, usage = null;
    for (;;) {
      var chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw unreachable(e, 'lost the connection to the server');
      }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      var events = buffer.split('\n\n');
      buffer = events.pop();
      for (var i = 0; i < events.length; i++) {
        var line = events[i].trim();
        if (line.indexOf('data: ') !== 0) continue;
        var data = line.slice(6);
        if (data === '[DONE]') continue;
        var event = JSON.parse(data);
        if (event.error) throw new Error(event.error.message);
        if (event.usage) usage = event.usage;
        if (event.rules_unresolved) column.unresolved(event.rules_unresolved);
        var choice = event.choices && event.choices[0];
        if (!choice) continue;
        column.add(choice.delta && choice.delta.content, choice.trace, choice.finish_reason);
        if (choice.finish_reason) reason = choice.finish_reason;
      }
    }
    // a stream that ends without a finish reason was cut (the server stopped, the network broke)
    if (!reason) throw new Error('the stream ended before the reply finished (server stopped or connection lost)');
    column.finish(reason, usage);
  }

  /**
   * A fetch or a read that failed under HTTP (no server there, the connection broken: the browser says
   * only "Failed to fetch" or "network error"), in words; the user's Stop (an AbortError) stays as it is.
   */
  function unreachable(e, what) {
    if (e && e.name === 'AbortError') return e;
    return new Error(what + ' (' + String((e && e.message) || e) + '): is it still running?');
  }

  async function generate() {
    // an empty instruction would be sent as an empty user message: said here, nothing sent
    if (!instruction.value.trim()) {
      instructionError.textContent = 'Write an instruction first: an empty one is not sent.';
      instructionError.hidden = false;
      instruction.focus();
      return;
    }
    instructionError.hidden = true;
    if (running) running.abort();
    var controller = new AbortController();
    running = controller;
    $('#generate').disabled = true;
    $('#stop').disabled = false;
    var jobs = [
      run(columns.base, false, controller.signal).catch(function (e) { fail(columns.base, e); }),
      run(columns.rules, rulesSpec(), controller.signal).catch(function (e) { fail(columns.rules, e); })
    ];
    await Promise.all(jobs);
    if (running === controller) {
      running = null;
      $('#generate').disabled = false;
      $('#stop').disabled = true;
    }
  }
  function fail(column, e) {
    column.fail(e && e.name === 'AbortError' ? 'stopped' : String((e && e.message) || e));
  }

  $('#generate').addEventListener('click', generate);
  $('#stop').addEventListener('click', function () {
    if (running) running.abort();
  });
  // the controls are a form (a password field outside one is a DOM warning): Enter in a field submits nothing
  $('#controls').addEventListener('submit', function (e) { e.preventDefault(); });
  instruction.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  instruction.addEventListener('input', function () { instructionError.hidden = true; });
})();
`;
