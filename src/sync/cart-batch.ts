import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { BatchOutcome } from "../hubspot/types.ts";
import type { ClaimedCart, RejectedCart, Store } from "../store/store.ts";
import { retrySchedule } from "./backoff.ts";
import { CLAIMS_LOST_MESSAGE, type LostClaims } from "./claim-renewal.ts";
import { classifyFailure, failureStatus, type Failure } from "./classify-failure.ts";
import type { CartHealth, LanePause } from "./lane-pause.ts";
import { pauseForRateLimit, refusal } from "./lane-pause.ts";
import type { LogSink, PauseTimings, SenderObserver } from "./lane-types.ts";
import { currentValues } from "./merge.ts";
import { secondsSince as seconds, takeSlot as takeBudgetSlot } from "./pacing.ts";
import { createValueFilter, type PortalProperties } from "./portal-properties.ts";
import type { RateBudget } from "./rate-budget.ts";
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

export interface CartBatchOptions {
  readonly store: Store;
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
  readonly log: LogSink;
  readonly observer: SenderObserver;
  readonly idProperty: string;
  readonly owner: string;
  readonly now: () => number;
  readonly timings: PauseTimings;
  readonly portal: () => PortalProperties | undefined;
  readonly lost: LostClaims;
  readonly health: CartHealth;
  readonly pause: LanePause;
  /** HubSpot blamed the id property: the portal's properties should be read again. */
  readonly onSetupProblem: (() => void) | undefined;
}

/** How long sending waits after HubSpot blamed the id property (the portal watcher re-reads it meanwhile). */
export const SETUP_RETRY_MS = 1_000;

export function createCartBatches(opts: CartBatchOptions): CartBatches {
  const { store, client, budget, log, observer, owner, now, lost } = opts;
  const keptValues = createValueFilter({
    log,
    onDropped: (d) => observer.droppedValue?.(d),
    message: "property value left out",
  });
  const takeSlot = (): Promise<void> => takeBudgetSlot(budget, now, (ms) => observer.rateLimitWait?.(ms));
  const blamesSetup = (message: string): boolean => isSetupProblem(message, opts.idProperty);

  function toEntries(claims: readonly ClaimedCart[], portal: PortalProperties): CartEntry[] {
    return claims.map((claim) => {
      const kept = keptValues(portal, currentValues(claim.state));
      kept[opts.idProperty] = claim.key;
      return {
        claim,
        input: {
          id: claim.key,
          idProperty: opts.idProperty,
          objectWriteTraceId: randomUUID(),
          properties: kept,
        },
      };
    });
  }

  /** Makes lost claims' carts pending again (a new version) and gives their claims back if still held. */
  async function sendAgainLater(entries: readonly CartEntry[]): Promise<void> {
    if (entries.length === 0) return;
    for (const e of entries) await store.markPending(e.claim.key, now());
    await store.release(keysOf(entries), owner);
  }

  /** One upsert for `entries` (the caller holds a budget slot); settles every entry's claim. */
  async function send(all: readonly CartEntry[]): Promise<void> {
    await sendAgainLater(all.filter((e) => lost.has(e.claim)));
    const entries = all.filter((e) => !lost.has(e.claim));
    if (entries.length === 0) return;
    const started = performance.now();
    try {
      const answer = await client.upsertCarts(entries.map((e) => e.input));
      budget.observe(answer.rateLimit, now());
      observer.request?.(
        "carts_upsert",
        answer.errors.length > 0 ? "207" : "200",
        seconds(started),
        entries.length,
      );
      opts.health.answered();
      await writeBack(entries, answer, started);
    } catch (error) {
      const failure = classifyFailure(error, blamesSetup);
      observer.request?.("carts_upsert", failureStatus(failure), seconds(started), entries.length);
      await handleFailure(entries, failure);
    }
  }

  /** Writes back what HubSpot's answer decided; carts whose claim was lost meanwhile are sent again. */
  async function writeBack(
    entries: readonly CartEntry[],
    answer: BatchOutcome,
    started: number,
  ): Promise<void> {
    const { sent, rejected, retry } = settleBatch(entries, { answer });
    const lostNow = new Set(entries.filter((e) => lost.has(e.claim)).map((e) => e.claim.key));
    await sendAgainLater(entries.filter((e) => lostNow.has(e.claim.key)));
    const held = sent.filter((c) => !lostNow.has(c.key));
    if (held.length > 0) {
      const marked = await store.markSent(held, owner);
      if (marked.length < held.length) log.warn({ count: held.length - marked.length }, CLAIMS_LOST_MESSAGE);
      observer.sent?.(
        marked,
        entries.map((e) => e.claim),
      );
    }
    if (rejected.length > 0) await deadLetter(rejected);
    if (retry !== undefined) {
      log.warn({ count: retry.entries.length }, "batch answer did not cover every input");
      await retryLater(retry);
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
  async function handleFailure(entries: readonly CartEntry[], failure: Failure): Promise<void> {
    switch (failure.kind) {
      case "rate_limited": {
        const dailyPauseMs = pauseForRateLimit(failure, budget, now, opts.timings);
        if (dailyPauseMs !== undefined)
          opts.health.pause("daily_limit", "HubSpot daily API limit reached", dailyPauseMs);
        else
          log.warn({ retryAfterMs: failure.retryAfterMs, policy: failure.policy }, "rate limited by HubSpot");
        observer.rateLimitWait?.(failure.retryAfterMs);
        break;
      }
      case "auth":
        opts.health.pause(
          "auth",
          `HubSpot refused the access token (${refusal(failure)}): ${failure.message}`,
          opts.timings.authRetryMs,
        );
        break;
      case "setup":
        log.error(
          { err: failure.message },
          "HubSpot rejected the cart id property; re-reading the portal's properties",
        );
        opts.onSetupProblem?.();
        opts.pause.pauseUntil(now() + SETUP_RETRY_MS);
        break;
      case "refused":
        log.error(
          { status: failure.status, category: failure.category, carts: entries.length },
          "HubSpot refused the request, not the carts; will retry (check HUBSPOT_BASE_URL and the portal)",
        );
        log.warn({ err: failure.message, carts: entries.length }, "batch failed; will retry");
        break;
      case "unavailable":
        log.warn({ err: failure.message, carts: entries.length }, "batch failed; will retry");
        break;
      case "rejected":
        break;
    }
    const settlement = settleBatch(entries, { failure });
    if (settlement.release.length > 0) await store.release(keysOf(settlement.release), owner);
    if (settlement.rejected.length > 0) await deadLetter(settlement.rejected);
    if (settlement.retry !== undefined) await retryLater(settlement.retry);
    // Narrow the whole-batch rejection down to the inputs at fault.
    for (const part of settlement.split) {
      await takeSlot();
      await send(
        part.map((e) => ({ claim: e.claim, input: { ...e.input, objectWriteTraceId: randomUUID() } })),
      );
    }
  }

  async function retryLater({ entries, reason, minDelayMs }: RetryLater): Promise<void> {
    const attempts = Math.max(...entries.map((e) => e.claim.attempts));
    await store.markFailed(
      keysOf(entries),
      owner,
      retrySchedule(attempts, reason, { minDelayMs, baseMs: opts.timings.backoffBaseMs, nowMs: now() }),
    );
  }

  async function deadLetter(rejected: readonly RejectedCart[]): Promise<void> {
    await store.markRejected(rejected, owner, now());
    observer.deadLettered?.(
      rejected.length,
      rejected.map((r) => r.reason),
    );
    // HubSpot's message can quote values (tokens, e-mails): it goes to the dead letter, not the log.
    for (const r of rejected) log.warn({ category: r.category }, "cart rejected by HubSpot; dead-lettered");
  }

  return {
    async send(claims) {
      const portal = opts.portal();
      if (portal === undefined) {
        await store.release(
          claims.map((c) => c.key),
          owner,
        );
        return;
      }
      await send(toEntries(claims, portal));
    },
  };
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
