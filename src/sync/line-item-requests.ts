import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { InputError, UpsertInput } from "../hubspot/types.ts";
import type { ClaimedLineSet, LearnedLineItem, RejectedLine, SentLineSet } from "../store/line-items.ts";
import type { Store } from "../store/store.ts";
import { classifyFailure, failureStatus, type Failure } from "./classify-failure.ts";
import type { LogSink, SenderObserver } from "./lane-types.ts";
import type { LineDraft } from "./line-items.ts";
import { secondsSince as seconds, takeSlot as takeBudgetSlot } from "./pacing.ts";
import { createValueFilter, type PortalProperties } from "./portal-properties.ts";
import type { RateBudget } from "./rate-budget.ts";
import { matchAnswer, settleFailedCall } from "./settle-batch.ts";

/**
 * The HubSpot requests of one line item round (see line-item-sender.ts), each taking its own budget slot:
 * upsert the lines (a whole-batch 400 is split until the line at fault is alone), associate the new ones
 * with their cart, archive the ones whose key left their set. Every request reports to the observer; a
 * failure other than a rejected line is thrown, and the sender settles the round.
 */
export interface LineItemRequests {
  /** The upsert input of one line: only the values the portal offers, and its key. */
  toEntry(set: ClaimedLineSet, line: LineDraft, portal: PortalProperties): LineEntry;
  /** One upsert (narrowed on a whole-batch 400); learned ids are recorded at once. */
  upsert(
    entries: readonly LineEntry[],
    idByKey: Map<string, string>,
    rejected: RejectedLine[],
  ): Promise<void>;
  associate(sets: readonly ClaimedLineSet[], idByKey: ReadonlyMap<string, string>): Promise<void>;
  archiveLeftovers(sets: readonly ClaimedLineSet[]): Promise<SentLineSet[]>;
}

export interface LineEntry {
  readonly set: ClaimedLineSet;
  readonly line: LineDraft;
  readonly input: UpsertInput;
}

/** Thrown inside a round to stop it; the round's sets are settled by the sender. */
export class RoundStopped extends Error {}

const MAX_ASSOCIATIONS = 1000;

export function createLineItemRequests(opts: {
  readonly store: Store;
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
  readonly log: LogSink;
  readonly observer: SenderObserver;
  readonly idProperty: string;
  readonly maxBatch: number;
  readonly now: () => number;
  readonly blamesSetup: (message: string) => boolean;
}): LineItemRequests {
  const { store, client, budget, log, observer, now, maxBatch } = opts;
  const keptValues = createValueFilter({
    log,
    onDropped: (d) => observer.droppedValue?.(d),
    message: "line item property value left out",
  });
  const takeSlot = (): Promise<void> => takeBudgetSlot(budget, now, (ms) => observer.rateLimitWait?.(ms));

  function toEntry(set: ClaimedLineSet, line: LineDraft, portal: PortalProperties): LineEntry {
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

  async function upsert(
    entries: readonly LineEntry[],
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
      const learned: LearnedLineItem[] = [];
      const { unanswered } = matchAnswer(entries, outcome, {
        written(e, hubspotId) {
          idByKey.set(e.line.key, hubspotId);
          const known = e.set.known.find((k) => k.lineKey === e.line.key);
          learned.push({
            lineKey: e.line.key,
            cartKey: e.set.cartKey,
            hubspotId,
            associatedCartId: known?.hubspotId === hubspotId ? known.associatedCartId : undefined,
          });
        },
        rejected: (e, err) => rejected.push(rejectedLine(e, err)),
      });
      await store.recordLineItems(learned);
      if (unanswered.length > 0)
        throw new RoundStopped("HubSpot's answer named neither a result nor an error for a line item");
    } catch (error) {
      if (error instanceof RoundStopped) throw error;
      const failure = classifyFailure(error, opts.blamesSetup);
      observer.request?.("line_items_upsert", requestStatus(failure), seconds(started), entries.length);
      if (failure.kind !== "rejected") throw error;
      const settled = settleFailedCall(entries, failure);
      for (const e of settled.reject) rejected.push(rejectedLine(e, failure));
      for (const part of settled.split) {
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
        observer.request?.(
          "line_items_associate",
          requestStatus(classifyFailure(error, opts.blamesSetup)),
          seconds(started),
          chunk.length,
        );
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
        observer.request?.(
          "line_items_archive",
          requestStatus(classifyFailure(error, opts.blamesSetup)),
          seconds(started),
          chunk.length,
        );
        throw error;
      }
    }
    return gone.map((g) => ({
      cartKey: g.set.cartKey,
      version: g.set.version,
      archivedLineKeys: g.items.map((i) => i.lineKey),
    }));
  }

  return { toEntry, upsert, associate, archiveLeftovers };
}

function rejectedLine(e: LineEntry, error: { message: string; category: string | undefined }): RejectedLine {
  return { cartKey: e.set.cartKey, lineKey: e.line.key, reason: error.message, category: error.category };
}

/** The metric status of a failed line item request: a refused request counts as `error` here (as always). */
export function requestStatus(failure: Failure): string {
  return failure.kind === "refused" ? "error" : failureStatus(failure);
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
