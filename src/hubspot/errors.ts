import { CartbridgeError } from "../errors.ts";
import type { RateLimitInfo } from "./types.ts";

/** A HubSpot call that did not succeed. Subclasses exist where the caller acts differently. */
export class HubSpotError extends CartbridgeError {
  readonly status: number | undefined;
  readonly category: string | undefined;
  readonly rateLimit: RateLimitInfo | undefined;
  constructor(
    code: string,
    message: string,
    opts: { status?: number; category?: string; rateLimit?: RateLimitInfo; cause?: unknown } = {},
  ) {
    super(code, message, { cause: opts.cause });
    this.status = opts.status;
    this.category = opts.category;
    this.rateLimit = opts.rateLimit;
  }
}

/** 429: wait `retryAfterMs` (TEN_SECONDLY_ROLLING) or until the daily budget returns (DAILY). */
export class HubSpotRateLimitError extends HubSpotError {
  readonly policy: string;
  readonly retryAfterMs: number;
  constructor(message: string, opts: { policy: string; retryAfterMs: number; rateLimit?: RateLimitInfo }) {
    super("HUBSPOT_RATE_LIMITED", message, {
      status: 429,
      category: "RATE_LIMIT",
      rateLimit: opts.rateLimit,
    });
    this.policy = opts.policy;
    this.retryAfterMs = opts.retryAfterMs;
  }
  get daily(): boolean {
    return this.policy.toUpperCase() === "DAILY";
  }
}

/** 5xx, 423, 477, timeouts and resets: the same request may succeed later; back off at least `minDelayMs`. */
export class HubSpotUnavailableError extends HubSpotError {
  readonly minDelayMs: number;
  constructor(
    message: string,
    opts: {
      status?: number;
      category?: string;
      minDelayMs?: number;
      rateLimit?: RateLimitInfo;
      cause?: unknown;
      code?: string;
    },
  ) {
    super(opts.code ?? "HUBSPOT_UNAVAILABLE", message, opts);
    this.minDelayMs = opts.minDelayMs ?? 0;
  }
}

/**
 * A 4xx that blames the request or the portal's setup, not an input: 404/410 (no such endpoint or object
 * type: a wrong HUBSPOT_BASE_URL, a retired API version, a portal without carts), 405 (method not allowed
 * there), 409 (a conflicting concurrent write), 415 (content type), and any other 4xx HubSpot does not
 * document as a validation error. Sending the same carts again may succeed once it passes or an operator
 * fixes it, so they are retried with backoff like a 5xx — never dead-lettered.
 */
export class HubSpotRequestRefusedError extends HubSpotUnavailableError {
  constructor(message: string, opts: { status: number; category?: string; rateLimit?: RateLimitInfo }) {
    super(message, { ...opts, code: "HUBSPOT_REQUEST_REFUSED" });
  }
}

/** 401/403: the token is wrong, revoked or lacks a scope; sending must stop until an operator acts. */
export class HubSpotAuthError extends HubSpotError {
  constructor(message: string, opts: { status: number; category?: string; rateLimit?: RateLimitInfo }) {
    super("HUBSPOT_UNAUTHORIZED", message, opts);
  }
}

/**
 * 400 (validation) and 413 (too large): an input is at fault and retrying the same input cannot help; a
 * batch is split until the inputs at fault are alone, and those become dead letters.
 */
export class HubSpotRejectedError extends HubSpotError {
  /** `context` of HubSpot's error body (e.g. `{ ids: [...] }`). */
  readonly context: Readonly<Record<string, readonly string[]>> | undefined;
  constructor(
    message: string,
    opts: {
      status: number;
      category?: string;
      context?: Record<string, string[]>;
      rateLimit?: RateLimitInfo;
    },
  ) {
    super("HUBSPOT_REJECTED", message, opts);
    this.context = opts.context;
  }
}
