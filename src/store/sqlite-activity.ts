/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract */
import type { DatabaseSync } from "node:sqlite";
import {
  activityRows,
  assembleShops,
  reasonCounts,
  BUCKET_MS,
  countedDeliveries,
  toCartRecord,
  type ActivityQueries,
  type DeadLetterFilter,
} from "./activity.ts";
import type { SqliteMigration } from "./sqlite-schema.ts";
import type { DeadLetter, IngestItem, IngestOutcome } from "./store.ts";

/** The console's tables on SQLite (see activity.ts for what they hold): migration 2 (sqlite-schema.ts). */
export const SQLITE_ACTIVITY_MIGRATION: SqliteMigration = {
  version: 3,
  name: "console activity",
  sql: `
CREATE TABLE IF NOT EXISTS shop_activity (
  bucket     INTEGER NOT NULL,
  shop       TEXT NOT NULL,
  deliveries INTEGER NOT NULL,
  PRIMARY KEY (bucket, shop)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shop_topics (
  shop    TEXT NOT NULL,
  topic   TEXT NOT NULL,
  last_at INTEGER NOT NULL,
  PRIMARY KEY (shop, topic)
) WITHOUT ROWID;
-- Per-shop pending counts and dead-letter reasons read from indexes alone, not the rows (and their bodies).
CREATE INDEX IF NOT EXISTS carts_shop_pending ON carts (shop, pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (category, source);
`,
};

type Row = Record<string, unknown>;

/**
 * Matches dead letters by shop (?1) and by ?2: their category (else source, as the console lists them) in
 * any case, or words of their reason; NULL matches everything. A category is matched whole, so replaying
 * "all that match" one never takes in another.
 */
const DEAD_LETTER_FILTER = `(?1 IS NULL OR shop = ?1)
  AND (?2 IS NULL OR lower(coalesce(category, source)) = lower(?2) OR instr(lower(reason), lower(?2)) > 0)`;

export interface SqliteActivity {
  /** Runs inside the ingest transaction. */
  record(items: readonly IngestItem[], outcomes: readonly IngestOutcome[]): void;
  /** Deletes buckets older than the cut-off (the delivery retention); returns rows removed. */
  purge(beforeMs: number): number;
  /** Inside a transaction (shop/redact): forgets the shop's delivery counts and last deliveries. */
  redactShop(shop: string): void;
  readonly queries: ActivityQueries;
}

export function createSqliteActivity(
  db: DatabaseSync,
  toDeadLetter: (row: Row) => DeadLetter,
): SqliteActivity {
  const sql = (text: string) => db.prepare(text);
  const q = {
    addBucket: sql(`INSERT INTO shop_activity (bucket, shop, deliveries) VALUES (?, ?, ?)
        ON CONFLICT (bucket, shop) DO UPDATE SET deliveries = deliveries + excluded.deliveries`),
    touchTopic: sql(`INSERT INTO shop_topics (shop, topic, last_at) VALUES (?, ?, ?)
        ON CONFLICT (shop, topic) DO UPDATE SET last_at = max(last_at, excluded.last_at)`),
    purge: sql("DELETE FROM shop_activity WHERE bucket < ?"),
    redactBuckets: sql("DELETE FROM shop_activity WHERE shop = ?"),
    redactTopics: sql("DELETE FROM shop_topics WHERE shop = ?"),
    topics: sql("SELECT shop, topic, last_at FROM shop_topics"),
    buckets: sql(`SELECT shop, sum(CASE WHEN bucket >= ?1 THEN deliveries ELSE 0 END) AS hour,
        sum(deliveries) AS day FROM shop_activity WHERE bucket >= ?2 GROUP BY shop`),
    pending: sql(`SELECT shop, count(*) AS n, min(pending_since) AS oldest FROM carts
        WHERE pending_since IS NOT NULL GROUP BY shop`),
    dead: sql("SELECT shop, count(*) AS n FROM dead_letters GROUP BY shop"),
    pageAsc: sql(`SELECT * FROM dead_letters WHERE id > ?3 AND ${DEAD_LETTER_FILTER} ORDER BY id LIMIT ?4`),
    pageDesc: sql(
      `SELECT * FROM dead_letters WHERE id < ?3 AND ${DEAD_LETTER_FILTER} ORDER BY id DESC LIMIT ?4`,
    ),
    count: sql(`SELECT count(*) AS n FROM dead_letters WHERE ${DEAD_LETTER_FILTER}`),
    // Without a reason the count is read from an index (the filter above would read every row).
    countByShop: sql("SELECT count(*) AS n FROM dead_letters WHERE shop = ?"),
    countAll: sql("SELECT count(*) AS n FROM dead_letters"),
    ids: sql(`SELECT id FROM dead_letters WHERE ${DEAD_LETTER_FILTER} ORDER BY id`),
    reasons: sql("SELECT category, source, count(*) AS n FROM dead_letters GROUP BY category, source"),
    cartByKey: sql("SELECT * FROM carts WHERE key = ?"),
    // The shops to try the token in: those that delivered, have dead letters, or were reconciled (a shop
    // whose webhooks never come has carts from reconciliation alone).
    cartByToken: sql(`SELECT * FROM carts WHERE key IN (
        SELECT shop || ':' || ?1 FROM shop_topics UNION SELECT shop || ':' || ?1 FROM dead_letters
        UNION SELECT shop || ':' || ?1 FROM reconcile_watermarks)`),
  };
  const filterParams = (f: DeadLetterFilter): [string | null, string | null] => [
    f.shopDomain ?? null,
    f.reason ?? null,
  ];

  return {
    record(items, outcomes) {
      const rows = activityRows(countedDeliveries(items, outcomes));
      for (const b of rows.buckets) q.addBucket.run(b.bucketMs, b.shopDomain, b.deliveries);
      for (const t of rows.topics) q.touchTopic.run(t.shopDomain, t.topic, t.lastAtMs);
    },
    purge(beforeMs) {
      return Number(q.purge.run(Math.floor(beforeMs / BUCKET_MS) * BUCKET_MS).changes);
    },
    redactShop(shop) {
      q.redactBuckets.run(shop);
      q.redactTopics.run(shop);
    },
    queries: {
      async shops(nowMs) {
        const hourFrom = Math.floor((nowMs - 3_600_000) / BUCKET_MS) * BUCKET_MS;
        const dayFrom = Math.floor((nowMs - 86_400_000) / BUCKET_MS) * BUCKET_MS;
        return assembleShops(q.topics.all(), q.buckets.all(hourFrom, dayFrom), q.pending.all(), q.dead.all());
      },
      async findDeadLetters(page) {
        const [shop, reason] = filterParams(page);
        const rows = page.newestFirst
          ? q.pageDesc.all(shop, reason, page.beforeId ?? Number.MAX_SAFE_INTEGER, page.limit)
          : q.pageAsc.all(shop, reason, page.afterId ?? 0, page.limit);
        return (rows as Row[]).map(toDeadLetter);
      },
      async countDeadLetters(filter) {
        const row =
          filter.reason !== undefined
            ? q.count.get(...filterParams(filter))
            : filter.shopDomain !== undefined
              ? q.countByShop.get(filter.shopDomain)
              : q.countAll.get();
        return Number((row as Row)["n"]);
      },
      async deadLetterIds(filter) {
        return (q.ids.all(...filterParams(filter)) as Row[]).map((r) => Number(r["id"]));
      },
      async deadLetterReasons() {
        return reasonCounts(q.reasons.all());
      },
      async findCarts(keyOrToken) {
        const rows = keyOrToken.includes(":") ? q.cartByKey.all(keyOrToken) : q.cartByToken.all(keyOrToken);
        return (rows as Row[]).map(toCartRecord);
      },
    },
  };
}
