import type { RateLimitInfo } from "../hubspot/types.ts";
import { classifyFailure, failureStatus } from "./classify-failure.ts";
import type { LaneContext, SenderObserver } from "./lane-types.ts";
import { secondsSince, takeSlot } from "./pacing.ts";

/** How every lane meters its HubSpot requests: one budget slot each, one observation per answer. */
type Meter = Pick<LaneContext, "budget" | "observer" | "now">;

/** Waits until the shared budget grants a request slot; waits while it is spent are rate limit waits. */
export function takeLaneSlot(lane: Meter): Promise<void> {
  return takeSlot(lane.budget, lane.now, (ms) => lane.observer.rateLimitWait?.(ms));
}

/**
 * HubSpot answered `operation`: the budget learns its rate limit headers, the observer the status (`207`
 * when the answer carries per-input errors, else `okStatus`), the duration since `started` and the size.
 */
export function recordAnswer(
  lane: Meter,
  operation: string,
  answer: { readonly errors?: readonly unknown[]; readonly rateLimit: RateLimitInfo | undefined },
  okStatus: string,
  started: number,
  size: number,
): void {
  lane.observer.request?.(operation, learnFrom(lane, answer, okStatus), secondsSince(started), size);
}

/** The budget learns the answer's rate limit headers; the answer's status: `207` with per-input errors. */
function learnFrom(
  lane: Meter,
  answer: { readonly errors?: readonly unknown[]; readonly rateLimit: RateLimitInfo | undefined },
  okStatus: string,
): string {
  lane.budget.observe(answer.rateLimit, lane.now());
  return answer.errors !== undefined && answer.errors.length > 0 ? "207" : okStatus;
}

/** A HubSpot request as the metrics name it: its operation, its size, and the status of a success. */
interface MeteredCall {
  readonly operation: string;
  readonly size: number;
  readonly okStatus: string;
}

/**
 * One metered request whose failure the caller does not settle itself: takes a slot, then `recordedRequest`.
 */
export async function meteredRequest<T extends { readonly rateLimit: RateLimitInfo | undefined }>(
  lane: Meter,
  request: MeteredCall,
  call: () => Promise<T>,
): Promise<T> {
  await takeLaneSlot(lane);
  return recordedRequest(lane, request, call);
}

/**
 * One request whose slot is already taken: records the answer, or the failure under HubSpot's status
 * (`failureStatus`: `error` when HubSpot did not answer) and throws it on.
 */
export async function recordedRequest<T extends { readonly rateLimit: RateLimitInfo | undefined }>(
  lane: Meter,
  request: MeteredCall,
  call: () => Promise<T>,
): Promise<T> {
  return observedRequest(lane.observer, request, call, (answer) => learnFrom(lane, answer, request.okStatus));
}

/**
 * Times one HubSpot request and tells `observer` how it went: `statusOf(answer)`, or the failure under
 * HubSpot's status (`failureStatus`: `error` when HubSpot did not answer), thrown on. Every request the
 * bridge makes to HubSpot is counted through here or `recordAnswer`.
 */
export async function observedRequest<T>(
  observer: Pick<SenderObserver, "request">,
  request: { readonly operation: string; readonly size: number },
  call: () => Promise<T>,
  statusOf: (answer: T) => string,
): Promise<T> {
  const started = performance.now();
  let answer: T;
  try {
    answer = await call();
  } catch (error) {
    const status = failureStatus(classifyFailure(error));
    observer.request?.(request.operation, status, secondsSince(started), request.size);
    throw error;
  }
  observer.request?.(request.operation, statusOf(answer), secondsSince(started), request.size);
  return answer;
}
