const marker = Symbol.for('implicit-it.error');

/**
 * Base class of every error thrown by implicit-it packages. `isInstance` works across duplicate
 * copies of a package (it checks a `Symbol.for` marker, not the prototype chain).
 *
 * @example
 * try {
 *   compileRules('eos-uniformm', vocab);
 * } catch (error) {
 *   if (ImplicitItError.isInstance(error)) console.error(error.code); // 'rules.invalid_config'
 * }
 */
export class ImplicitItError extends Error {
  /** @internal */ readonly [marker] = true;
  /** A stable, machine-readable code, e.g. `rules.invalid_config`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImplicitItError';
    this.code = code;
  }

  /**
   * Whether `error` is an implicit-it error of this class: `ImplicitItError.isInstance` accepts every
   * implicit-it error, `RuleConfigError.isInstance` only rule-config errors. It works across duplicate
   * copies of a package (by the error's stable `name`) and in minified bundles, where class names
   * change (by the prototype chain), and detached from its class, as a callback
   * (`errors.filter(RuleConfigError.isInstance)`).
   */
  // any subclass, whatever its constructor takes (GenerationError's third argument is a param name)
  static isInstance<T extends abstract new (...args: never[]) => ImplicitItError>(
    this: T,
    error: unknown,
  ): error is InstanceType<T> {
    // biome-ignore lint/complexity/noThisInStatic: the class it was called on (RuleConfigError.isInstance), not the base class
    return isInstanceOf(this, error);
  }

  static {
    // `isInstance` read from a class is a function that knows the class it was read from, so that it
    // works as a callback too, where `this` would be undefined (each class's function made once)
    const made = new WeakMap<object, (error: unknown) => boolean>();
    Object.defineProperty(ImplicitItError, 'isInstance', {
      configurable: true,
      get(this: abstract new (...args: never[]) => ImplicitItError) {
        const cls = this;
        let check = made.get(cls);
        if (check === undefined) {
          // called as a method of another class (`ImplicitItError.isInstance.call(Other, e)`), that one
          check = function (this: unknown, error: unknown) {
            return isInstanceOf(typeof this === 'function' ? (this as typeof cls) : cls, error);
          };
          made.set(cls, check);
        }
        return check;
      },
    });
  }
}

/** `ImplicitItError.isInstance` for the class `cls`. */
function isInstanceOf(cls: abstract new (...args: never[]) => ImplicitItError, error: unknown): boolean {
  if (typeof error !== 'object' || error === null || (error as Record<symbol, unknown>)[marker] !== true)
    return false;
  return cls === ImplicitItError || error instanceof cls || (error as Error).name === cls.name;
}

/**
 * An invalid rule-set configuration; `path` names the field (e.g. `eos.rampLength`).
 *
 * @example
 * try {
 *   parseRuleSetConfig({ eos: { rampLength: -1 } });
 * } catch (error) {
 *   if (RuleConfigError.isInstance(error)) console.log(error.path); // 'eos.rampLength'
 * }
 */
export class RuleConfigError extends ImplicitItError {
  readonly path: string;
  constructor(path: string, message: string) {
    super('rules.invalid_config', path ? `${path}: ${message}` : message);
    this.name = 'RuleConfigError';
    this.path = path;
  }
}

/**
 * Invalid per-sequence input: negative lengths, ids outside the vocabulary, a logits row too small.
 *
 * @example
 * rules.createState({ promptIds: [1e6], scopeStart: 0 }); // throws RuleInputError (code 'rules.invalid_input')
 */
export class RuleInputError extends ImplicitItError {
  constructor(message: string) {
    super('rules.invalid_input', message);
    this.name = 'RuleInputError';
  }
}
