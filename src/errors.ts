/** Errors with stable codes. Expected outcomes are values; these are for infrastructure and bugs. */

export class CartbridgeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Configuration is missing or malformed; `problems` names every one (never a secret's value). */
export class ConfigError extends CartbridgeError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super("CONFIG_INVALID", `invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.problems = problems;
  }
}

/** The store could not do what was asked; `retryable` says whether trying again may work. */
export class StoreError extends CartbridgeError {
  readonly retryable: boolean;
  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super("STORE_FAILED", message, { cause: options.cause });
    this.retryable = options.retryable;
  }
}
