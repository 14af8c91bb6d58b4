import type { ClaimedLineSet, RejectedLine } from "../store/line-items.ts";
import { retrySchedule } from "./backoff.ts";
import { classifyFailure, type Failure } from "./classify-failure.ts";
import { claimArgs, degradableLaneHandle, degradableLaneState, pauseOnRefusal } from "./degradable-lane.ts";
import type { DegradableLaneState, LaneNames } from "./degradable-lane.ts";
import type { DegradableLane, DegradableLaneOptions } from "./lane-types.ts";
import {
  archiveLeftovers,
  associateLines,
  toLineEntry,
  upsertLines,
  type LineRequestLane,
} from "./line-item-requests.ts";
import { secondsSince as seconds } from "./pacing.ts";
import { createValueFilter, type PortalProperties } from "./portal-properties.ts";

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
export type LineItemSender = DegradableLane;

export interface LineItemSenderOptions extends DegradableLaneOptions {
  readonly idProperty: string;
  /** The portal's line item properties; undefined until read. */
  readonly portal: () => PortalProperties | undefined;
  /** Why the portal's line item properties are unusable (missing id property …), or undefined. */
  readonly portalProblem: () => string | undefined;
  /** Line sets claimed per round (their lines are sent ≤ `maxBatchSize` per request). */
  readonly maxSets?: number;
}

const NAMES: LaneNames = {
  stepFailed: "line item step failed",
  resumed: "line item sync resumed",
  stopped: "line items not synced",
  scopes: "crm.objects.line_items.read/write",
};

export function createLineItemSender(opts: LineItemSenderOptions): LineItemSender {
  const state = degradableLaneState(opts, NAMES);
  const l: LineLane = {
    ...state,
    portal: opts.portal,
    portalProblem: opts.portalProblem,
    idProperty: opts.idProperty,
    maxSets: opts.maxSets ?? 100,
    keptValues: createValueFilter({
      log: opts.log,
      onDropped: (d) => state.observer.droppedValue?.(d),
      message: "line item property value left out",
    }),
    blamesSetup: (message) => isSetupProblem(message, opts.idProperty),
  };
  return degradableLaneHandle(
    l,
    () => step(l),
    () => l.degradation.reason ?? opts.portalProblem(),
  );
}

interface LineLane extends LineRequestLane, DegradableLaneState {
  readonly portal: () => PortalProperties | undefined;
  readonly portalProblem: () => string | undefined;
  readonly maxSets: number;
}

async function step(l: LineLane): Promise<void> {
  const t = l.now();
  if (t < l.pause.untilMs) return l.loop.sleep(l.pause.untilMs - t);
  const portal = l.portal();
  if (portal === undefined || l.portalProblem() !== undefined)
    return l.loop.sleep(Math.max(l.intervalMs, 1000));
  const sets = await l.store.claimLineSetsDue(claimArgs(l, t, l.maxSets));
  if (sets.length === 0) return l.loop.sleep(l.intervalMs);
  await round(l, sets, portal);
}

/** Sends every claimed set; settles each one (sent, retried later or released). */
async function round(l: LineLane, sets: readonly ClaimedLineSet[], portal: PortalProperties): Promise<void> {
  const { store, log } = l;
  const started = performance.now();
  const rejected: RejectedLine[] = [];
  try {
    const entries = sets.flatMap((set) => set.lines.map((line) => toLineEntry(l, set, line, portal)));
    const idByKey = new Map<string, string>();
    for (let i = 0; i < entries.length; i += l.maxBatch) {
      await upsertLines(l, entries.slice(i, i + l.maxBatch), idByKey, rejected);
    }
    await associateLines(l, sets, idByKey);
    const sent = await archiveLeftovers(l, sets);
    await store.markLineSetsSent(sent, l.owner);
    if (rejected.length > 0) {
      await store.deadLetterLines(rejected, l.now());
      l.observer.deadLettered?.(rejected.length);
      for (const r of rejected)
        log.warn({ category: r.category }, "line item rejected by HubSpot; dead-lettered");
    }
    l.degradation.recover();
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
    if (rejected.length > 0) await store.deadLetterLines(rejected, l.now());
    await failRound(l, sets, classifyFailure(error, l.blamesSetup));
  }
}

/** A round that failed: pause or degrade as the failure says; the sets are released or retried later. */
async function failRound(l: LineLane, sets: readonly ClaimedLineSet[], failure: Failure): Promise<void> {
  const keys = sets.map((s) => s.cartKey);
  switch (failure.kind) {
    case "rate_limited":
    case "auth":
      pauseOnRefusal(l, failure, NAMES);
      return l.store.releaseLineSets(keys, l.owner);
    case "setup":
      l.log.error({ err: failure.message }, "HubSpot rejected the line item id property");
      l.pause.pauseUntil(l.now() + l.timings.authRetryMs);
      return l.store.releaseLineSets(keys, l.owner);
    default: {
      // A rejected archive or association, a refused request, an unavailable HubSpot: may pass.
      const minDelayMs = "minDelayMs" in failure ? failure.minDelayMs : 0;
      l.log.warn({ err: failure.message, carts: sets.length }, "line items failed; will retry");
      await l.store.markLineSetsFailed(keys, l.owner, retrySchedule(l, sets, failure.message, minDelayMs));
    }
  }
}

/** A whole-batch 400 that blames the id property itself, not a line. */
function isSetupProblem(message: string, idProperty: string): boolean {
  return /non-unique .*propert|non-existent .*propert/i.test(message) && message.includes(idProperty);
}
