import type pg from "pg";
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
import type { Query, Row } from "./postgres-connection.ts";
import type { Migration } from "./postgres-schema.ts";
import type { DeadLetter, IngestItem, IngestOutcome } from "./store.ts";

/** The console's tables on PostgreSQL (see activity.ts for what they hold). */
export const ACTIVITY_MIGRATION: Migration = {
  version: 5,
  name: "console activity",
  sql: `
CREATE TABLE IF NOT EXISTS shop_activity (
  bucket     BIGINT NOT NULL,
  shop       TEXT NOT NULL,
  deliveries BIGINT NOT NULL,
  PRIMARY KEY (bucket, shop)
);
CREATE TABLE IF NOT EXISTS shop_topics (
  shop    TEXT NOT NULL,
  topic   TEXT NOT NULL,
  last_at BIGINT NOT NULL,
  PRIMARY KEY (shop, topic)
);
-- Per-shop pending counts and dead-letter reasons read from indexes alone, not the rows (and their bodies).
CREATE INDEX IF NOT EXISTS carts_shop_pending ON carts (shop, pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (category, source);
`,
};

/**
 * Rows are upserted in key order (activityRows sorts them), so two ingest transactions touching the same
 * shop's bucket wait for each other instead of deadlocking. Each row is held only from this statement to
 * the COMMIT pipelined right after it.
 */
const RECORD = `
WITH b AS (
  INSERT INTO shop_activity AS a (bucket, shop, deliveries)
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])
  ON CONFLICT (bucket, shop) DO UPDATE SET deliveries = a.deliveries + excluded.deliveries
  RETURNING 1
), t AS (
  INSERT INTO shop_topics AS t (shop, topic, last_at)
  SELECT * FROM unnest($4::text[], $5::text[], $6::bigint[])
  ON CONFLICT (shop, topic) DO UPDATE SET last_at = greatest(t.last_at, excluded.last_at)
  RETURNING 1
)
SELECT (SELECT count(*) FROM b) + (SELECT count(*) FROM t) AS n`;

const FILTER = `($1::text IS NULL OR shop = $1) AND ($2::text IS NULL
  OR lower(coalesce(category, source)) = lower($2) OR strpos(lower(reason), lower($2)) > 0)`;

const SQL = {
  purge: "DELETE FROM shop_activity WHERE bucket < $1",
  topics: "SELECT shop, topic, last_at FROM shop_topics",
  buckets: `SELECT shop, sum(deliveries) FILTER (WHERE bucket >= $1) AS hour, sum(deliveries) AS day
    FROM shop_activity WHERE bucket >= $2 GROUP BY shop`,
  pending: `SELECT shop, count(*) AS n, min(pending_since) AS oldest FROM carts
    WHERE pending_since IS NOT NULL GROUP BY shop`,
  dead: "SELECT shop, count(*) AS n FROM dead_letters GROUP BY shop",
  pageAsc: `SELECT * FROM dead_letters WHERE id > $3 AND ${FILTER} ORDER BY id LIMIT $4`,
  pageDesc: `SELECT * FROM dead_letters WHERE id < $3 AND ${FILTER} ORDER BY id DESC LIMIT $4`,
  count: `SELECT count(*) AS n FROM dead_letters WHERE ${FILTER}`,
  ids: `SELECT id FROM dead_letters WHERE ${FILTER} ORDER BY id`,
  reasons: "SELECT category, source, count(*) AS n FROM dead_letters GROUP BY category, source",
  cartByKey: "SELECT * FROM carts WHERE key = $1 AND version > 0",
  // The shops to try the token in: those that delivered, have dead letters, or were reconciled (a shop
  // whose webhooks never come has carts from reconciliation alone).
  cartByToken: `SELECT * FROM carts WHERE version > 0 AND key IN (
    SELECT shop || ':' || $1 FROM shop_topics UNION SELECT shop || ':' || $1 FROM dead_letters
    UNION SELECT shop || ':' || $1 FROM reconcile_watermarks)`,
} as const;

/** The ingest transaction's activity statement, or undefined when nothing in the group counts. */
export function recordActivity(
  items: readonly IngestItem[],
  outcomes: readonly IngestOutcome[],
): pg.QueryConfig | undefined {
  const { buckets, topics } = activityRows(countedDeliveries(items, outcomes));
  if (buckets.length === 0) return undefined;
  return {
    name: "cartbridge_record_activity",
    text: RECORD,
    values: [
      buckets.map((b) => b.bucketMs),
      buckets.map((b) => b.shopDomain),
      buckets.map((b) => b.deliveries),
      topics.map((t) => t.shopDomain),
      topics.map((t) => t.topic),
      topics.map((t) => t.lastAtMs),
    ],
  };
}

export async function purgeActivity(query: Query, beforeMs: number): Promise<number> {
  const res = await query("cartbridge_purge_activity", SQL.purge, [
    Math.floor(beforeMs / BUCKET_MS) * BUCKET_MS,
  ]);
  return res.rowCount ?? 0;
}

export function createPostgresActivity(
  query: Query,
  toDeadLetter: (row: Row) => DeadLetter,
): ActivityQueries {
  const rows = async (name: string, text: string, values: unknown[]): Promise<Row[]> =>
    (await query(`cartbridge_console_${name}`, text, values)).rows;
  const filterParams = (f: DeadLetterFilter): [string | null, string | null] => [
    f.shopDomain ?? null,
    f.reason ?? null,
  ];
  return {
    async shops(nowMs) {
      const hourFrom = Math.floor((nowMs - 3_600_000) / BUCKET_MS) * BUCKET_MS;
      const dayFrom = Math.floor((nowMs - 86_400_000) / BUCKET_MS) * BUCKET_MS;
      const [topics, buckets, pending, dead] = await Promise.all([
        rows("topics", SQL.topics, []),
        rows("buckets", SQL.buckets, [hourFrom, dayFrom]),
        rows("pending", SQL.pending, []),
        rows("dead", SQL.dead, []),
      ]);
      return assembleShops(topics, buckets, pending, dead);
    },
    async findDeadLetters(page) {
      const [shop, reason] = filterParams(page);
      const found = page.newestFirst
        ? await rows("page_desc", SQL.pageDesc, [
            shop,
            reason,
            page.beforeId ?? Number.MAX_SAFE_INTEGER,
            page.limit,
          ])
        : await rows("page_asc", SQL.pageAsc, [shop, reason, page.afterId ?? 0, page.limit]);
      return found.map(toDeadLetter);
    },
    async countDeadLetters(filter) {
      return Number((await rows("count", SQL.count, filterParams(filter)))[0]?.["n"] ?? 0);
    },
    async deadLetterIds(filter) {
      return (await rows("ids", SQL.ids, filterParams(filter))).map((r) => Number(r["id"]));
    },
    async deadLetterReasons() {
      return reasonCounts(await rows("reasons", SQL.reasons, []));
    },
    async findCarts(keyOrToken) {
      const found = keyOrToken.includes(":")
        ? await rows("cart_by_key", SQL.cartByKey, [keyOrToken])
        : await rows("cart_by_token", SQL.cartByToken, [keyOrToken]);
      return found.map(toCartRecord);
    },
  };
}
