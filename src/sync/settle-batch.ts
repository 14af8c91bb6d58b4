import type { BatchOutcome, InputError, UpsertInput } from "../hubspot/types.ts";
import type { ClaimedCart, RejectedCart, SentCart } from "../store/store.ts";
import type { Failure } from "./classify-failure.ts";

/**
 * What happens to each claimed cart of one upsert, given HubSpot's answer or the failure of the call. Pure:
 * the batch and its outcome in, the decision out; the cart lane (flusher.ts) writes it back to the store.
 *
 * Answered (a 200 or a 207):
 * - a result names the input (by trace id, else by key) → `sent`, with HubSpot's record id;
 * - an error names it → `rejected` (a dead letter; HubSpot's message is the reason);
 * - named by neither: when every error of the answer named its input, the answer wrote it (HubSpot does not
 *   promise to echo trace ids or keys) → `sent` without a record id, never a guessed one; when an error named
 *   no input, the answer does not say → `retry`.
 *
 * Failed (see classify-failure.ts):
 * - `rate_limited`, `auth`, `setup` → `release`: nothing was written, the claims are given back untouched;
 * - `rejected`: one input → `rejected`; several → `split` in halves, sent again to isolate the inputs at fault;
 * - `refused`, `unavailable` → `retry` with backoff, at least `minDelayMs`.
 */
export interface CartEntry {
  readonly claim: ClaimedCart;
  readonly input: UpsertInput;
}

export type CartBatchOutcome =
  { readonly answer: Pick<BatchOutcome, "results" | "errors"> } | { readonly failure: Failure };

export interface CartSettlement {
  readonly sent: readonly SentCart[];
  readonly rejected: readonly RejectedCart[];
  /** Entries to try again later (marked failed with backoff). */
  readonly retry: RetryLater | undefined;
  /** Entries given back untouched (nothing was written). */
  readonly release: readonly CartEntry[];
  /** The halves of a whole-batch rejection, each to be sent again; empty otherwise. */
  readonly split: readonly (readonly CartEntry[])[];
}

export interface RetryLater {
  readonly entries: readonly CartEntry[];
  readonly reason: string;
  readonly minDelayMs: number;
}

/** The reason stored for a cart that a 207 answer neither wrote nor rejected by name. */
export const UNANSWERED_REASON = "HubSpot's answer named neither a result nor an error for this cart";

const NONE: readonly never[] = [];

export function settleBatch(entries: readonly CartEntry[], outcome: CartBatchOutcome): CartSettlement {
  if ("answer" in outcome) return settleAnswer(entries, outcome.answer);
  return settleFailure(entries, outcome.failure);
}

function settleAnswer(
  entries: readonly CartEntry[],
  answer: Pick<BatchOutcome, "results" | "errors">,
): CartSettlement {
  const sent: SentCart[] = [];
  const rejected: RejectedCart[] = [];
  const match = matchAnswer(entries, answer, {
    written: (e, hubspotId) => sent.push({ key: e.claim.key, version: e.claim.version, hubspotId }),
    rejected: (e, err) =>
      rejected.push({
        key: e.claim.key,
        version: e.claim.version,
        reason: err.message,
        category: err.category,
      }),
  });
  if (match.unanswered.length > 0 && match.unplacedErrors === 0) {
    for (const e of match.unanswered)
      sent.push({ key: e.claim.key, version: e.claim.version, hubspotId: undefined });
    return { sent, rejected, retry: undefined, release: NONE, split: NONE };
  }
  const retry =
    match.unanswered.length > 0
      ? { entries: match.unanswered, reason: UNANSWERED_REASON, minDelayMs: 0 }
      : undefined;
  return { sent, rejected, retry, release: NONE, split: NONE };
}

function settleFailure(entries: readonly CartEntry[], failure: Failure): CartSettlement {
  const { release, reject, split, retry } = settleFailedCall(entries, failure);
  const rejected =
    failure.kind === "rejected"
      ? reject.map(({ claim }) => ({
          key: claim.key,
          version: claim.version,
          reason: failure.message,
          category: failure.category,
        }))
      : NONE;
  const later =
    retry.length > 0 && (failure.kind === "refused" || failure.kind === "unavailable")
      ? { entries: retry, reason: failure.message, minDelayMs: failure.minDelayMs }
      : undefined;
  return { sent: NONE, rejected, retry: later, release, split };
}

/** What a failed call means for the units of a batch (carts, contact groups), whatever the lane. */
export interface FailedCallSettlement<E> {
  /** Given back untouched: nothing was written (`rate_limited`, `auth`, `setup`). */
  readonly release: readonly E[];
  /** The one unit a rejection is about: a dead letter. */
  readonly reject: readonly E[];
  /** The halves of a rejected batch of several units, each to be sent again. */
  readonly split: readonly (readonly E[])[];
  /** Tried again later with backoff (`refused`, `unavailable`). */
  readonly retry: readonly E[];
}

export function settleFailedCall<E>(units: readonly E[], failure: Failure): FailedCallSettlement<E> {
  switch (failure.kind) {
    case "rate_limited":
    case "auth":
    case "setup":
      return { release: units, reject: NONE, split: NONE, retry: NONE };
    case "rejected": {
      if (units.length === 1) return { release: NONE, reject: units, split: NONE, retry: NONE };
      const half = Math.ceil(units.length / 2);
      return { release: NONE, reject: NONE, split: [units.slice(0, half), units.slice(half)], retry: NONE };
    }
    case "refused":
    case "unavailable":
      return { release: NONE, reject: NONE, split: NONE, retry: units };
  }
}

/**
 * Pairs a batch answer's results and errors with the inputs they name: by `objectWriteTraceId`, else by the
 * id-property value (`input.id`). Each entry is settled at most once, results first, then the errors in
 * order. Returns the entries the answer named nowhere and how many errors named no input. Shared by the
 * cart and line item lanes.
 */
export function matchAnswer<E extends { readonly input: UpsertInput }>(
  entries: readonly E[],
  answer: Pick<BatchOutcome, "results" | "errors">,
  on: { written(entry: E, hubspotId: string): void; rejected(entry: E, error: InputError): void },
): { readonly unanswered: E[]; readonly unplacedErrors: number } {
  const byTrace = new Map(entries.map((e) => [e.input.objectWriteTraceId, e]));
  const byKey = new Map(entries.map((e) => [e.input.id, e]));
  const settled = new Set<E>();
  for (const r of answer.results) {
    const e =
      (r.objectWriteTraceId && byTrace.get(r.objectWriteTraceId)) || (r.idValue && byKey.get(r.idValue));
    if (!e || settled.has(e)) continue;
    settled.add(e);
    on.written(e, r.id);
  }
  let unplacedErrors = 0;
  for (const err of answer.errors) {
    const hit = [...err.traceIds.map((t) => byTrace.get(t)), ...err.ids.map((id) => byKey.get(id))];
    if (!hit.some((e) => e !== undefined)) unplacedErrors++;
    for (const e of hit) {
      if (!e || settled.has(e)) continue;
      settled.add(e);
      on.rejected(e, err);
    }
  }
  return { unanswered: entries.filter((e) => !settled.has(e)), unplacedErrors };
}
