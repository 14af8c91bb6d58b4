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
    opts: { status?: number; minDelayMs?: number; rateLimit?: RateLimitInfo; cause?: unknown },
  ) {
    super("HUBSPOT_UNAVAILABLE", message, opts);
    this.minDelayMs = opts.minDelayMs ?? 0;
  }
}

/** 401/403: the token is wrong, revoked or lacks a scope; sending must stop until an operator acts. */
export class HubSpotAuthError extends HubSpotError {
  constructor(message: string, opts: { status: number; category?: string; rateLimit?: RateLimitInfo }) {
    super("HUBSPOT_UNAUTHORIZED", message, opts);
  }
}

/** 4xx validation: the input is at fault; retrying the same input cannot help. */
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
