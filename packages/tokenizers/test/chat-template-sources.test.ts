import { join } from 'node:path';
import { describeShared, sharedPath } from '@implicit-it/testkit';
import { beforeAll, expect, it } from 'vitest';
import {
  createTokenizer,
  PromptError,
  readTokenizerFiles,
  type TokenizerFiles,
  TokenizerLoadError,
} from '../src/index.js';

const SMOLLM = sharedPath('fixtures/tokenizers', 'smollm');
const LLAMA2 = sharedPath('fixtures/tokenizers', 'llama2');

function promptError(run: () => unknown): PromptError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PromptError);
    return error as PromptError;
  }
  throw new Error('no PromptError');
}

describeShared(
  'chat templates: where they come from, and errors naming it',
  ['fixtures/tokenizers/smollm/tokenizer.json', 'fixtures/tokenizers/llama2/chat_template.jinja'],
  () => {
    let smollm: TokenizerFiles;
    let llama2: TokenizerFiles;
    beforeAll(async () => {
      smollm = await readTokenizerFiles(SMOLLM);
      llama2 = await readTokenizerFiles(LLAMA2);
    });
    const withTemplates = (chat_template: unknown): TokenizerFiles => ({
      ...smollm,
      tokenizerConfig: { ...smollm.tokenizerConfig, chat_template },
    });

    it('a template that is not valid jinja is named as such, with the file it came from', () => {
      const broken = '{% for message in messages %}{{ message.content }}'; // no endfor
      const own = promptError(() =>
        createTokenizer(withTemplates(broken)).buildPrompt({ format: 'chat-template', instruction: 'Hi' }),
      );
      expect(own.code).toBe('tokenizers.invalid_prompt');
      expect(own.message).toMatch(
        `the chat template of ${SMOLLM} (${join(SMOLLM, 'tokenizer_config.json')}, field chat_template) is not a valid jinja template (`,
      );
      expect(own.message).not.toMatch(/failed to render these messages/);

      const jinjaFile = promptError(() =>
        createTokenizer({ ...llama2, chatTemplate: '{{ messages[0].content ' }).buildPrompt({
          format: 'chat-template',
          instruction: 'Hi',
        }),
      );
      expect(jinjaFile.message).toMatch(
        `the chat template of ${LLAMA2} (${join(LLAMA2, 'chat_template.jinja')}) is not a valid jinja template (Unexpected end of input)`,
      );

      const option = promptError(() =>
        createTokenizer(smollm, { chatTemplate: '{% if x %}a{% endfor %}' }).buildPrompt({
          format: 'chat-template',
          instruction: 'Hi',
        }),
      );
      expect(option.message).toMatch(`(the chatTemplate option) is not a valid jinja template (`);

      const passed = promptError(() =>
        createTokenizer(smollm).buildPrompt({
          format: 'chat-template',
          template: '{% if %}',
          instruction: 'Hi',
        }),
      );
      expect(passed.message).toMatch(`(the template given to buildPrompt) is not a valid jinja template (`);
    });

    it('a template that raises names where it came from and keeps its message', () => {
      const refusing =
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with a user message') }}{% endif %}{{ messages[0]['content'] }}";
      const e = promptError(() =>
        createTokenizer(withTemplates(refusing)).buildPrompt({
          format: 'chat-template',
          messages: [
            { role: 'assistant', content: 'Hello' },
            { role: 'user', content: 'Hi' },
          ],
        }),
      );
      expect(e.message).toBe(
        `the chat template of ${SMOLLM} (${join(SMOLLM, 'tokenizer_config.json')}, field chat_template) failed to render these messages: Conversation must start with a user message`,
      );
    });

    it("a list of named templates: 'default' is used; without one, as Hugging Face, none is picked silently", () => {
      const named = [
        { name: 'tool_use', template: 'TOOL {{ messages[0].content }}' },
        { name: 'default', template: 'DEFAULT {{ messages[0].content }}' },
      ];
      const tok = createTokenizer(withTemplates(named));
      expect(tok.chatTemplate).toBe(named[1]!.template);
      expect(tok.buildPrompt({ format: 'chat-template', instruction: 'Hi' }).text).toBe('DEFAULT Hi');
      // a template's name picks it, as apply_chat_template(chat_template=name) does
      expect(tok.buildPrompt({ format: 'chat-template', instruction: 'Hi', template: 'tool_use' }).text).toBe(
        'TOOL Hi',
      );
      expect(createTokenizer(withTemplates(named), { chatTemplate: 'tool_use' }).chatTemplate).toBe(
        named[0]!.template,
      );

      const noDefault = createTokenizer(
        withTemplates([named[0], { name: 'rag', template: 'RAG {{ messages[0].content }}' }]),
      );
      expect(noDefault.chatTemplate).toBeUndefined();
      const e = promptError(() => noDefault.buildPrompt({ format: 'chat-template', instruction: 'Hi' }));
      expect(e.code).toBe('tokenizers.no_chat_template');
      expect(e.message).toBe(
        `${SMOLLM} has chat templates named "tool_use", "rag" and none named "default" (${join(SMOLLM, 'tokenizer_config.json')}, field chat_template); ` +
          "pass { template } (a template or one of those names) or use format 'tulu'",
      );
      expect(
        noDefault.buildPrompt({ format: 'chat-template', instruction: 'Hi', template: 'rag' }).text,
      ).toBe('RAG Hi');
      // a misspelt name is no template whose output is that word
      const misspelt = promptError(() =>
        tok.buildPrompt({ format: 'chat-template', instruction: 'Hi', template: 'defualt' }),
      );
      expect([misspelt.code, misspelt.message]).toEqual([
        'tokenizers.invalid_prompt',
        `template: "defualt" is neither a jinja template nor one of the tokenizer's named templates (did you mean "default"?): "tool_use", "default"`,
      ]);
      expect(() => createTokenizer(withTemplates(named), { chatTemplate: 'tool-use' })).toThrow(
        `chatTemplate: "tool-use" is neither a jinja template nor one of the tokenizer's named templates (did you mean "tool_use"?): "tool_use", "default" (${join(SMOLLM, 'tokenizer_config.json')})`,
      );
    });

    it('loadTokenizer / createTokenizer refuse an option they do not take, naming the one meant', () => {
      expect(() => createTokenizer(smollm, { chat_template: '{{ x }}' } as never)).toThrow(
        'chat_template: not an option of loadTokenizer / createTokenizer (did you mean chatTemplate?); they are eosIds, chatTemplate',
      );
      expect(() => createTokenizer(smollm, { eosId: 2 } as never)).toThrow(
        'eosId: not an option of loadTokenizer / createTokenizer (did you mean eosIds?); they are eosIds, chatTemplate',
      );
      expect(() => createTokenizer(smollm, null as never)).toThrow('options: expected an object, got null');
      expect(createTokenizer(smollm, { eosIds: undefined, chatTemplate: undefined }).eosIds).toEqual(
        createTokenizer(smollm).eosIds,
      );
    });

    it('templates see additional_special_tokens as transformers passes them (special_tokens_map), only when set', () => {
      const template =
        '{% if additional_special_tokens is defined %}{{ additional_special_tokens | join(",") }}{% else %}none{% endif %}|{{ messages[0].content }}';
      const render = (files: TokenizerFiles) =>
        createTokenizer(files, { chatTemplate: template })
          .buildPrompt({
            format: 'chat-template',
            instruction: 'Hi',
          })
          .text.replace(/\|Hi$/, '');
      // smollm's tokenizer_config.json lists them as strings
      expect(render(smollm)).toBe('<|im_start|>,<|im_end|>');
      // special_tokens_map.json alone (an older tokenizer_config.json, without added_tokens_decoder),
      // as AddedToken objects: their contents
      const {
        additional_special_tokens: _,
        added_tokens_decoder: __,
        ...config
      } = smollm.tokenizerConfig ?? {};
      expect(render({ ...smollm, tokenizerConfig: config })).toBe('<|im_start|>,<|im_end|>');
      // none, or an empty list: not defined, as Python's special_tokens_map leaves out what is empty
      expect(render({ ...smollm, tokenizerConfig: config, specialTokensMap: undefined })).toBe('none');
      expect(
        render({
          ...smollm,
          tokenizerConfig: { ...config, additional_special_tokens: [] },
          specialTokensMap: undefined,
        }),
      ).toBe('none');
    });

    it("additional_special_tokens: tokenizer_config.json's alone where it has added_tokens_decoder, else both files' as _from_pretrained merges them", () => {
      // transformers 4.x `_from_pretrained`: with added_tokens_decoder, special_tokens_map.json is not
      // read; without, its list is appended `if token not in additional_special_tokens`, where an
      // AddedToken (an object entry) equals no string
      const template =
        '{% if additional_special_tokens is defined %}{{ additional_special_tokens | join(",") }}{% else %}none{% endif %}|{{ messages[0].content }}';
      const render = (config: Record<string, unknown>, map: Record<string, unknown>) =>
        createTokenizer(
          { ...smollm, tokenizerConfig: config, specialTokensMap: map },
          { chatTemplate: template },
        )
          .buildPrompt({ format: 'chat-template', instruction: 'Hi' })
          .text.replace(/\|Hi$/, '');
      const { additional_special_tokens: _, ...modern } = smollm.tokenizerConfig ?? {};
      const { added_tokens_decoder: __, ...legacy } = modern;
      const map = smollm.specialTokensMap!; // its two tokens as AddedToken objects
      expect(modern.added_tokens_decoder).toBeDefined();
      expect(render(modern, map)).toBe('none');
      expect(render({ ...modern, additional_special_tokens: ['<|im_end|>'] }, map)).toBe('<|im_end|>');
      expect(render(legacy, map)).toBe('<|im_start|>,<|im_end|>');
      expect(render({ ...legacy, additional_special_tokens: ['<|im_start|>', '<|im_end|>'] }, map)).toBe(
        '<|im_start|>,<|im_end|>,<|im_start|>,<|im_end|>',
      );
      // strings of the map equal to the config's are not appended again
      expect(
        render(
          { ...legacy, additional_special_tokens: ['<|im_start|>', '<|im_end|>'] },
          { additional_special_tokens: ['<|im_end|>', '<repo_name>', '<repo_name>'] },
        ),
      ).toBe('<|im_start|>,<|im_end|>,<repo_name>');
    });

    it("additional_special_tokens of special_tokens_map.json are special for decoding, as Python's all_special_ids", () => {
      // <|im_start|> an added token that tokenizer.json does not mark special, listed only in special_tokens_map.json
      const tokenizerJson = structuredClone(smollm.tokenizerJson);
      for (const t of tokenizerJson.added_tokens as { content: string; special: boolean }[])
        if (t.content === '<|im_start|>') t.special = false;
      const { additional_special_tokens: _, ...config } = smollm.tokenizerConfig ?? {};
      const tok = createTokenizer({ ...smollm, tokenizerJson, tokenizerConfig: config });
      const ids = tok.encode('<|im_start|>hi', { addSpecialTokens: false });
      expect(tok.decode(ids)).toBe('<|im_start|>hi');
      expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hi');
    });

    it('a malformed entry of the list names its index', () => {
      let error: unknown;
      try {
        createTokenizer(withTemplates([{ name: 'default', template: 5 }]));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TokenizerLoadError);
      expect((error as TokenizerLoadError).field).toBe('chat_template[0].template');
      expect((error as TokenizerLoadError).message).toMatch(/must be a jinja template string, found 5$/);
    });
  },
);
