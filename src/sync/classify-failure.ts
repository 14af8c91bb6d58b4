import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotRequestRefusedError,
  HubSpotUnavailableError,
} from "../hubspot/errors.ts";
import type { RateLimitInfo } from "../hubspot/types.ts";

/**
 * What a failed HubSpot call means for a sender lane, as a value (the failure ladder every lane shares):
 *
 * - `rate_limited` (429): nothing was written; wait `retryAfterMs`. A `daily` limit pauses the lane, a
 *   rolling one the shared rate budget. The claims are given back untouched.
 * - `auth` (401/403): the token is wrong or lacks a scope; the lane pauses until it passes or an operator
 *   acts. The claims are given back untouched.
 * - `setup` (a 400 that blames the id property itself, as the lane's `blamesSetup` says): no input is at
 *   fault; the portal's properties are read again. The claims are given back untouched.
 * - `rejected` (400/413): an input is at fault; a batch is split until it is alone, then dead-lettered.
 * - `refused` (404/405/409/415 …): the request or the portal is at fault, not an input; retried with backoff.
 * - `unavailable` (5xx, 423, timeouts, resets, and anything that is not a HubSpot answer): may pass; retried
 *   with backoff, at least `minDelayMs` later.
 *
 * Pure: the error in, the value out. `message` is HubSpot's text (it can quote values: it goes to the dead
 * letter or the row's last error, not into log messages).
 */
export type Failure =
  | {
      readonly kind: "rate_limited";
      readonly status: number | undefined;
      readonly retryAfterMs: number;
      readonly daily: boolean;
      readonly policy: string;
      readonly rateLimit: RateLimitInfo | undefined;
    }
  | {
      readonly kind: "auth" | "setup" | "rejected";
      readonly status: number | undefined;
      readonly category: string | undefined;
      readonly message: string;
    }
  | {
      readonly kind: "refused";
      readonly status: number | undefined;
      readonly category: string | undefined;
      readonly minDelayMs: number;
      readonly message: string;
    }
  | {
      readonly kind: "unavailable";
      /** HubSpot's status when it answered (5xx, 423); absent when it did not (a timeout, a reset). */
      readonly status?: number;
      readonly minDelayMs: number;
      readonly message: string;
    };

/**
 * Classifies what a HubSpot call threw. `blamesSetup` tells, for a whole-batch 400, whether HubSpot blames
 * the lane's id property rather than an input (each lane knows its property); without it a 400 is `rejected`.
 */
export function classifyFailure(error: unknown, blamesSetup?: (message: string) => boolean): Failure {
  if (error instanceof HubSpotRateLimitError)
    return {
      kind: "rate_limited",
      status: error.status,
      retryAfterMs: error.retryAfterMs,
      daily: error.daily,
      policy: error.policy,
      rateLimit: error.rateLimit,
    };
  if (error instanceof HubSpotAuthError)
    return { kind: "auth", status: error.status, category: error.category, message: error.message };
  if (error instanceof HubSpotRejectedError)
    return {
      kind: blamesSetup?.(error.message) === true ? "setup" : "rejected",
      status: error.status,
      category: error.category,
      message: error.message,
    };
  if (error instanceof HubSpotRequestRefusedError)
    return {
      kind: "refused",
      status: error.status,
      category: error.category,
      minDelayMs: error.minDelayMs,
      message: error.message,
    };
  const status = error instanceof HubSpotUnavailableError ? error.status : undefined;
  return {
    kind: "unavailable",
    ...(status === undefined ? {} : { status }),
    minDelayMs: error instanceof HubSpotUnavailableError ? error.minDelayMs : 0,
    message: error instanceof Error ? error.message : String(error),
  };
}

/**
 * The `status` label of `hubspot_requests_total` for a failed call: HubSpot's status whenever it answered
 * (a 5xx or 423 included), `error` when it did not (a timeout, a reset, a refused connection).
 */
export function failureStatus(failure: Failure): string {
  return failure.status === undefined ? "error" : String(failure.status);
}
