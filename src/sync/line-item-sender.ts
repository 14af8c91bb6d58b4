import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { ClaimedLineSet, RejectedLine } from "../store/line-items.ts";
import type { Store } from "../store/store.ts";
import { retrySchedule } from "./backoff.ts";
import { classifyFailure, type Failure } from "./classify-failure.ts";
import { createLaneLoop } from "./lane-loop.ts";
import { authPauseMs, createDegradation, createLanePause, pauseForRateLimit, refusal } from "./lane-pause.ts";
import type { LogSink, PauseTimings, SenderObserver } from "./lane-types.ts";
import { createLineItemRequests } from "./line-item-requests.ts";
import { secondsSince as seconds } from "./pacing.ts";
import type { PortalProperties } from "./portal-properties.ts";
import type { RateBudget } from "./rate-budget.ts";

/** Kept for the test that imports it from here; it lives in line-item-requests.ts. */
export { unassociatedWhereRefused } from "./line-item-requests.ts";

/**
 * The line item lane (SPEC §10): mirrors each cart's line set as HubSpot line items once the cart is in
 * HubSpot.
 *
 * One round: claim pending line sets whose cart has a HubSpot id → upsert every line of every claimed set by
 * its key (≤ 100 inputs per request, coalesced across carts) and remember the ids HubSpot answers → associate
 * the line items not yet associated with their cart (HubSpot's default line item → cart association) →
 * archive the known line items whose key left the set → mark the sets sent. Every step is idempotent (upsert
 * by unique key, associating again, archiving an archived item), so a crash anywhere repeats work but never
 * duplicates a line item.
 *
 * Same rules as the cart lane, on the same rate budget: 429 pauses and releases; 5xx, 423, timeouts back off
 * in rows; an upsert HubSpot rejects as a whole (400) is split until the line at fault is alone; a rejected
 * line becomes a dead letter and never holds back its cart or the other lines. 401/403 (a token without line
 * item scopes) and a missing or non-unique line item id property degrade only this lane: carts keep flowing,
 * and `/readyz` reports it.
 */
export interface LineItemSender {
  start(): void;
  wake(): void;
  /** Why line items are not being synced, or undefined. */
  degraded(): string | undefined;
  stop(): Promise<void>;
}

export interface LineItemSenderOptions {
  readonly store: Store;
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
  readonly log: LogSink;
  readonly idProperty: string;
  /** The portal's line item properties; undefined until read. */
  readonly portal: () => PortalProperties | undefined;
  /** Why the portal's line item properties are unusable (missing id property …), or undefined. */
  readonly portalProblem: () => string | undefined;
  readonly observer?: SenderObserver;
  readonly intervalMs: number;
  readonly timings: PauseTimings;
  readonly owner?: string;
  readonly leaseMs?: number;
  /** Line sets claimed per round (their lines are sent ≤ `maxBatchSize` per request). */
  readonly maxSets?: number;
  readonly maxBatchSize?: number;
  readonly now?: () => number;
}

export function createLineItemSender(opts: LineItemSenderOptions): LineItemSender {
  const { store, log } = opts;
  const now = opts.now ?? Date.now;
  const owner = opts.owner ?? randomUUID();
  const leaseMs = opts.leaseMs ?? 120_000;
  const maxSets = opts.maxSets ?? 100;
  const maxBatch = opts.maxBatchSize ?? 100;
  const observer = opts.observer ?? {};
  const pause = createLanePause();
  const authProblem = createDegradation(log, "line item sync resumed");
  const lane = createLaneLoop((error) => log.error({ err: error }, "line item step failed"));
  const blamesSetup = (message: string): boolean => isSetupProblem(message, opts.idProperty);
  const requests = createLineItemRequests({ ...opts, observer, maxBatch, now, blamesSetup });

  async function step(): Promise<void> {
    const t = now();
    if (t < pause.untilMs) return lane.sleep(pause.untilMs - t);
    const portal = opts.portal();
    if (portal === undefined || opts.portalProblem() !== undefined)
      return lane.sleep(Math.max(opts.intervalMs, 1000));
    const sets = await store.claimLineSetsDue({ limit: maxSets, nowMs: t, leaseMs, owner });
    if (sets.length === 0) return lane.sleep(opts.intervalMs);
    await round(sets, portal);
  }

  /** Sends every claimed set; settles each one (sent, retried later or released). */
  async function round(sets: readonly ClaimedLineSet[], portal: PortalProperties): Promise<void> {
    const started = performance.now();
    const rejected: RejectedLine[] = [];
    try {
      const entries = sets.flatMap((set) => set.lines.map((line) => requests.toEntry(set, line, portal)));
      const idByKey = new Map<string, string>();
      for (let i = 0; i < entries.length; i += maxBatch) {
        await requests.upsert(entries.slice(i, i + maxBatch), idByKey, rejected);
      }
      await requests.associate(sets, idByKey);
      const sent = await requests.archiveLeftovers(sets);
      await store.markLineSetsSent(sent, owner);
      if (rejected.length > 0) {
        await store.deadLetterLines(rejected, now());
        observer.deadLettered?.(rejected.length);
        for (const r of rejected)
          log.warn({ category: r.category }, "line item rejected by HubSpot; dead-lettered");
      }
      authProblem.recover();
      log.info(
        {
          carts: sets.length,
          lines: entries.length,
          rejected: rejected.length,
          ms: Math.round(seconds(started) * 1000),
        },
        "line items sent",
      );
    } catch (error) {
      if (rejected.length > 0) await store.deadLetterLines(rejected, now());
      await failRound(sets, classifyFailure(error, blamesSetup));
    }
  }

  /** A round that failed: pause or degrade as the failure says; the sets are released or retried later. */
  async function failRound(sets: readonly ClaimedLineSet[], failure: Failure): Promise<void> {
    const keys = sets.map((s) => s.cartKey);
    switch (failure.kind) {
      case "rate_limited": {
        const dailyPauseMs = pauseForRateLimit(failure, opts.budget, now, opts.timings);
        observer.rateLimitWait?.(failure.retryAfterMs);
        if (dailyPauseMs !== undefined) pause.pauseUntil(now() + dailyPauseMs);
        return store.releaseLineSets(keys, owner);
      }
      case "auth":
        authProblem.degrade(
          `line items not synced: HubSpot refused (${refusal(failure)}); the token needs crm.objects.line_items.read/write`,
          { status: failure.status, category: failure.category },
          "line items not synced: HubSpot refused the token",
        );
        pause.pauseUntil(now() + authPauseMs(failure.status, opts.timings));
        return store.releaseLineSets(keys, owner);
      case "setup":
        log.error({ err: failure.message }, "HubSpot rejected the line item id property");
        pause.pauseUntil(now() + opts.timings.authRetryMs);
        return store.releaseLineSets(keys, owner);
      default: {
        // A rejected archive or association, a refused request, an unavailable HubSpot: may pass.
        const minDelayMs = "minDelayMs" in failure ? failure.minDelayMs : 0;
        log.warn({ err: failure.message, carts: sets.length }, "line items failed; will retry");
        const attempts = Math.max(...sets.map((s) => s.attempts));
        const schedule = { minDelayMs, baseMs: opts.timings.backoffBaseMs, nowMs: now() };
        await store.markLineSetsFailed(keys, owner, retrySchedule(attempts, failure.message, schedule));
      }
    }
  }

  return {
    start: () => lane.start(step),
    wake() {
      if (now() >= pause.untilMs) lane.interrupt();
    },
    degraded: () => authProblem.reason ?? opts.portalProblem(),
    stop: () => lane.stopWithin(5000),
  };
}

/** A whole-batch 400 that blames the id property itself, not a line. */
function isSetupProblem(message: string, idProperty: string): boolean {
  return /non-unique .*propert|non-existent .*propert/i.test(message) && message.includes(idProperty);
}
