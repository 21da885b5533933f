import { meantOption } from '@implicit-it/rules';

/**
 * The message for the first field of `value` that is not one of `known` (a field left undefined, as a
 * spread of optional fields leaves it, is no field given), or undefined when there is none:
 * `chat_template: not an option of loadTokenizer (did you mean chatTemplate?); they are eosIds, chatTemplate`.
 * `elsewhere` names fields that belong to another kind of value (`template` of a 'chat-template'
 * prompt given to a 'tulu' one), said instead of a suggestion.
 */
export function unknownFieldMessage(
  value: object,
  known: readonly string[],
  what: string,
  elsewhere: Readonly<Record<string, string>> = {},
): string | undefined {
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || known.includes(key)) continue;
    if (Object.hasOwn(elsewhere, key)) return `${key}: not ${what}, but ${elsewhere[key]}`;
    const meant = meantOption(key, known);
    return `${key}: not ${what}${meant ? ` (did you mean ${meant}?)` : ''}; they are ${known.join(', ')}`;
  }
  return undefined;
}

/**
 * The message for a `template` given as a name (no jinja tag in it) that is none of the tokenizer's
 * named templates, or undefined: `"defualt"` would otherwise be rendered as a template whose output
 * is that word.
 */
export function misnamedTemplateMessage(
  template: string,
  names: readonly string[],
  field: string,
): string | undefined {
  if (names.length === 0 || names.includes(template) || /\{[{%#]/.test(template)) return undefined;
  const meant = meantOption(template, names);
  return (
    `${field}: ${JSON.stringify(template)} is neither a jinja template nor one of the tokenizer's named templates` +
    `${meant ? ` (did you mean ${JSON.stringify(meant)}?)` : ''}: ${names.map((n) => JSON.stringify(n)).join(', ')}`
  );
}
