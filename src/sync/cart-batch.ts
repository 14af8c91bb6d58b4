import { randomUUID } from "node:crypto";
import type { BatchOutcome } from "../hubspot/types.ts";
import type { ClaimedCart, RejectedCart } from "../store/store.ts";
import { retrySchedule } from "./backoff.ts";
import { CLAIMS_LOST_MESSAGE, type LostClaims } from "./claim-renewal.ts";
import { classifyFailure, failureStatus, type Failure } from "./classify-failure.ts";
import { pauseForRateLimit, refusal, type CartHealth, type LanePause } from "./lane-pause.ts";
import { recordAnswer, takeLaneSlot } from "./lane-requests.ts";
import type { LaneContext } from "./lane-types.ts";
import { currentValues } from "./merge.ts";
import { secondsSince as seconds } from "./pacing.ts";
import { createValueFilter, type PortalProperties, type ValueFilter } from "./portal-properties.ts";
import { settleBatch, type CartEntry, type RetryLater } from "./settle-batch.ts";

/**
 * One batch of the cart lane, from claims to the store: builds the upsert inputs (the portal's properties
 * only), sends them, decides each cart's fate with `settleBatch` and writes it back (markSent, markRejected,
 * markFailed, release). A whole-batch rejection is narrowed by sending each half again, each with its own
 * budget slot. The flusher (flusher.ts) schedules the batches.
 */
export interface CartBatches {
  /** Sends `claims` (the caller holds a budget slot) and settles every claim. */
  send(claims: readonly ClaimedCart[]): Promise<void>;
}

export interface CartBatchOptions extends LaneContext {
  readonly idProperty: string;
  readonly portal: () => PortalProperties | undefined;
  readonly lost: LostClaims;
  readonly health: CartHealth;
  readonly pause: LanePause;
  /** HubSpot blamed the id property: the portal's properties should be read again. */
  readonly onSetupProblem: (() => void) | undefined;
  /** Carts were put back to be tried again later (HubSpot failed in a way that may pass). */
  readonly onRetryLater?: () => void;
}

/** How long sending waits after HubSpot blamed the id property (the portal watcher re-reads it meanwhile). */
export const SETUP_RETRY_MS = 1_000;

export function createCartBatches(opts: CartBatchOptions): CartBatches {
  const lane: CartLane = {
    ...opts,
    keptValues: createValueFilter({
      log: opts.log,
      onDropped: (d) => opts.observer.droppedValue?.(d),
      message: "property value left out",
    }),
    blamesSetup: (message) => isSetupProblem(message, opts.idProperty),
  };
  return {
    async send(claims) {
      const portal = opts.portal();
      if (portal === undefined) {
        await opts.store.release(
          claims.map((c) => c.key),
          opts.owner,
        );
        return;
      }
      await sendEntries(lane, toEntries(lane, claims, portal));
    },
  };
}

interface CartLane extends CartBatchOptions {
  readonly keptValues: ValueFilter;
  readonly blamesSetup: (message: string) => boolean;
}

function toEntries(lane: CartLane, claims: readonly ClaimedCart[], portal: PortalProperties): CartEntry[] {
  const idProperty = lane.idProperty;
  return claims.map((claim) => {
    const kept = lane.keptValues(portal, currentValues(claim.state));
    kept[idProperty] = claim.key;
    return {
      claim,
      input: { id: claim.key, idProperty, objectWriteTraceId: randomUUID(), properties: kept },
    };
  });
}

/** One upsert for `entries` (the caller holds a budget slot); settles every entry's claim. */
async function sendEntries(lane: CartLane, all: readonly CartEntry[]): Promise<void> {
  await sendAgainLater(
    lane,
    all.filter((e) => lane.lost.has(e.claim)),
  );
  const entries = all.filter((e) => !lane.lost.has(e.claim));
  if (entries.length === 0) return;
  const started = performance.now();
  try {
    const answer = await lane.client.upsertCarts(entries.map((e) => e.input));
    recordAnswer(lane, "carts_upsert", answer, "200", started, entries.length);
    lane.health.answered();
    await writeBack(lane, entries, answer, started);
  } catch (error) {
    const failure = classifyFailure(error, lane.blamesSetup);
    lane.observer.request?.("carts_upsert", failureStatus(failure), seconds(started), entries.length);
    await handleFailure(lane, entries, failure);
  }
}

/** Makes lost claims' carts pending again (a new version) and gives their claims back if still held. */
async function sendAgainLater(lane: CartLane, entries: readonly CartEntry[]): Promise<void> {
  if (entries.length === 0) return;
  for (const e of entries) await lane.store.markPending(e.claim.key, lane.now());
  await lane.store.release(keysOf(entries), lane.owner);
}

/** Writes back what HubSpot's answer decided; carts whose claim was lost meanwhile are sent again. */
async function writeBack(
  lane: CartLane,
  entries: readonly CartEntry[],
  answer: BatchOutcome,
  started: number,
): Promise<void> {
  const { store, log } = lane;
  const { sent, rejected, retry } = settleBatch(entries, { answer });
  const lostNow = new Set(entries.filter((e) => lane.lost.has(e.claim)).map((e) => e.claim.key));
  await sendAgainLater(
    lane,
    entries.filter((e) => lostNow.has(e.claim.key)),
  );
  const held = sent.filter((c) => !lostNow.has(c.key));
  if (held.length > 0) {
    const marked = await store.markSent(held, lane.owner);
    if (marked.length < held.length) log.warn({ count: held.length - marked.length }, CLAIMS_LOST_MESSAGE);
    lane.observer.sent?.(
      marked,
      entries.map((e) => e.claim),
    );
  }
  if (rejected.length > 0) await deadLetter(lane, rejected);
  if (retry !== undefined) {
    log.warn({ count: retry.entries.length }, "batch answer did not cover every input");
    await retryLater(lane, retry);
  }
  log.info(
    {
      inputs: entries.length,
      written: sent.length,
      rejected: rejected.length,
      ms: Math.round(seconds(started) * 1000),
    },
    "batch sent",
  );
}

/** The lane's response to a failed upsert (pause, re-read, log), then the claims' fate per `settleBatch`. */
async function handleFailure(lane: CartLane, entries: readonly CartEntry[], failure: Failure): Promise<void> {
  respond(lane, failure, entries.length);
  const settlement = settleBatch(entries, { failure });
  if (settlement.release.length > 0) await lane.store.release(keysOf(settlement.release), lane.owner);
  if (settlement.rejected.length > 0) await deadLetter(lane, settlement.rejected);
  if (settlement.retry !== undefined) await retryLater(lane, settlement.retry);
  // Narrow the whole-batch rejection down to the inputs at fault.
  for (const part of settlement.split) {
    await takeLaneSlot(lane);
    await sendEntries(
      lane,
      part.map((e) => ({ claim: e.claim, input: { ...e.input, objectWriteTraceId: randomUUID() } })),
    );
  }
}

/** What a failure does to the lane itself: a pause, a re-read of the portal, a log line. */
function respond(lane: CartLane, failure: Failure, carts: number): void {
  const { log } = lane;
  switch (failure.kind) {
    case "rate_limited": {
      const dailyPauseMs = pauseForRateLimit(failure, lane.budget, lane.now, lane.timings);
      if (dailyPauseMs !== undefined) {
        lane.health.pause("daily_limit", "HubSpot daily API limit reached", dailyPauseMs);
        lane.observer.rateLimitWait?.(dailyPauseMs);
      } else {
        // The budget is paused: the wait is counted where the next send waits for it (once).
        log.warn({ retryAfterMs: failure.retryAfterMs, policy: failure.policy }, "rate limited by HubSpot");
      }
      return;
    }
    case "auth":
      lane.health.pause(
        "auth",
        `HubSpot refused the access token (${refusal(failure)}): ${failure.message}`,
        lane.timings.authRetryMs,
      );
      return;
    case "setup":
      log.error(
        { err: failure.message },
        "HubSpot rejected the cart id property; re-reading the portal's properties",
      );
      lane.onSetupProblem?.();
      lane.pause.pauseUntil(lane.now() + SETUP_RETRY_MS);
      return;
    case "refused":
      log.error(
        { status: failure.status, category: failure.category, carts },
        "HubSpot refused the request, not the carts; will retry (check HUBSPOT_BASE_URL and the portal)",
      );
      log.warn({ err: failure.message, carts }, "batch failed; will retry");
      return;
    case "unavailable":
      log.warn({ err: failure.message, carts }, "batch failed; will retry");
      return;
    case "rejected":
      return;
  }
}

async function retryLater(lane: CartLane, { entries, reason, minDelayMs }: RetryLater): Promise<void> {
  // Carts in one batch share their fate; the most-tried one sets the pace.
  const claims = entries.map((e) => e.claim);
  lane.onRetryLater?.();
  await lane.store.markFailed(keysOf(entries), lane.owner, retrySchedule(lane, claims, reason, minDelayMs));
}

async function deadLetter(lane: CartLane, rejected: readonly RejectedCart[]): Promise<void> {
  await lane.store.markRejected(rejected, lane.owner, lane.now());
  lane.observer.deadLettered?.(
    rejected.length,
    rejected.map((r) => r.reason),
  );
  // HubSpot's message can quote values (tokens, e-mails): it goes to the dead letter, not the log.
  for (const r of rejected)
    lane.log.warn({ category: r.category }, "cart rejected by HubSpot; dead-lettered");
}

function keysOf(entries: readonly CartEntry[]): string[] {
  return entries.map((e) => e.claim.key);
}

/**
 * Whether a whole-batch 400 blames the id property itself (not unique, or missing) rather than an input:
 * then no input is at fault and narrowing would dead-letter good carts. Anything else is narrowed.
 */
function isSetupProblem(message: string, idProperty: string): boolean {
  if (/by non-unique .*propert/i.test(message)) return true;
  return (
    message.includes(idProperty) &&
    /does ?n[o']?t exist|PROPERTY_DOESNT_EXIST/i.test(message) &&
    !/\[\{/.test(message)
  );
}
