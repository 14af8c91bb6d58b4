/**
 * One reconciliation pass for one shop (SPEC §9): read abandoned checkouts, then orders, updated since
 * the shop's watermark (minus an overlap), page by page; ingest each page through the same store ingest as
 * webhooks; move the watermarks only when both sources were read to the end.
 *
 * A change counts as missed (webhooks did not bring it) when it changed the store and is more than
 * MISSED_AFTER_MS old (SPEC §9), in any pass: the first one and a backfill included, so history the store
 * never had counts too.
 *
 * Per request, the answers of the Admin client lead to:
 * - ok: map, ingest, next page;
 * - throttled: wait until the bucket holds the query's cost again (from throttleStatus), ask again;
 * - max_cost: halve the page and ask again (page sizes are chosen to stay under it; this is the safety net);
 * - auth: stop, the shop is paused with the reason (the watermark stays: nothing is skipped);
 * - access_denied (fields the token's scopes do not reach): ask the source's narrower query for the rest of
 *   the pass — abandoned checkouts without their lines' variant and product (`read_products`);
 * - failed: back off and ask again, up to MAX_FAILURES in a row, then the pass fails (the watermark stays).
 * Before each request the pass waits, if needed, until the last reported throttleStatus, restored at its
 * restore rate, covers the request: the bucket is never asked for more than it has.
 */
import type { AdminAnswer, ShopifyAdmin, QueryCost } from "../../shopify/admin-client.ts";
import type { Store } from "../../store/store.ts";
import type { MissedChange, ReconcileSource } from "../../store/reconcile-store.ts";
import { ingestPage } from "./ingest-page.ts";
import {
  ABANDONED_CHECKOUTS_QUERY,
  ABANDONED_CHECKOUTS_QUERY_WITHOUT_PRODUCTS,
  CHECKOUT_NODE_COST,
  CHECKOUT_NODE_COST_WITHOUT_PRODUCTS,
  ORDER_NODE_COST,
  ORDERS_QUERY,
  pageSizeFor,
  requestedCostOf,
  updatedSince,
} from "./queries.ts";

/** Read again what changed this long before the watermark (clock skew, Shopify's indexing delay). */
export const OVERLAP_MS = 5 * 60_000;
/** Failed requests in a row (5xx, timeouts) after which a pass gives up; the watermark stays. */
const MAX_FAILURES = 5;

export interface PassSummary {
  read: number;
  changed: number;
  missed: number;
  /** Nodes without a usable key (POS and draft orders; checkouts without a recovery URL). */
  skipped: number;
}

/** One page read: its own counts (not the pass's so far). */
export interface PageProgress extends PassSummary {
  readonly shopDomain: string;
  readonly source: ReconcileSource;
  readonly page: number;
  readonly pageSize: number;
  readonly hasNextPage: boolean;
}

export type { MissedChange } from "../../store/reconcile-store.ts";

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
  /** A failure the pass goes on after (the last missed change could not be recorded). */
  readonly onError?: (error: unknown, what: string) => void;
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
  /** The query to ask instead when Shopify denies access to some of its fields (ACCESS_DENIED). */
  readonly narrower?: SourceSpec;
}

const SOURCES: readonly SourceSpec[] = [
  {
    source: "checkouts",
    query: ABANDONED_CHECKOUTS_QUERY,
    nodeCost: CHECKOUT_NODE_COST,
    root: "abandonedCheckouts",
    // Without `read_products` the lines' variant and product are refused: lines without them (no line set).
    narrower: {
      source: "checkouts",
      query: ABANDONED_CHECKOUTS_QUERY_WITHOUT_PRODUCTS,
      nodeCost: CHECKOUT_NODE_COST_WITHOUT_PRODUCTS,
      root: "abandonedCheckouts",
    },
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
  const pacer = createPacer(deps);
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
    const ended = await readSource(deps, { shop, spec, sinceMs, summary, pacer });
    if (ended !== undefined) return ended;
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

/** One source's reading within a pass. */
interface SourceRead {
  readonly shop: string;
  readonly spec: SourceSpec;
  readonly sinceMs: number;
  readonly summary: PassSummary;
  readonly pacer: Pacer;
}

/**
 * Reads one source page by page to its end (undefined), or returns how the pass ends early: stopped,
 * paused (auth), failed. Each answer leads where the ladder at the top of this file says.
 */
async function readSource(deps: PassDeps, r: SourceRead): Promise<PassResult | undefined> {
  const { shop, summary, pacer } = r;
  let spec = r.spec;
  let pageSize = pageSizeFor(spec.nodeCost);
  let after: string | null = null;
  let page = 0;
  let failures = 0;
  for (;;) {
    if (stopped(deps)) return { outcome: "stopped", summary };
    const requested = requestedCostOf(pageSize, spec.nodeCost);
    await pacer.pace(requested);
    if (stopped(deps)) return { outcome: "stopped", summary };
    const answer: AdminAnswer<Record<string, Connection<unknown>>> = await deps.admin.query<
      Record<string, Connection<unknown>>
    >(shop, spec.query, {
      first: pageSize,
      after,
      query: updatedSince(r.sinceMs),
    });
    if (answer.kind === "auth") return { outcome: "paused", reason: answer.reason, summary };
    if (answer.kind === "access_denied" && spec.narrower !== undefined) {
      // Asked again without the fields the token's scopes do not reach, for the rest of this pass.
      spec = spec.narrower;
      pageSize = pageSizeFor(spec.nodeCost);
      continue;
    }
    if (answer.kind === "access_denied") return { outcome: "failed", reason: answer.reason, summary };
    if (answer.kind === "max_cost") {
      if (pageSize === 1)
        return { outcome: "failed", reason: "a single node exceeds the query cost limit", summary };
      pageSize = Math.max(1, Math.floor(pageSize / 2));
      continue;
    }
    if (answer.kind === "throttled") {
      if (answer.cost !== undefined) pacer.observe(answer.cost);
      await deps.sleep(throttledWaitMs(answer.cost, requested), deps.signal);
      continue;
    }
    if (answer.kind === "failed") {
      failures += 1;
      if (failures >= MAX_FAILURES) return { outcome: "failed", reason: answer.reason, summary };
      await deps.sleep(Math.min(30_000, 500 * 2 ** failures), deps.signal);
      continue;
    }
    failures = 0;
    if (answer.cost !== undefined) pacer.observe(answer.cost);
    const connection: Connection<unknown> | undefined = answer.data[spec.root];
    if (connection === undefined)
      return { outcome: "failed", reason: `answer without ${spec.root}`, summary };
    page += 1;
    const before = { ...summary };
    await ingestPage(deps, shop, spec.source, connection.nodes, summary);
    deps.onPage?.({
      shopDomain: shop,
      source: spec.source,
      page,
      pageSize,
      hasNextPage: connection.pageInfo.hasNextPage,
      read: summary.read - before.read,
      changed: summary.changed - before.changed,
      missed: summary.missed - before.missed,
      skipped: summary.skipped - before.skipped,
    });
    if (!connection.pageInfo.hasNextPage || connection.pageInfo.endCursor === null) return undefined;
    after = connection.pageInfo.endCursor;
  }
}

/** After a throttled answer: until the bucket holds the request's cost again (1 s when it does not say). */
function throttledWaitMs(cost: QueryCost | undefined, requested: number): number {
  const t = cost?.throttleStatus;
  return t === undefined || t.restoreRate <= 0
    ? 1000
    : Math.ceil((Math.max(0, requested - t.currentlyAvailable) / t.restoreRate) * 1000) + 50;
}

/** The shop's query cost bucket as Shopify last reported it, and the wait before a request. */
interface Pacer {
  /** Waits until the bucket, as last reported and restored since, holds `cost` points. */
  pace(cost: number): Promise<void>;
  /** Folds in the cost an answer reported. */
  observe(cost: QueryCost): void;
}

function createPacer(deps: Pick<PassDeps, "now" | "sleep" | "signal">): Pacer {
  let bucket: { cost: QueryCost; atMs: number } | undefined;
  return {
    async pace(cost) {
      if (bucket === undefined) return;
      const t = bucket.cost.throttleStatus;
      const available = Math.min(
        t.maximumAvailable,
        t.currentlyAvailable + ((deps.now() - bucket.atMs) / 1000) * t.restoreRate,
      );
      if (available >= cost || t.restoreRate <= 0) return;
      await deps.sleep(Math.ceil(((cost - available) / t.restoreRate) * 1000), deps.signal);
    },
    observe(cost) {
      bucket = { cost, atMs: deps.now() };
    },
  };
}

function stopped(deps: PassDeps): boolean {
  return deps.signal?.aborted === true;
}
