import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotUnavailableError,
} from "../hubspot/errors.ts";
import type { InputError, UpsertInput } from "../hubspot/types.ts";
import type { ClaimedLineSet, LearnedLineItem, RejectedLine, SentLineSet } from "../store/line-items.ts";
import type { Store } from "../store/store.ts";
import { backoffDelayMs } from "./backoff.ts";
import type { LogSink, PauseTimings, SenderObserver } from "./lane-types.ts";
import type { LineDraft } from "./line-items.ts";
import { createSleeper, secondsSince as seconds, takeSlot as takeBudgetSlot } from "./pacing.ts";
import { createValueFilter, type PortalProperties } from "./portal-properties.ts";
import type { RateBudget } from "./rate-budget.ts";

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

const SCOPE_RETRY_MS = 5 * 60_000;
const MAX_ASSOCIATIONS = 1000;

interface Entry {
  readonly set: ClaimedLineSet;
  readonly line: LineDraft;
  readonly input: UpsertInput;
}

/** Thrown inside a round to stop it; the round's sets are settled by `failRound`. */
class RoundStopped extends Error {}

export function createLineItemSender(opts: LineItemSenderOptions): LineItemSender {
  const { store, client, budget, log } = opts;
  const now = opts.now ?? Date.now;
  const owner = opts.owner ?? randomUUID();
  const leaseMs = opts.leaseMs ?? 120_000;
  const maxSets = opts.maxSets ?? 100;
  const maxBatch = opts.maxBatchSize ?? 100;
  const observer = opts.observer ?? {};
  let running = false;
  let loopDone: Promise<void> = Promise.resolve();
  let pausedUntilMs = 0;
  let authProblem: string | undefined;
  const keptValues = createValueFilter({
    log,
    onDropped: (d) => observer.droppedValue?.(d),
    message: "line item property value left out",
  });

  const { sleep, interrupt } = createSleeper();
  const takeSlot = (): Promise<void> => takeBudgetSlot(budget, now, (ms) => observer.rateLimitWait?.(ms));

  async function loop(): Promise<void> {
    while (running) {
      try {
        const t = now();
        if (t < pausedUntilMs) {
          await sleep(pausedUntilMs - t);
          continue;
        }
        const portal = opts.portal();
        if (portal === undefined || opts.portalProblem() !== undefined) {
          await sleep(Math.max(opts.intervalMs, 1000));
          continue;
        }
        const sets = await store.claimLineSetsDue({ limit: maxSets, nowMs: t, leaseMs, owner });
        if (sets.length === 0) {
          await sleep(opts.intervalMs);
          continue;
        }
        await round(sets, portal);
      } catch (error) {
        log.error({ err: error }, "line item step failed");
        await sleep(1000);
      }
    }
  }

  /** Sends every claimed set; settles each one (sent, retried later or released). */
  async function round(sets: readonly ClaimedLineSet[], portal: PortalProperties): Promise<void> {
    const started = performance.now();
    const rejected: RejectedLine[] = [];
    try {
      const entries = sets.flatMap((set) => set.lines.map((line) => toEntry(set, line, portal)));
      const idByKey = new Map<string, string>();
      for (let i = 0; i < entries.length; i += maxBatch) {
        await upsert(entries.slice(i, i + maxBatch), idByKey, rejected);
      }
      await associate(sets, idByKey);
      const sent = await archiveLeftovers(sets);
      await store.markLineSetsSent(sent, owner);
      if (rejected.length > 0) {
        await store.deadLetterLines(rejected, now());
        observer.deadLettered?.(rejected.length);
        for (const r of rejected)
          log.warn({ category: r.category }, "line item rejected by HubSpot; dead-lettered");
      }
      if (authProblem !== undefined) {
        authProblem = undefined;
        log.info({}, "line item sync resumed");
      }
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
      await failRound(sets, error);
    }
  }

  function toEntry(set: ClaimedLineSet, line: LineDraft, portal: PortalProperties): Entry {
    const kept = keptValues(portal, line.properties);
    kept[opts.idProperty] = line.key;
    return {
      set,
      line,
      input: {
        id: line.key,
        idProperty: opts.idProperty,
        objectWriteTraceId: randomUUID(),
        properties: kept,
      },
    };
  }

  /** One upsert (narrowed on a whole-batch 400); learned ids are recorded at once. */
  async function upsert(
    entries: readonly Entry[],
    idByKey: Map<string, string>,
    rejected: RejectedLine[],
  ): Promise<void> {
    await takeSlot();
    const started = performance.now();
    try {
      const outcome = await client.upsertLineItems(entries.map((e) => e.input));
      budget.observe(outcome.rateLimit, now());
      observer.request?.(
        "line_items_upsert",
        outcome.errors.length > 0 ? "207" : "200",
        seconds(started),
        entries.length,
      );
      const byTrace = new Map(entries.map((e) => [e.input.objectWriteTraceId, e]));
      const byKey = new Map(entries.map((e) => [e.line.key, e]));
      const learned: LearnedLineItem[] = [];
      for (const r of outcome.results) {
        const e =
          (r.objectWriteTraceId && byTrace.get(r.objectWriteTraceId)) || (r.idValue && byKey.get(r.idValue));
        if (!e || idByKey.has(e.line.key)) continue;
        idByKey.set(e.line.key, r.id);
        const known = e.set.known.find((k) => k.lineKey === e.line.key);
        learned.push({
          lineKey: e.line.key,
          cartKey: e.set.cartKey,
          hubspotId: r.id,
          associatedCartId: known?.hubspotId === r.id ? known.associatedCartId : undefined,
        });
      }
      for (const err of outcome.errors) {
        for (const e of [...err.traceIds.map((t) => byTrace.get(t)), ...err.ids.map((id) => byKey.get(id))]) {
          if (!e || idByKey.has(e.line.key) || rejected.some((r) => r.lineKey === e.line.key)) continue;
          rejected.push({
            cartKey: e.set.cartKey,
            lineKey: e.line.key,
            reason: err.message,
            category: err.category,
          });
        }
      }
      await store.recordLineItems(learned);
      const unsettled = entries.filter(
        (e) => !idByKey.has(e.line.key) && !rejected.some((r) => r.lineKey === e.line.key),
      );
      if (unsettled.length > 0)
        throw new RoundStopped("HubSpot's answer named neither a result nor an error for a line item");
    } catch (error) {
      if (error instanceof RoundStopped) throw error;
      if (!(error instanceof HubSpotRejectedError)) {
        observer.request?.("line_items_upsert", statusOf(error), seconds(started), entries.length);
        throw error;
      }
      observer.request?.("line_items_upsert", String(error.status), seconds(started), entries.length);
      if (isSetupProblem(error)) throw error;
      if (entries.length === 1) {
        const e = entries[0] as Entry;
        rejected.push({
          cartKey: e.set.cartKey,
          lineKey: e.line.key,
          reason: error.message,
          category: error.category,
        });
        return;
      }
      const half = Math.ceil(entries.length / 2);
      for (const part of [entries.slice(0, half), entries.slice(half)]) {
        await upsert(
          part.map((e) => ({ ...e, input: { ...e.input, objectWriteTraceId: randomUUID() } })),
          idByKey,
          rejected,
        );
      }
    }
  }

  /** Associates with their cart the line items not associated with it yet. */
  async function associate(
    sets: readonly ClaimedLineSet[],
    idByKey: ReadonlyMap<string, string>,
  ): Promise<void> {
    const pending: LearnedLineItem[] = [];
    for (const set of sets) {
      for (const line of set.lines) {
        const id = idByKey.get(line.key);
        if (id === undefined) continue;
        const known = set.known.find((k) => k.lineKey === line.key);
        if (known?.hubspotId === id && known.associatedCartId === set.cartId) continue;
        pending.push({
          lineKey: line.key,
          cartKey: set.cartKey,
          hubspotId: id,
          associatedCartId: set.cartId,
        });
      }
    }
    for (let i = 0; i < pending.length; i += MAX_ASSOCIATIONS) {
      const chunk = pending.slice(i, i + MAX_ASSOCIATIONS);
      const cartIdOf = new Map(sets.map((s) => [s.cartKey, s.cartId]));
      await takeSlot();
      const started = performance.now();
      let result: Awaited<ReturnType<HubSpotClient["associateLineItemsWithCarts"]>>;
      try {
        result = await client.associateLineItemsWithCarts(
          chunk.map((p) => ({ lineItemId: p.hubspotId, cartId: cartIdOf.get(p.cartKey) as string })),
        );
        budget.observe(result.rateLimit, now());
        observer.request?.(
          "line_items_associate",
          result.errors.length > 0 ? "207" : "200",
          seconds(started),
          chunk.length,
        );
        for (const e of result.errors)
          log.warn({ category: e.category, reason: e.message }, "line item association rejected by HubSpot");
      } catch (error) {
        observer.request?.("line_items_associate", statusOf(error), seconds(started), chunk.length);
        throw error;
      }
      // An association HubSpot refused is recorded as not made, so the set's next change tries it again. An
      // error that names no line item leaves the whole chunk unmade (never recorded as linked on a guess).
      await store.recordLineItems(unassociatedWhereRefused(chunk, result.errors));
    }
  }

  /** Archives the known line items whose key left their set; returns the sets as sent. */
  async function archiveLeftovers(sets: readonly ClaimedLineSet[]): Promise<SentLineSet[]> {
    const gone = sets.map((set) => {
      const keys = new Set(set.lines.map((l) => l.key));
      return { set, items: set.known.filter((k) => !keys.has(k.lineKey)) };
    });
    const ids = gone.flatMap((g) => g.items.map((i) => i.hubspotId));
    for (let i = 0; i < ids.length; i += maxBatch) {
      const chunk = ids.slice(i, i + maxBatch);
      await takeSlot();
      const started = performance.now();
      try {
        const result = await client.archiveLineItems(chunk);
        budget.observe(result.rateLimit, now());
        observer.request?.("line_items_archive", "204", seconds(started), chunk.length);
      } catch (error) {
        observer.request?.("line_items_archive", statusOf(error), seconds(started), chunk.length);
        throw error;
      }
    }
    return gone.map((g) => ({
      cartKey: g.set.cartKey,
      version: g.set.version,
      archivedLineKeys: g.items.map((i) => i.lineKey),
    }));
  }

  async function failRound(sets: readonly ClaimedLineSet[], error: unknown): Promise<void> {
    const keys = sets.map((s) => s.cartKey);
    if (error instanceof HubSpotRateLimitError) {
      budget.observe(error.rateLimit, now());
      observer.rateLimitWait?.(error.retryAfterMs);
      if (error.daily) pausedUntilMs = now() + Math.max(error.retryAfterMs, opts.timings.dailyRetryMs);
      else budget.pauseUntil(now() + error.retryAfterMs);
      await store.releaseLineSets(keys, owner);
      return;
    }
    if (error instanceof HubSpotAuthError) {
      const reason = `line items not synced: HubSpot refused (${error.status}${error.category ? ` ${error.category}` : ""}); the token needs crm.objects.line_items.read/write`;
      if (authProblem !== reason) log.warn({ status: error.status, category: error.category }, reason);
      authProblem = reason;
      pausedUntilMs = now() + Math.max(opts.timings.authRetryMs, error.status === 403 ? SCOPE_RETRY_MS : 0);
      await store.releaseLineSets(keys, owner);
      return;
    }
    if (error instanceof HubSpotRejectedError && isSetupProblem(error)) {
      log.error({ err: error.message }, "HubSpot rejected the line item id property");
      pausedUntilMs = now() + opts.timings.authRetryMs;
      await store.releaseLineSets(keys, owner);
      return;
    }
    const minDelay = error instanceof HubSpotUnavailableError ? error.minDelayMs : 0;
    const message = error instanceof Error ? error.message : String(error);
    log.warn({ err: message, carts: sets.length }, "line items failed; will retry");
    const attempts = Math.max(...sets.map((s) => s.attempts));
    await store.markLineSetsFailed(keys, owner, {
      nextAttemptAtMs:
        now() + backoffDelayMs(attempts, { minMs: minDelay, baseMs: opts.timings.backoffBaseMs }),
      error: message.slice(0, 500),
    });
  }

  /** A whole-batch 400 that blames the id property itself, not a line. */
  function isSetupProblem(error: HubSpotRejectedError): boolean {
    return (
      /non-unique .*propert|non-existent .*propert/i.test(error.message) &&
      error.message.includes(opts.idProperty)
    );
  }

  return {
    start() {
      if (running) return;
      running = true;
      loopDone = loop();
    },
    wake() {
      if (now() >= pausedUntilMs) interrupt();
    },
    degraded: () => authProblem ?? opts.portalProblem(),
    async stop() {
      running = false;
      interrupt();
      await Promise.race([loopDone, new Promise((r) => setTimeout(r, 5000).unref())]);
    },
  };
}

function statusOf(error: unknown): string {
  if (
    error instanceof HubSpotRejectedError ||
    error instanceof HubSpotAuthError ||
    error instanceof HubSpotRateLimitError
  )
    return String(error.status);
  return "error";
}

/**
 * The line items of `chunk` as they now stand in HubSpot: the ones an association error names (by id in its
 * `context` or `ids`) are not associated; when an error names none, no association of the chunk is trusted.
 */
export function unassociatedWhereRefused<
  T extends { hubspotId: string; associatedCartId: string | undefined },
>(chunk: readonly T[], errors: readonly InputError[]): T[] {
  if (errors.length === 0) return [...chunk];
  const named = new Set(errors.flatMap((e) => [...e.ids, ...Object.values(e.context).flat()]));
  const anyNamed = errors.every(
    (e) => e.ids.length > 0 || Object.values(e.context).some((v) => v.length > 0),
  );
  return chunk.map((item) =>
    !anyNamed || named.has(item.hubspotId) ? { ...item, associatedCartId: undefined } : item,
  );
}
