/**
 * One reconciliation pass for one shop (SPEC §9): read abandoned checkouts, then orders, updated since
 * the shop's watermark (minus an overlap), page by page; ingest each page through the same store ingest as
 * webhooks; move the watermarks only when both sources were read to the end.
 *
 * A change counts as missed (webhooks did not bring it) when it changed the store, is more than
 * MISSED_AFTER_MS old, and falls inside the window the shop's regular passes cover (after its watermark
 * minus the overlap): the first pass and a backfill's reach further back find history, not misses.
 *
 * Per request, the answers of the Admin client lead to:
 * - ok: map, ingest, next page;
 * - throttled: wait until the bucket holds the query's cost again (from throttleStatus), ask again;
 * - max_cost: halve the page and ask again (page sizes are chosen to stay under it; this is the safety net);
 * - auth: stop, the shop is paused with the reason (the watermark stays: nothing is skipped);
 * - failed: back off and ask again, up to MAX_FAILURES in a row, then the pass fails (the watermark stays).
 * Before each request the pass waits, if needed, until the last reported throttleStatus, restored at its
 * restore rate, covers the request: the bucket is never asked for more than it has.
 */
import type { AdminAnswer, ShopifyAdmin, QueryCost } from "../../shopify/admin-client.ts";
import type { IngestItem, Store } from "../../store/store.ts";
import type { ReconcileSource } from "../../store/reconcile-store.ts";
import { mapAbandonedCheckout, mapOrder, tokenFromCheckoutUrl, type ReconciledDelivery } from "./map.ts";
import type { AbandonedCheckoutNode, OrderNode } from "./map.ts";
import {
  ABANDONED_CHECKOUTS_QUERY,
  CHECKOUT_NODE_COST,
  ORDER_NODE_COST,
  ORDERS_QUERY,
  pageSizeFor,
  requestedCostOf,
  updatedSince,
} from "./queries.ts";

/** Read again what changed this long before the watermark (clock skew, Shopify's indexing delay). */
export const OVERLAP_MS = 5 * 60_000;
/** A change found this much older than now, that the store did not have, was missed by webhooks. */
export const MISSED_AFTER_MS = 10 * 60_000;
const MAX_FAILURES = 5;

export interface PassSummary {
  read: number;
  changed: number;
  missed: number;
  /** Nodes without a usable key (POS and draft orders; checkouts without a recovery URL). */
  skipped: number;
}

export interface PageProgress extends PassSummary {
  readonly shopDomain: string;
  readonly source: ReconcileSource;
  readonly page: number;
  readonly pageSize: number;
  readonly hasNextPage: boolean;
}

export interface MissedChange {
  readonly topic: ReconcileSource;
  readonly cartKey: string;
  readonly updatedAtMs: number;
  readonly foundAtMs: number;
}

export type PassResult =
  | { outcome: "completed"; summary: PassSummary }
  | { outcome: "paused"; reason: string; summary: PassSummary }
  | { outcome: "failed"; reason: string; summary: PassSummary }
  | { outcome: "stopped"; summary: PassSummary };

export interface PassDeps {
  readonly admin: Pick<ShopifyAdmin, "query">;
  readonly store: Pick<Store, "ingestBatch" | "reconcile">;
  readonly now: () => number;
  /** Resolves after `ms`, or early when the signal aborts. */
  readonly sleep: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  readonly syncContacts: boolean;
  readonly onChanged?: () => void;
  readonly onMissed?: (missed: MissedChange & { shopDomain: string }) => void;
  readonly onPage?: (progress: PageProgress) => void;
  readonly signal?: AbortSignal;
}

export interface PassOptions {
  readonly shopDomain: string;
  readonly lookbackDays: number;
  /** Read from here instead of the watermark (a backfill: `cartbridge reconcile --since`). */
  readonly sinceMs?: number;
}

interface SourceSpec {
  readonly source: ReconcileSource;
  readonly query: string;
  readonly nodeCost: number;
  readonly root: "abandonedCheckouts" | "orders";
}

const SOURCES: readonly SourceSpec[] = [
  {
    source: "checkouts",
    query: ABANDONED_CHECKOUTS_QUERY,
    nodeCost: CHECKOUT_NODE_COST,
    root: "abandonedCheckouts",
  },
  { source: "orders", query: ORDERS_QUERY, nodeCost: ORDER_NODE_COST, root: "orders" },
];

interface Connection<T> {
  readonly nodes: readonly T[];
  readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null };
}

export async function runPass(deps: PassDeps, opts: PassOptions): Promise<PassResult> {
  const shop = opts.shopDomain;
  const summary: PassSummary = { read: 0, changed: 0, missed: 0, skipped: 0 };
  const startedAtMs = deps.now();
  let bucket: { cost: QueryCost; atMs: number } | undefined;

  /** Waits until the bucket, as last reported and restored since, holds `cost` points. */
  const pace = async (cost: number): Promise<void> => {
    if (bucket === undefined) return;
    const t = bucket.cost.throttleStatus;
    const available = Math.min(
      t.maximumAvailable,
      t.currentlyAvailable + ((deps.now() - bucket.atMs) / 1000) * t.restoreRate,
    );
    if (available >= cost || t.restoreRate <= 0) return;
    await deps.sleep(Math.ceil(((cost - available) / t.restoreRate) * 1000), deps.signal);
  };

  // A source whose reading reached back to its watermark (or that had none) may move it; a `--since` that
  // starts after the watermark leaves a gap no later pass would read, so it leaves the watermark alone.
  const covered = new Set<ReconcileSource>();
  for (const spec of SOURCES) {
    const watermark = await deps.store.reconcile.watermark(shop, spec.source);
    if (opts.sinceMs === undefined || watermark === undefined || opts.sinceMs <= watermark - OVERLAP_MS)
      covered.add(spec.source);
    const sinceMs =
      opts.sinceMs ??
      (watermark === undefined ? startedAtMs - opts.lookbackDays * 86_400_000 : watermark - OVERLAP_MS);
    // Only changes inside the window regular passes cover can be missed ones: the first pass over a source
    // and a backfill's reach before the watermark find history that was never asked for.
    const missedFromMs = watermark === undefined ? undefined : watermark - OVERLAP_MS;
    let pageSize = pageSizeFor(spec.nodeCost);
    let after: string | null = null;
    let page = 0;
    let failures = 0;
    for (;;) {
      if (stopped(deps)) return { outcome: "stopped", summary };
      const requested = requestedCostOf(pageSize, spec.nodeCost);
      await pace(requested);
      if (stopped(deps)) return { outcome: "stopped", summary };
      const answer: AdminAnswer<Record<string, Connection<unknown>>> = await deps.admin.query<
        Record<string, Connection<unknown>>
      >(shop, spec.query, {
        first: pageSize,
        after,
        query: updatedSince(sinceMs),
      });
      if (answer.kind === "auth") return { outcome: "paused", reason: answer.reason, summary };
      if (answer.kind === "max_cost") {
        if (pageSize === 1)
          return { outcome: "failed", reason: "a single node exceeds the query cost limit", summary };
        pageSize = Math.max(1, Math.floor(pageSize / 2));
        continue;
      }
      if (answer.kind === "throttled") {
        if (answer.cost !== undefined) bucket = { cost: answer.cost, atMs: deps.now() };
        const t = answer.cost?.throttleStatus;
        const waitMs =
          t === undefined || t.restoreRate <= 0
            ? 1000
            : Math.ceil((Math.max(0, requested - t.currentlyAvailable) / t.restoreRate) * 1000) + 50;
        await deps.sleep(waitMs, deps.signal);
        continue;
      }
      if (answer.kind === "failed") {
        failures += 1;
        if (failures >= MAX_FAILURES) return { outcome: "failed", reason: answer.reason, summary };
        await deps.sleep(Math.min(30_000, 500 * 2 ** failures), deps.signal);
        continue;
      }
      failures = 0;
      if (answer.cost !== undefined) bucket = { cost: answer.cost, atMs: deps.now() };
      const connection: Connection<unknown> | undefined = answer.data[spec.root];
      if (connection === undefined)
        return { outcome: "failed", reason: `answer without ${spec.root}`, summary };
      page += 1;
      await ingestPage(deps, shop, spec.source, connection.nodes, summary, missedFromMs);
      deps.onPage?.({
        shopDomain: shop,
        source: spec.source,
        page,
        pageSize,
        hasNextPage: connection.pageInfo.hasNextPage,
        ...summary,
      });
      if (!connection.pageInfo.hasNextPage || connection.pageInfo.endCursor === null) break;
      after = connection.pageInfo.endCursor;
    }
  }
  // Both sources were read to the end: what changed before the pass began is in the store.
  for (const spec of SOURCES) {
    if (!covered.has(spec.source)) continue;
    const current = await deps.store.reconcile.watermark(shop, spec.source);
    if (current === undefined || current < startedAtMs) {
      await deps.store.reconcile.setWatermark(shop, spec.source, startedAtMs);
    }
  }
  return { outcome: "completed", summary };
}

function stopped(deps: PassDeps): boolean {
  return deps.signal?.aborted === true;
}

async function ingestPage(
  deps: PassDeps,
  shop: string,
  source: ReconcileSource,
  nodes: readonly unknown[],
  summary: PassSummary,
  missedFromMs: number | undefined,
): Promise<void> {
  let deliveries: ReconciledDelivery[];
  if (source === "checkouts") {
    const checkouts = nodes as readonly AbandonedCheckoutNode[];
    const checkoutTokens = checkouts
      .map((n) => tokenFromCheckoutUrl(n.abandonedCheckoutUrl))
      .filter((t) => t?.kind === "checkout")
      .map((t) => t?.token ?? "");
    const links =
      checkoutTokens.length === 0
        ? new Map<string, string>()
        : await deps.store.reconcile.cartTokensOf(shop, checkoutTokens);
    deliveries = checkouts.map((n) => mapAbandonedCheckout(shop, n, (token) => links.get(token)));
  } else {
    deliveries = (nodes as readonly OrderNode[]).map((n) => mapOrder(shop, n));
  }
  summary.read += nodes.length;
  const nowMs = deps.now();
  const items: IngestItem[] = [];
  for (const d of deliveries) {
    let mapped = d.mapped;
    if (mapped.kind !== "event") {
      summary.skipped += 1;
      continue;
    }
    if (!deps.syncContacts && mapped.event.contact !== undefined) {
      const { contact: _dropped, ...event } = mapped.event;
      mapped = { ...mapped, event };
    }
    items.push({
      webhookId: undefined,
      topic: d.topic,
      shopDomain: shop,
      receivedAtMs: nowMs,
      headers: { "x-cartbridge-source": "reconciliation" },
      body: d.body,
      mapped,
    });
  }
  if (items.length === 0) return;
  const outcomes = await deps.store.ingestBatch(items);
  let changed = false;
  for (const [i, outcome] of outcomes.entries()) {
    if (outcome !== "applied") continue;
    changed = true;
    summary.changed += 1;
    const item = items[i];
    if (item?.mapped.kind !== "event") continue;
    const updatedAtMs = item.mapped.event.stamp.timeMs;
    if (missedFromMs !== undefined && updatedAtMs >= missedFromMs && updatedAtMs < nowMs - MISSED_AFTER_MS) {
      summary.missed += 1;
      deps.onMissed?.({
        shopDomain: shop,
        topic: source,
        cartKey: item.mapped.event.key,
        updatedAtMs,
        foundAtMs: nowMs,
      });
    }
  }
  if (changed) deps.onChanged?.();
}
