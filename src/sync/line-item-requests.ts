import { randomUUID } from "node:crypto";
import type { InputError, UpsertInput } from "../hubspot/types.ts";
import type { ClaimedLineSet, LearnedLineItem, RejectedLine, SentLineSet } from "../store/line-items.ts";
import { classifyFailure, failureStatus } from "./classify-failure.ts";
import { meteredRequest, recordAnswer, takeLaneSlot } from "./lane-requests.ts";
import type { LaneContext } from "./lane-types.ts";
import type { LineDraft } from "./line-items.ts";
import { secondsSince as seconds } from "./pacing.ts";
import type { PortalProperties, ValueFilter } from "./portal-properties.ts";
import { matchAnswer, settleFailedCall } from "./settle-batch.ts";

/**
 * The HubSpot requests of one line item round (see line-item-sender.ts), each taking its own budget slot:
 * upsert the lines (a whole-batch 400 is split until the line at fault is alone), associate the new ones
 * with their cart, archive the ones whose key left their set. Every request reports to the observer; a
 * failure other than a rejected line is thrown, and the sender settles the round.
 */
export interface LineRequestLane extends LaneContext {
  readonly idProperty: string;
  /** Inputs per upsert and ids per archive request. */
  readonly maxBatch: number;
  readonly keptValues: ValueFilter;
  /** Whether a whole-batch 400 blames the line item id property rather than a line. */
  readonly blamesSetup: (message: string) => boolean;
}

export interface LineEntry {
  readonly set: ClaimedLineSet;
  readonly line: LineDraft;
  readonly input: UpsertInput;
}

/** Thrown inside a round to stop it; the round's sets are settled by the sender. */
export class RoundStopped extends Error {}

const MAX_ASSOCIATIONS = 1000;

/** The upsert input of one line: only the values the portal offers, and its key. */
export function toLineEntry(
  lane: LineRequestLane,
  set: ClaimedLineSet,
  line: LineDraft,
  portal: PortalProperties,
): LineEntry {
  const kept = lane.keptValues(portal, line.properties);
  kept[lane.idProperty] = line.key;
  return {
    set,
    line,
    input: {
      id: line.key,
      idProperty: lane.idProperty,
      objectWriteTraceId: randomUUID(),
      properties: kept,
    },
  };
}

/** One upsert (narrowed on a whole-batch 400); learned ids are recorded at once. */
export async function upsertLines(
  lane: LineRequestLane,
  entries: readonly LineEntry[],
  idByKey: Map<string, string>,
  rejected: RejectedLine[],
): Promise<void> {
  await takeLaneSlot(lane);
  const started = performance.now();
  try {
    const outcome = await lane.client.upsertLineItems(entries.map((e) => e.input));
    recordAnswer(lane, "line_items_upsert", outcome, "200", started, entries.length);
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
    await lane.store.recordLineItems(learned);
    if (unanswered.length > 0)
      throw new RoundStopped("HubSpot's answer named neither a result nor an error for a line item");
  } catch (error) {
    if (error instanceof RoundStopped) throw error;
    const failure = classifyFailure(error, lane.blamesSetup);
    lane.observer.request?.("line_items_upsert", failureStatus(failure), seconds(started), entries.length);
    if (failure.kind !== "rejected") throw error;
    const settled = settleFailedCall(entries, failure);
    for (const e of settled.reject) rejected.push(rejectedLine(e, failure));
    for (const part of settled.split) {
      const again = part.map((e) => ({ ...e, input: { ...e.input, objectWriteTraceId: randomUUID() } }));
      await upsertLines(lane, again, idByKey, rejected);
    }
  }
}

/** Associates with their cart the line items not associated with it yet. */
export async function associateLines(
  lane: LineRequestLane,
  sets: readonly ClaimedLineSet[],
  idByKey: ReadonlyMap<string, string>,
): Promise<void> {
  const pending = unassociated(sets, idByKey);
  for (let i = 0; i < pending.length; i += MAX_ASSOCIATIONS) {
    const chunk = pending.slice(i, i + MAX_ASSOCIATIONS);
    const cartIdOf = new Map(sets.map((s) => [s.cartKey, s.cartId]));
    const request = { operation: "line_items_associate", size: chunk.length, okStatus: "200" };
    const result = await meteredRequest(lane, request, () =>
      lane.client.associateLineItemsWithCarts(
        chunk.map((p) => ({ lineItemId: p.hubspotId, cartId: cartIdOf.get(p.cartKey) as string })),
      ),
    );
    for (const e of result.errors)
      lane.log.warn({ category: e.category, reason: e.message }, "line item association rejected by HubSpot");
    // An association HubSpot refused is recorded as not made, so the set's next change tries it again. An
    // error that names no line item leaves the whole chunk unmade (never recorded as linked on a guess).
    await lane.store.recordLineItems(unassociatedWhereRefused(chunk, result.errors));
  }
}

/** The line items HubSpot knows (an id in `idByKey`) that are not associated with their set's cart yet. */
function unassociated(
  sets: readonly ClaimedLineSet[],
  idByKey: ReadonlyMap<string, string>,
): LearnedLineItem[] {
  const pending: LearnedLineItem[] = [];
  for (const set of sets) {
    for (const line of set.lines) {
      const id = idByKey.get(line.key);
      if (id === undefined) continue;
      const known = set.known.find((k) => k.lineKey === line.key);
      if (known?.hubspotId === id && known.associatedCartId === set.cartId) continue;
      pending.push({ lineKey: line.key, cartKey: set.cartKey, hubspotId: id, associatedCartId: set.cartId });
    }
  }
  return pending;
}

/** Archives the known line items whose key left their set; returns the sets as sent. */
export async function archiveLeftovers(
  lane: LineRequestLane,
  sets: readonly ClaimedLineSet[],
): Promise<SentLineSet[]> {
  const gone = sets.map((set) => {
    const keys = new Set(set.lines.map((l) => l.key));
    return { set, items: set.known.filter((k) => !keys.has(k.lineKey)) };
  });
  const ids = gone.flatMap((g) => g.items.map((i) => i.hubspotId));
  for (let i = 0; i < ids.length; i += lane.maxBatch) {
    const chunk = ids.slice(i, i + lane.maxBatch);
    const request = { operation: "line_items_archive", size: chunk.length, okStatus: "204" };
    await meteredRequest(lane, request, () => lane.client.archiveLineItems(chunk));
  }
  return gone.map((g) => ({
    cartKey: g.set.cartKey,
    version: g.set.version,
    archivedLineKeys: g.items.map((i) => i.lineKey),
  }));
}

function rejectedLine(e: LineEntry, error: { message: string; category: string | undefined }): RejectedLine {
  return { cartKey: e.set.cartKey, lineKey: e.line.key, reason: error.message, category: error.category };
}

/**
 * The line items of `chunk` as they now stand in HubSpot. An association error names a pair by the line
 * item's id or by the cart's (HubSpot's "no such cart" names only the `toObjectId`), in its `context` or
 * `ids`: the pairs it names are not associated. An error that names no pair of the chunk leaves no
 * association of the chunk trusted.
 */
export function unassociatedWhereRefused<
  T extends { hubspotId: string; associatedCartId: string | undefined },
>(chunk: readonly T[], errors: readonly InputError[]): T[] {
  const refused = new Set<T>();
  let unplaced = false;
  for (const e of errors) {
    const ids = new Set([...e.ids, ...Object.values(e.context).flat()]);
    const named = chunk.filter(
      (item) =>
        ids.has(item.hubspotId) || (item.associatedCartId !== undefined && ids.has(item.associatedCartId)),
    );
    if (named.length === 0) unplaced = true;
    for (const item of named) refused.add(item);
  }
  return chunk.map((item) =>
    unplaced || refused.has(item) ? { ...item, associatedCartId: undefined } : item,
  );
}
