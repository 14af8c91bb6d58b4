import type { HubSpotError } from "./errors.ts";
import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotRequestRefusedError,
  HubSpotUnavailableError,
} from "./errors.ts";
import { retryAfterMs, type Headers } from "./rate-limit-headers.ts";
import type { RateLimitInfo } from "./types.ts";

/**
 * A non-2xx answer as the HubSpotError the caller acts on: 429 rate limited (with the wait), 401/403 auth,
 * 423/477/5xx/408 unavailable (with a minimum delay), 400/413 rejected input, any other 4xx a refused request.
 */
export function classify(
  status: number,
  headers: Headers,
  json: unknown,
  text: string,
  rateLimit: RateLimitInfo | undefined,
): HubSpotError {
  const body = (json ?? {}) as {
    message?: unknown;
    category?: unknown;
    policyName?: unknown;
    context?: Record<string, string[]>;
  };
  const message = typeof body.message === "string" ? body.message : `HTTP ${status}: ${text.slice(0, 200)}`;
  const category = typeof body.category === "string" ? body.category : undefined;
  if (status === 429) {
    const policy = typeof body.policyName === "string" ? body.policyName : "TEN_SECONDLY_ROLLING";
    // A daily limit does not roll over in an interval: only an explicit Retry-After says when it returns.
    const daily = policy.toUpperCase() === "DAILY";
    const wait = retryAfterMs(headers) ?? (daily ? 0 : (rateLimit?.intervalMs ?? 10_000));
    return new HubSpotRateLimitError(message, {
      policy,
      retryAfterMs: wait,
      ...(rateLimit ? { rateLimit } : {}),
    });
  }
  if (status === 401 || status === 403) {
    return new HubSpotAuthError(message, {
      status,
      ...(category ? { category } : {}),
      ...(rateLimit ? { rateLimit } : {}),
    });
  }
  if (status === 423) return new HubSpotUnavailableError(message, { status, minDelayMs: 2000 });
  if (status === 477)
    return new HubSpotUnavailableError(message, { status, minDelayMs: retryAfterMs(headers) ?? 60_000 });
  if (status >= 500 || status === 408) {
    return new HubSpotUnavailableError(message, { status, minDelayMs: retryAfterMs(headers) ?? 0 });
  }
  // Only a validation error (400) or a request too large (413, split until the big input is alone)
  // blames an input; any other 4xx blames the request or the setup (see HubSpotRequestRefusedError).
  if (status !== 400 && status !== 413) {
    return new HubSpotRequestRefusedError(message, {
      status,
      ...(category ? { category } : {}),
      ...(rateLimit ? { rateLimit } : {}),
    });
  }
  return new HubSpotRejectedError(message, {
    status,
    ...(category ? { category } : {}),
    ...(body.context ? { context: body.context } : {}),
    ...(rateLimit ? { rateLimit } : {}),
  });
}
