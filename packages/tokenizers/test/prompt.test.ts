import { describe, expect, it } from 'vitest';
import { createTokenizer, documentStartId, PromptError, tuluParts } from '../src/index.js';
import { byteLevelFiles, sentencePieceFiles } from './helpers/build-tokenizer.js';

describe('tuluParts (open-instruct create_prompt_with_tulu_chat_format)', () => {
  it('formats one instruction', () => {
    expect(tuluParts([{ role: 'user', content: 'Hi' }], '</s>')).toEqual({
      before: '<|user|>\n',
      content: 'Hi',
      after: '\n<|assistant|>\n',
    });
  });

  it('formats multi-turn: system, EOS after trimmed assistant turns, split at the last user message', () => {
    const parts = tuluParts(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'A?' },
        { role: 'assistant', content: '  B.  ' },
        { role: 'user', content: 'C?' },
      ],
      '</s>',
    );
    expect(parts.before + parts.content + parts.after).toBe(
      '<|system|>\nBe brief.\n<|user|>\nA?\n<|assistant|>\nB.</s>\n<|user|>\nC?\n<|assistant|>\n',
    );
    expect(parts.content).toBe('C?');
    expect(parts.after).toBe('\n<|assistant|>\n');
  });

  it("assistant turns are stripped as Python's str.strip does, not as String.trim", () => {
    const parts = tuluParts(
      [
        { role: 'user', content: 'A?' },
        { role: 'assistant', content: '\ufeffB.\x1c\x85 ' },
        { role: 'user', content: 'C?' },
      ],
      '</s>',
    );
    // Python keeps the BOM (U+FEFF) and strips U+001C and U+0085; String.trim does the opposite
    expect(parts.before).toBe('<|user|>\nA?\n<|assistant|>\n\ufeffB.</s>\n<|user|>\n');
  });

  it('no user message: the scope starts at the last message (system only, or system + assistant)', () => {
    expect(tuluParts([{ role: 'system', content: 'Write a haiku.' }], '</s>')).toEqual({
      before: '<|system|>\n',
      content: 'Write a haiku.',
      after: '\n<|assistant|>\n',
    });
    expect(
      tuluParts(
        [
          { role: 'system', content: 'Be brief.' },
          { role: 'assistant', content: ' Sure ' },
        ],
        '</s>',
      ),
    ).toEqual({
      before: '<|system|>\nBe brief.\n<|assistant|>\n',
      content: 'Sure',
      after: '</s>\n<|assistant|>\n',
    });
    expect(tuluParts([{ role: 'assistant', content: 'x' }], '</s>').content).toBe('x');
  });

  it('rejects bad messages with the index and the fix', () => {
    expect(() => tuluParts([], '</s>')).toThrow('messages: give at least one message');
    expect(() =>
      tuluParts(
        [
          { role: 'tool', content: 'x' },
          { role: 'user', content: 'y' },
        ],
        '</s>',
      ),
    ).toThrow(`messages[0].role: the Tulu format supports 'system', 'user' and 'assistant', got "tool"`);
    expect(() =>
      tuluParts(
        [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: 'y' },
          { role: 'user', content: 'z' },
        ],
        undefined,
      ),
    ).toThrow(/messages\[1\]: an assistant turn ends with the EOS token/);
  });
});

describe('buildPrompt on a SentencePiece tokenizer (built)', () => {
  const tok = createTokenizer(sentencePieceFiles());

  it('tulu: BOS id first, whole-prompt ids, S at the instruction, P = length', () => {
    const p = tok.buildPrompt({ format: 'tulu', instruction: 'Give the world' });
    expect(p.text).toBe('<s><|user|>\nGive the world\n<|assistant|>\n');
    expect(p.ids).toEqual([1, ...tok.encode(p.text.slice(3), { addSpecialTokens: false })]);
    expect(p.ids.slice(0, 7).map((id) => tok.idToToken(id))).toEqual(['<s>', '▁<', '|', 'u', 's', 'e', 'r']);
    expect(p.scopeStart).toBe(10);
    expect(tok.idToToken(p.ids[p.scopeStart]!)).toBe('G');
    expect(tok.idToToken(p.ids[p.scopeStart - 1]!)).toBe('<0x0A>');
    expect(p.promptLength).toBe(p.ids.length);
    // The text before S alone tokenizes to exactly ids[0:S].
    expect([1, ...tok.encode('<|user|>\n', { addSpecialTokens: false })]).toEqual(
      p.ids.slice(0, p.scopeStart),
    );
    // Encoding the instruction as a separate piece would differ (SentencePiece's dummy prefix ▁):
    expect(tok.encode('Give', { addSpecialTokens: false }).map((id) => tok.idToToken(id))).toEqual(['▁Give']);
    expect(p.ids.slice(10, 14).map((id) => tok.idToToken(id))).toEqual(['G', 'i', 'v', 'e']);
  });

  it('tulu multi-turn: EOS token after assistant turns; S at the last user message', () => {
    const p = tok.buildPrompt({
      format: 'tulu',
      messages: [
        { role: 'user', content: 'I' },
        { role: 'assistant', content: 'What' },
        { role: 'user', content: 'the' },
      ],
    });
    expect(p.text).toBe('<s><|user|>\nI\n<|assistant|>\nWhat</s>\n<|user|>\nthe\n<|assistant|>\n');
    expect(p.ids.filter((id) => id === 2)).toEqual([2]);
    expect(p.ids.slice(p.scopeStart, p.scopeStart + 3).map((id) => tok.idToToken(id))).toEqual([
      't',
      'h',
      'e',
    ]);
    expect(tok.decode(p.ids.slice(p.scopeStart))).toBe('the\n<|assistant|>\n');
  });

  it('no user message: S at the last message (system only; system + assistant), as OpenAI accepts them', () => {
    const system = tok.buildPrompt({
      format: 'tulu',
      messages: [{ role: 'system', content: 'Give the world' }],
    });
    expect(system.text).toBe('<s><|system|>\nGive the world\n<|assistant|>\n');
    expect(system.ids.slice(0, system.scopeStart)).toEqual([
      1,
      ...tok.encode('<|system|>\n', { addSpecialTokens: false }),
    ]);
    expect(tok.decode(system.ids.slice(system.scopeStart))).toBe('Give the world\n<|assistant|>\n');
    const prefill = tok.buildPrompt({
      format: 'tulu',
      messages: [
        { role: 'system', content: 'I' },
        { role: 'assistant', content: 'What the' },
      ],
    });
    expect(prefill.text).toBe('<s><|system|>\nI\n<|assistant|>\nWhat the</s>\n<|assistant|>\n');
    expect(tok.decode(prefill.ids.slice(prefill.scopeStart))).toBe('What the</s>\n<|assistant|>\n');

    const template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]";
    const chat = tok.buildPrompt({
      format: 'chat-template',
      template,
      messages: [{ role: 'system', content: 'Hello world' }],
    });
    expect(chat.text).toBe('[system] Hello world\n[assistant]');
    expect(chat.ids.slice(chat.scopeStart, chat.scopeStart + 2)).toEqual([330, 335]);
    // a template that leaves the last (non-user) message out: S is 0, the whole prompt
    const usersOnly =
      "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}[assistant]";
    const hidden = tok.buildPrompt({
      format: 'chat-template',
      template: usersOnly,
      messages: [{ role: 'system', content: 'Hello' }],
    });
    expect([hidden.text, hidden.scopeStart]).toEqual(['[assistant]', 0]);
    // a hidden user message is still an error: S would be wrong, not merely conventional
    expect(() =>
      tok.buildPrompt({
        format: 'chat-template',
        template: "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}",
        messages: [{ role: 'user', content: 'hello' }],
      }),
    ).toThrow(/does not write the last user message verbatim/);
  });

  it('addBos: false leaves BOS out', () => {
    const p = tok.buildPrompt({ format: 'tulu', instruction: 'Give', addBos: false });
    expect(p.ids[0]).not.toBe(1);
    expect(p.text).toBe('<|user|>\nGive\n<|assistant|>\n');
    expect(p.scopeStart).toBe(9);
  });

  it('addBos on a tokenizer with neither BOS nor EOS is a PromptError naming both', () => {
    const files = byteLevelFiles();
    // no bos_token/eos_token, and no special added token (else one would be the conventional EOS)
    const addedTokens = (files.tokenizerJson.added_tokens as object[]).map((t) => ({ ...t, special: false }));
    const bare = createTokenizer({
      ...files,
      tokenizerJson: { ...files.tokenizerJson, added_tokens: addedTokens },
      tokenizerConfig: { ...files.tokenizerConfig, bos_token: null, eos_token: null },
    });
    expect([bare.bosId, bare.eosIds]).toEqual([undefined, []]);
    expect(bare.buildPrompt({ format: 'tulu', instruction: 'Hello' }).text).toBe(
      '<|user|>\nHello\n<|assistant|>\n',
    );
    for (const format of ['tulu', 'chat-template'] as const) {
      expect(() => bare.buildPrompt({ format, instruction: 'Hello', addBos: true })).toThrow(
        'addBos: built:byte-level-string names neither a BOS nor an EOS token (bos_token, eos_token in tokenizer_config.json); drop addBos',
      );
    }
    // the document start addBos would use: none here; the BOS, else the first EOS, elsewhere
    expect(documentStartId(bare)).toBeUndefined();
    const noBos = createTokenizer({
      ...files,
      tokenizerConfig: { ...files.tokenizerConfig, bos_token: null },
    });
    expect(noBos.bosId).toBeUndefined();
    expect(documentStartId(noBos)).toBe(noBos.eosIds[0]);
    expect(noBos.buildPrompt({ format: 'tulu', instruction: 'Hello', addBos: true }).ids[0]).toBe(
      noBos.eosIds[0],
    );
  });

  it('chat-template: addBos on a template that starts with the EOS stand-in (OLMo) adds no second one', () => {
    const files = byteLevelFiles();
    const olmoLike = createTokenizer({
      ...files,
      // OLMo's instruct template starts with eos_token, and its tokenizer names no BOS
      tokenizerConfig: {
        ...files.tokenizerConfig,
        bos_token: null,
        chat_template:
          "{{ eos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}",
      },
    });
    const eos = olmoLike.eosIds[0]!;
    expect(olmoLike.bosId).toBeUndefined();
    const plain = olmoLike.buildPrompt({ format: 'chat-template', instruction: 'Hello' });
    const withBos = olmoLike.buildPrompt({ format: 'chat-template', instruction: 'Hello', addBos: true });
    expect(plain.ids[0]).toBe(eos);
    expect(plain.ids[1]).not.toBe(eos);
    expect(withBos).toEqual(plain);
    // a template that does not start with it gets it prepended
    const bare = olmoLike.buildPrompt({
      format: 'chat-template',
      instruction: 'Hello',
      template: "{% for m in messages %}{{ m['content'] }}{% endfor %}",
      addBos: true,
    });
    expect([bare.ids[0], bare.ids[1] === eos, bare.scopeStart]).toEqual([eos, false, 1]);
  });

  it('raw: special tokens added, S after them', () => {
    const p = tok.buildPrompt({ format: 'raw', text: 'Hello world' });
    expect(p).toEqual({ ids: [1, 330, 335], scopeStart: 1, promptLength: 3, text: 'Hello world' });
    expect(tok.buildPrompt({ format: 'raw', text: 'Hello world', addSpecialTokens: false })).toEqual({
      ids: [330, 335],
      scopeStart: 0,
      promptLength: 2,
      text: 'Hello world',
    });
  });

  it('chat-template without a template is a PromptError naming the files and the fix', () => {
    expect(() => tok.buildPrompt({ format: 'chat-template', instruction: 'x' })).toThrow(
      "built:sentencepiece-pair has no chat template (chat_template in tokenizer_config.json or chat_template.jinja); pass { template } or use format 'tulu'",
    );
    try {
      tok.buildPrompt({ format: 'chat-template', instruction: 'x' });
    } catch (error) {
      expect(PromptError.isInstance(error) && error.code).toBe('tokenizers.no_chat_template');
    }
  });

  it('chat-template with an explicit template; addBos prepends BOS once', () => {
    const template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]";
    const p = tok.buildPrompt({
      format: 'chat-template',
      instruction: 'Hello world',
      template,
      addBos: true,
    });
    expect(p.text).toBe('<s>[user] Hello world\n[assistant]');
    expect(p.ids[0]).toBe(1);
    expect(p.ids.slice(p.scopeStart, p.scopeStart + 2)).toEqual([330, 335]);
  });
});

describe('buildPrompt on a byte-level BPE tokenizer (built)', () => {
  const files = byteLevelFiles();
  const tok = createTokenizer(files);

  it('tulu: tokenizing the pieces separately gives the same ids as the whole prompt', () => {
    const messages = [
      { role: 'user', content: 'Give me a recipe' },
      { role: 'assistant', content: 'What?' },
      { role: 'user', content: 'hello the world' },
    ];
    const p = tok.buildPrompt({ format: 'tulu', messages });
    const parts = tuluParts(messages, '<|im_end|>');
    const pieces = [parts.before, parts.content, parts.after].map((s) =>
      tok.encode(s, { addSpecialTokens: false }),
    );
    // no BOS: this tokenizer names one (<|im_start|>, as SmolLM2's) but does not add it
    expect(p.ids).toEqual(pieces.flat());
    expect(p.scopeStart).toBe(pieces[0]!.length);
    const body =
      '<|user|>\nGive me a recipe\n<|assistant|>\nWhat?<|im_end|>\n<|user|>\nhello the world\n<|assistant|>\n';
    expect(p.text).toBe(body);
    const withBos = tok.buildPrompt({ format: 'tulu', messages, addBos: true });
    expect(withBos.ids).toEqual([303, ...pieces.flat()]);
    expect(withBos.scopeStart).toBe(1 + pieces[0]!.length);
    expect(withBos.text).toBe(`<|im_start|>${body}`);
  });

  it("tulu starts with BOS by default exactly where encoding with special tokens adds it (the paper's pipeline)", () => {
    // this tokenizer names <|im_start|> as its BOS and has no post-processor: tokenizer(text) adds none
    expect([tok.bosId, tok.addsBos]).toEqual([303, false]);
    const body = '<|user|>\nhello\n<|assistant|>\n';
    expect(tok.buildPrompt({ format: 'tulu', instruction: 'hello' }).ids).toEqual(tok.encode(body));
    // the same files with a post-processor that adds it (as Llama-3's): BOS first
    const addingFiles = {
      ...files,
      tokenizerJson: {
        ...files.tokenizerJson,
        post_processor: {
          type: 'TemplateProcessing',
          single: [
            { SpecialToken: { id: '<|im_start|>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
          ],
          pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [303], tokens: ['<|im_start|>'] } },
        },
      },
    };
    const adding = createTokenizer(addingFiles);
    expect(adding.addsBos).toBe(true);
    const p = adding.buildPrompt({ format: 'tulu', instruction: 'hello' });
    expect(p.ids).toEqual(adding.encode(body));
    expect(p.ids[0]).toBe(303);
    expect(p.text).toBe(`<|im_start|>${body}`);
    // add_bos_token: true in tokenizer_config.json, as Python's Llama / GPT-NeoX tokenizers honour it
    // (and a finetune job writes for a tokenizer whose EOS it put first): encode adds it, once
    const configured = createTokenizer({
      ...files,
      tokenizerConfig: { ...files.tokenizerConfig, add_bos_token: true },
    });
    expect(configured.addsBos).toBe(true);
    expect(configured.encode(body)).toEqual([303, ...tok.encode(body)]);
    expect(configured.encode(body, { addSpecialTokens: false })).toEqual(tok.encode(body));
    expect(configured.buildPrompt({ format: 'tulu', instruction: 'hello' }).ids).toEqual(
      configured.encode(body),
    );
    expect(configured.buildPrompt({ format: 'raw', text: body }).ids).toEqual([303, ...tok.encode(body)]);
    const both = createTokenizer({
      ...addingFiles,
      tokenizerConfig: { ...files.tokenizerConfig, add_bos_token: true },
    });
    expect(both.encode(body)).toEqual(adding.encode(body));
  });

  it('where the tokenizer merges across the boundary, S is the merged token', () => {
    // GPT-2's pre-tokenizer splits '\n' + '\n\nhello' into '\n\n', '\n', 'hello': the first pre-token
    // holds the prompt's newline and the message's first newline, and BPE merges it into ĊĊ.
    const p = tok.buildPrompt({ format: 'tulu', instruction: '\n\nhello', addBos: false });
    const before = tok.encode('<|user|>\n', { addSpecialTokens: false });
    expect(before.at(-1)).toBe(10);
    expect(p.ids[before.length - 1]).toBe(tok.vocabulary.idsOf('\n\n')[0]);
    expect(p.scopeStart).toBe(before.length - 1);
    expect(p.ids.slice(p.scopeStart, p.scopeStart + 3)).toEqual([287, 10, 281]);
    expect(tok.decode(p.ids.slice(p.scopeStart))).toBe('\n\n\nhello\n<|assistant|>\n');
  });

  it('chat-template (ChatML from tokenizer_config.json): S at the last user content', () => {
    const p = tok.buildPrompt({
      format: 'chat-template',
      messages: [
        { role: 'system', content: 'the' },
        { role: 'user', content: 'hello' },
      ],
    });
    expect(p.text).toBe(
      '<|im_start|>system\nthe<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(p.ids).toEqual(tok.encode(p.text, { addSpecialTokens: false }));
    expect(tok.idToToken(p.ids[p.scopeStart]!)).toBe('hello');
    expect(p.ids[p.scopeStart - 1]).toBe(10);
    const noGen = tok.buildPrompt({
      format: 'chat-template',
      instruction: 'hello',
      addGenerationPrompt: false,
    });
    expect(noGen.text).toBe('<|im_start|>user\nhello<|im_end|>\n');
  });

  it('chat-template that rewrites the content cannot place S: scope_not_found', () => {
    const template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}";
    expect(() => tok.buildPrompt({ format: 'chat-template', instruction: 'hello', template })).toThrow(
      /does not write the last user message verbatim/,
    );
  });

  it('rejects malformed input with PromptError', () => {
    expect(() => tok.buildPrompt({ format: 'tulu' } as never)).toThrow(
      'give instruction (a string) or messages (a list)',
    );
    expect(() => tok.buildPrompt({ format: 'xml', text: 'x' } as never)).toThrow(
      `format: expected 'tulu', 'chat-template' or 'raw', got "xml"`,
    );
    expect(() => tok.buildPrompt({ format: 'tulu', instruction: 'a', messages: [] } as never)).toThrow(
      'give either instruction or messages, not both',
    );
  });

  it('refuses a field its format does not take, naming the one meant or the format it belongs to', () => {
    const refused = (input: object, message: string) => {
      expect(() => tok.buildPrompt(input as never)).toThrow(PromptError);
      expect(() => tok.buildPrompt(input as never)).toThrow(message);
    };
    const chatFields =
      'format, instruction, messages, addGenerationPrompt, template, addBos, specialTokensInContent';
    refused(
      { format: 'chat-template', instruction: 'a', add_generation_prompt: false },
      `add_generation_prompt: not a field of a 'chat-template' prompt (did you mean addGenerationPrompt?); they are ${chatFields}`,
    );
    refused(
      { format: 'chat-template', instruction: 'a', chatTemplate: '{{ x }}' },
      "chatTemplate: not a field of a 'chat-template' prompt, but an option of loadTokenizer; a prompt's own template is `template`",
    );
    refused(
      { format: 'tulu', instruction: 'a', template: '{{ x }}' },
      "template: not a field of a 'tulu' prompt, but a field of a 'chat-template' prompt",
    );
    refused(
      { format: 'tulu', text: 'a' },
      "text: not a field of a 'tulu' prompt, but a field of a 'raw' prompt",
    );
    refused(
      { format: 'raw', text: 'a', addBos: true },
      "addBos: not a field of a 'raw' prompt, but a field of a 'tulu' prompt",
    );
    refused(
      { format: 'tulu', instruction: 'a', extra: 1 },
      "extra: not a field of a 'tulu' prompt; they are format, instruction, messages, addBos, specialTokensInContent",
    );
    // a field left undefined is no field given
    expect(tok.buildPrompt({ format: 'tulu', instruction: 'a', template: undefined } as never).ids).toEqual(
      tok.buildPrompt({ format: 'tulu', instruction: 'a' }).ids,
    );
  });
});
