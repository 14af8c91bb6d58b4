import type { CartState } from "../sync/merge.ts";
import type { DeadLetter, IngestItem, IngestOutcome } from "./store.ts";

type Row = Record<string, unknown>;

/**
 * What the operator console reads (overview, dead-letter search, cart lookup), kept cheap to read.
 *
 * Glossary
 * - activity bucket: deliveries one shop sent in one 10-minute bucket (`bucketMs` is its start), updated in
 *   the ingest transaction; the overview sums at most a day of buckets per shop instead of scanning
 *   deliveries. A delivery counts when it is committed for the first time, whatever its outcome (duplicates,
 *   replays and reconciliation's reads do not).
 * - shop topic: the last time a shop delivered each topic.
 */
export const BUCKET_MS = 10 * 60_000;

export interface ShopActivity {
  readonly shopDomain: string;
  /** Topic → when its last delivery arrived (epoch ms). */
  readonly lastDeliveryByTopic: Readonly<Record<string, number>>;
  /** Deliveries in the buckets that started in the last hour / day (so up to 10 minutes more). */
  readonly deliveriesLastHour: number;
  readonly deliveriesLastDay: number;
  readonly pendingCarts: number;
  readonly oldestPendingSinceMs: number | undefined;
  readonly deadLetters: number;
}

/** A shop with no delivery recorded. */
export function noActivity(shopDomain: string): ShopActivity {
  return {
    shopDomain,
    lastDeliveryByTopic: {},
    deliveriesLastHour: 0,
    deliveriesLastDay: 0,
    pendingCarts: 0,
    oldestPendingSinceMs: undefined,
    deadLetters: 0,
  };
}

export interface DeadLetterFilter {
  readonly shopDomain?: string | undefined;
  /**
   * A dead letter matches when its category (else its source, as deadLetterReasons lists it) is this, or
   * its reason contains it, in any case.
   */
  readonly reason?: string | undefined;
}

export interface DeadLetterPage extends DeadLetterFilter {
  readonly limit: number;
  /** Oldest first after this id, or (with `newestFirst`) newest first below it. */
  readonly afterId?: number | undefined;
  readonly beforeId?: number | undefined;
  readonly newestFirst?: boolean | undefined;
}

export interface CartRecord {
  readonly key: string;
  readonly shopDomain: string;
  readonly state: CartState;
  readonly version: number;
  readonly syncedVersion: number;
  readonly pendingSinceMs: number | undefined;
  readonly attempts: number;
  readonly nextAttemptAtMs: number | undefined;
  readonly lastError: string | undefined;
  readonly hubspotId: string | undefined;
  readonly updatedAtMs: number;
  /** When HubSpot last took a version of the cart (undefined: never, or before this was recorded). */
  readonly lastSentAtMs: number | undefined;
}

export interface ActivityQueries {
  shops(nowMs: number): Promise<ShopActivity[]>;
  findDeadLetters(page: DeadLetterPage): Promise<DeadLetter[]>;
  countDeadLetters(filter: DeadLetterFilter): Promise<number>;
  deadLetterIds(filter: DeadLetterFilter): Promise<number[]>;
  /** Dead letters per category (or source when it has none), most first. */
  deadLetterReasons(): Promise<Array<{ reason: string; count: number }>>;
  /** A cart by its key, or by its token in any shop that ever delivered. */
  findCarts(keyOrToken: string): Promise<CartRecord[]>;
}

export interface CountedDelivery {
  readonly shopDomain: string;
  readonly topic: string;
  readonly receivedAtMs: number;
}

/**
 * The deliveries of an ingest batch that count as activity: committed for the first time, whatever their
 * outcome (an unkeyed or ignored topic still shows its subscription works); not replays, and not
 * reconciliation's reads (webhooks that never came must not look like deliveries).
 */
export function countedDeliveries(
  items: readonly IngestItem[],
  outcomes: readonly IngestOutcome[],
): CountedDelivery[] {
  const counted: CountedDelivery[] = [];
  items.forEach((item, i) => {
    if (outcomes[i] === "duplicate" || item.replay === true || item.reconciled === true) return;
    // A topic the bridge does not handle is `other`, as in the metrics: its name comes from an unsigned
    // header, and the rows it makes are kept.
    const topic = item.mapped.kind === "unhandled" ? "other" : item.topic;
    counted.push({ shopDomain: item.shopDomain, topic, receivedAtMs: item.receivedAtMs });
  });
  return counted;
}

/** Folds counted deliveries into (bucket, shop) counts and (shop, topic) last times, in key order. */
export function activityRows(counted: readonly CountedDelivery[]): {
  buckets: Array<{ bucketMs: number; shopDomain: string; deliveries: number }>;
  topics: Array<{ shopDomain: string; topic: string; lastAtMs: number }>;
} {
  const buckets = new Map<string, { bucketMs: number; shopDomain: string; deliveries: number }>();
  const topics = new Map<string, { shopDomain: string; topic: string; lastAtMs: number }>();
  for (const d of counted) {
    const bucketMs = Math.floor(d.receivedAtMs / BUCKET_MS) * BUCKET_MS;
    const bk = `${bucketMs}\u0000${d.shopDomain}`;
    const b = buckets.get(bk);
    if (b === undefined) buckets.set(bk, { bucketMs, shopDomain: d.shopDomain, deliveries: 1 });
    else b.deliveries++;
    const tk = `${d.shopDomain}\u0000${d.topic}`;
    const t = topics.get(tk);
    if (t === undefined)
      topics.set(tk, { shopDomain: d.shopDomain, topic: d.topic, lastAtMs: d.receivedAtMs });
    else t.lastAtMs = Math.max(t.lastAtMs, d.receivedAtMs);
  }
  const byKey = <T>(m: Map<string, T>): T[] =>
    [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v);
  return { buckets: byKey(buckets), topics: byKey(topics) };
}

/** One overview row per shop seen in any of the four reads (shared by both stores). */
export function assembleShops(
  topics: readonly Row[],
  buckets: readonly Row[],
  pending: readonly Row[],
  dead: readonly Row[],
): ShopActivity[] {
  type Mutable = {
    shopDomain: string;
    lastDeliveryByTopic: Record<string, number>;
    deliveriesLastHour: number;
    deliveriesLastDay: number;
    pendingCarts: number;
    oldestPendingSinceMs: number | undefined;
    deadLetters: number;
  };
  const shops = new Map<string, Mutable>();
  const shop = (domain: unknown): Mutable => {
    const key = String(domain);
    let s = shops.get(key);
    if (s === undefined) {
      s = { ...noActivity(key), lastDeliveryByTopic: {} };
      shops.set(key, s);
    }
    return s;
  };
  for (const r of topics) shop(r["shop"]).lastDeliveryByTopic[String(r["topic"])] = Number(r["last_at"]);
  for (const r of buckets) {
    const s = shop(r["shop"]);
    s.deliveriesLastHour = Number(r["hour"] ?? 0);
    s.deliveriesLastDay = Number(r["day"] ?? 0);
  }
  for (const r of pending) {
    const s = shop(r["shop"]);
    s.pendingCarts = Number(r["n"]);
    s.oldestPendingSinceMs = r["oldest"] == null ? undefined : Number(r["oldest"]);
  }
  for (const r of dead) shop(r["shop"]).deadLetters = Number(r["n"]);
  return [...shops.values()].sort((a, b) => (a.shopDomain < b.shopDomain ? -1 : 1));
}

/** (category, source, n) rows → counts per category, or per source for those without one; most first. */
export function reasonCounts(rows: readonly Row[]): Array<{ reason: string; count: number }> {
  const counts = new Map<string, number>();
  for (const r of rows) {
    const reason = typeof r["category"] === "string" ? r["category"] : String(r["source"]);
    counts.set(reason, (counts.get(reason) ?? 0) + Number(r["n"]));
  }
  return [...counts.entries()]
    .map(([reason, count]) => ({ reason, count }))
    .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1))
    .slice(0, 50);
}

/** A carts row as the console shows it (shared by both stores: same column names). */
export function toCartRecord(row: Row): CartRecord {
  const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  return {
    key: String(row["key"]),
    shopDomain: String(row["shop"]),
    state: JSON.parse(String(row["state"])) as CartState,
    version: Number(row["version"]),
    syncedVersion: Number(row["synced_version"]),
    pendingSinceMs: num(row["pending_since"]),
    attempts: Number(row["attempts"] ?? 0),
    nextAttemptAtMs: num(row["next_attempt_at"]) || undefined,
    lastError: str(row["last_error"]),
    hubspotId: str(row["hubspot_id"]),
    updatedAtMs: Number(row["updated_at"]),
    lastSentAtMs: num(row["last_sent_at"]),
  };
}
