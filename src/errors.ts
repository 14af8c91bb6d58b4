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

/**
 * The store was written by a newer cartbridge (its schema records a migration this code does not know):
 * reading it could misread it, so the process stops (exit 78) and says which versions.
 */
export class StoreSchemaError extends CartbridgeError {
  readonly storeVersion: number;
  readonly codeVersion: number;
  constructor(storeVersion: number, codeVersion: number) {
    super(
      "STORE_SCHEMA_NEWER",
      `the store's schema is version ${storeVersion}, newer than this cartbridge knows (${codeVersion}): ` +
        "it was written by a newer release. Run that release (or newer); downgrading in place is not supported.",
    );
    this.storeVersion = storeVersion;
    this.codeVersion = codeVersion;
  }
}
