import type pg from "pg";
import { compareStamps, type EventStamp } from "../sync/cart-event.ts";
import type { LineDraft } from "../sync/line-items.ts";
import type { ClaimedLineSet, KnownLineItem, LineItemStore } from "./line-items.ts";
import type { PostgresConnection, Row } from "./postgres-connection.ts";
import { DB_NOW_MS, held } from "./postgres-sql.ts";
import type { IngestItem, IngestOutcome } from "./store.ts";

/**
 * PostgreSQL side of the line item store (see line-items.ts), as sqlite-line-items.ts: the tables of
 * migration 4. The line set is written inside the ingest transaction, after the carts it belongs to are
 * locked (so one cart's sets are merged under its row lock); claims skip rows other replicas hold.
 */
export const POSTGRES_LINE_ITEMS_MIGRATION = `
CREATE TABLE IF NOT EXISTS cart_line_sets (
  cart_key        TEXT PRIMARY KEY,
  shop            TEXT NOT NULL,
  lines           TEXT NOT NULL,
  stamp_time      BIGINT NOT NULL,
  stamp_rank      INTEGER NOT NULL,
  stamp_webhook   TEXT NOT NULL,
  version         BIGINT NOT NULL,
  synced_version  BIGINT NOT NULL DEFAULT 0,
  pending_since   BIGINT,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  lease_owner     TEXT,
  lease_until     BIGINT,
  last_error      TEXT
);
CREATE INDEX IF NOT EXISTS cart_line_sets_pending ON cart_line_sets (pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS cart_line_sets_shop ON cart_line_sets (shop);
CREATE TABLE IF NOT EXISTS line_items (
  line_key           TEXT PRIMARY KEY,
  cart_key           TEXT NOT NULL,
  shop               TEXT NOT NULL,
  hubspot_id         TEXT NOT NULL,
  associated_cart_id TEXT
);
CREATE INDEX IF NOT EXISTS line_items_cart ON line_items (cart_key);
CREATE INDEX IF NOT EXISTS line_items_shop ON line_items (shop);
`;

/** Newer stamps replace the set; the version moves only when the lines HubSpot would see change. */
const INGEST_LINE_SETS = `
INSERT INTO cart_line_sets AS s (cart_key, shop, lines, stamp_time, stamp_rank, stamp_webhook, version, pending_since)
SELECT k, sh, l, t, r, w, 1, $7::bigint
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::integer[], $6::text[]) AS x(k, sh, l, t, r, w)
ORDER BY k
ON CONFLICT (cart_key) DO UPDATE SET lines = EXCLUDED.lines, stamp_time = EXCLUDED.stamp_time,
  stamp_rank = EXCLUDED.stamp_rank, stamp_webhook = EXCLUDED.stamp_webhook,
  version = s.version + CASE WHEN s.lines = EXCLUDED.lines THEN 0 ELSE 1 END,
  pending_since = CASE WHEN s.lines = EXCLUDED.lines THEN s.pending_since
    ELSE coalesce(s.pending_since, EXCLUDED.pending_since) END
WHERE (EXCLUDED.stamp_time, EXCLUDED.stamp_rank, EXCLUDED.stamp_webhook COLLATE "C")
    > (s.stamp_time, s.stamp_rank, s.stamp_webhook COLLATE "C")`;

// Leases run on the database's clock (as carts' and contacts' do): $4 - $1 is the lease's length, and every
// write-back below counts only while the lease is still held, so a replica whose lease lapsed settles nothing.
const CLAIM = `
UPDATE cart_line_sets AS s SET lease_owner = $3, lease_until = ${DB_NOW_MS} + ($4::bigint - $1::bigint)
FROM (
  SELECT d.cart_key, c.hubspot_id FROM cart_line_sets AS d JOIN carts AS c ON c.key = d.cart_key
  WHERE d.pending_since IS NOT NULL AND c.hubspot_id IS NOT NULL AND d.next_attempt_at <= $1
    AND (d.lease_until IS NULL OR d.lease_until < ${DB_NOW_MS})
  ORDER BY d.pending_since, d.cart_key
  LIMIT $2
  FOR UPDATE OF d SKIP LOCKED
) AS due
WHERE s.cart_key = due.cart_key
RETURNING s.cart_key, s.shop, due.hubspot_id, s.version, s.attempts, s.lines, s.pending_since`;

const KNOWN = `SELECT line_key, cart_key, hubspot_id, associated_cart_id FROM line_items
WHERE cart_key = ANY($1::text[]) ORDER BY line_key`;

const LEARN = `
INSERT INTO line_items AS i (line_key, cart_key, shop, hubspot_id, associated_cart_id)
SELECT k, c, split_part(c, ':', 1), h, a FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(k, c, h, a)
ORDER BY k
ON CONFLICT (line_key) DO UPDATE SET hubspot_id = EXCLUDED.hubspot_id,
  associated_cart_id = CASE WHEN i.hubspot_id = EXCLUDED.hubspot_id
    THEN coalesce(EXCLUDED.associated_cart_id, i.associated_cart_id) ELSE EXCLUDED.associated_cart_id END`;

const FORGET = "DELETE FROM line_items WHERE line_key = ANY($1::text[])";

const SENT = `
UPDATE cart_line_sets AS s SET synced_version = greatest(s.synced_version, x.v),
  pending_since = CASE WHEN s.version <= x.v THEN NULL ELSE s.pending_since END,
  attempts = 0, next_attempt_at = 0, last_error = NULL, lease_owner = NULL, lease_until = NULL
FROM unnest($1::text[], $2::bigint[]) AS x(k, v)
WHERE s.cart_key = x.k AND ${held("s", "$3")}`;

const FAILED = `
UPDATE cart_line_sets AS s SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4,
  lease_owner = NULL, lease_until = NULL
WHERE cart_key = ANY($1::text[]) AND ${held("s", "$2")}`;

const RELEASE = `UPDATE cart_line_sets SET lease_owner = NULL, lease_until = NULL
WHERE cart_key = ANY($1::text[]) AND lease_owner = $2`;

const DEAD_LETTER = `
INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
SELECT $5::bigint, 'hubspot', coalesce(c.last_topic, 'unknown'), coalesce(c.shop, split_part(r.key, ':', 1)),
  c.last_webhook_id, r.key, 'line item ' || r.line || ': ' || r.reason, r.category,
  coalesce(c.last_headers, '{}'), c.last_body
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS r(key, line, reason, category, ord)
LEFT JOIN carts AS c ON c.key = r.key
ORDER BY r.ord`;

const GET_SET = "SELECT lines FROM cart_line_sets WHERE cart_key = $1";

/** Replaying a dead letter: the line set is sent again. */
export const MARK_LINE_SET_PENDING = `
UPDATE cart_line_sets SET version = version + 1, pending_since = coalesce(pending_since, $2), attempts = 0,
  next_attempt_at = 0
WHERE cart_key = $1`;

/** shop/redact ($1 the shop; $2/$3 an e-mail/phone: then nothing, line items hold no personal data). */
export const REDACT_LINE_SETS = `
WITH sets AS (DELETE FROM cart_line_sets WHERE shop = $1 AND $2::text IS NULL AND $3::text IS NULL RETURNING 1)
DELETE FROM line_items WHERE shop = $1 AND $2::text IS NULL AND $3::text IS NULL`;

export type PostgresLineItemDeps = Pick<PostgresConnection, "run" | "query" | "transaction">;

/**
 * The statement that writes the line sets of an ingest group (run after the group's carts are locked), or
 * undefined when no item carries one. Duplicates are left out; of several events for one cart the newest
 * is kept (the statement cannot touch a row twice).
 */
export function ingestLineSetsStatement(
  items: readonly IngestItem[],
  outcomes: readonly IngestOutcome[],
  nowMs: number,
): pg.QueryConfig | undefined {
  const newest = new Map<string, { shop: string; lines: string; stamp: EventStamp }>();
  items.forEach((item, i) => {
    const outcome = outcomes[i];
    if (item.mapped.kind !== "event" || (outcome !== "applied" && outcome !== "unchanged")) return;
    const event = item.mapped.event;
    if (event.lines === undefined) return;
    const seen = newest.get(event.key);
    if (seen !== undefined && compareStamps(event.stamp, seen.stamp) <= 0) return;
    newest.set(event.key, { shop: event.shopDomain, lines: JSON.stringify(event.lines), stamp: event.stamp });
  });
  if (newest.size === 0) return undefined;
  const rows = [...newest];
  return {
    name: "cartbridge_ingest_line_sets",
    text: INGEST_LINE_SETS,
    values: [
      rows.map(([k]) => k),
      rows.map(([, r]) => r.shop),
      rows.map(([, r]) => r.lines),
      rows.map(([, r]) => r.stamp.timeMs),
      rows.map(([, r]) => r.stamp.topicRank),
      rows.map(([, r]) => r.stamp.webhookId),
      nowMs,
    ],
  };
}

export function createPostgresLineItems(deps: PostgresLineItemDeps): LineItemStore {
  return { ...lineSetReads(deps), ...lineItemWriteBacks(deps) };
}

type LineSetReads = Pick<LineItemStore, "claimLineSetsDue" | "lineSetOf">;
type LineItemWriteBacks = Omit<LineItemStore, keyof LineSetReads>;

/** Claiming due line sets and reading one, each with the line items HubSpot already has for its cart. */
function lineSetReads({ run, query }: PostgresLineItemDeps): LineSetReads {
  return {
    claimLineSetsDue({ limit, nowMs, leaseMs, owner }) {
      if (limit <= 0) return Promise.resolve([]);
      return run("claim line sets", async () => {
        const { rows } = await query("cartbridge_claim_line_sets", CLAIM, [
          nowMs,
          limit,
          owner,
          nowMs + leaseMs,
        ]);
        if (rows.length === 0) return [];
        rows.sort((a, b) => Number(a["pending_since"]) - Number(b["pending_since"]));
        const keys = rows.map((r) => String(r["cart_key"]));
        const known = knownOf((await query("cartbridge_known_line_items", KNOWN, [keys])).rows);
        return rows.map((row): ClaimedLineSet => ({
          cartKey: String(row["cart_key"]),
          shopDomain: String(row["shop"]),
          cartId: String(row["hubspot_id"]),
          version: Number(row["version"]),
          attempts: Number(row["attempts"]),
          lines: JSON.parse(String(row["lines"])) as LineDraft[],
          known: known.get(String(row["cart_key"])) ?? [],
        }));
      });
    },

    lineSetOf(cartKey) {
      return run("read line set", async () => {
        const set = (await query("cartbridge_get_line_set", GET_SET, [cartKey])).rows[0];
        if (set === undefined) return undefined;
        const known = knownOf((await query("cartbridge_known_line_items", KNOWN, [[cartKey]])).rows);
        return { lines: JSON.parse(String(set["lines"])) as LineDraft[], known: known.get(cartKey) ?? [] };
      });
    },
  };
}

/** What the sender learnt and settled: HubSpot ids, sent, failed, released and dead-lettered sets. */
function lineItemWriteBacks({ run, query, transaction }: PostgresLineItemDeps): LineItemWriteBacks {
  return {
    async recordLineItems(items) {
      if (items.length === 0) return;
      await run("record line items", () =>
        query("cartbridge_learn_line_items", LEARN, [
          items.map((i) => i.lineKey),
          items.map((i) => i.cartKey),
          items.map((i) => i.hubspotId),
          items.map((i) => i.associatedCartId ?? null),
        ]),
      );
    },

    async markLineSetsSent(sets, owner) {
      if (sets.length === 0) return;
      await run("mark line sets sent", () =>
        transaction([
          {
            name: "cartbridge_forget_line_items",
            text: FORGET,
            values: [sets.flatMap((s) => s.archivedLineKeys)],
          },
          {
            name: "cartbridge_line_sets_sent",
            text: SENT,
            values: [sets.map((s) => s.cartKey), sets.map((s) => s.version), owner],
          },
        ]),
      );
    },

    async markLineSetsFailed(cartKeys, owner, { nextAttemptAtMs, error }) {
      if (cartKeys.length === 0) return;
      await run("mark line sets failed", () =>
        query("cartbridge_line_sets_failed", FAILED, [[...cartKeys], owner, nextAttemptAtMs, error]),
      );
    },

    async releaseLineSets(cartKeys, owner) {
      if (cartKeys.length === 0) return;
      await run("release line sets", () =>
        query("cartbridge_release_line_sets", RELEASE, [[...cartKeys], owner]),
      );
    },

    async deadLetterLines(lines, nowMs) {
      if (lines.length === 0) return;
      await run("dead-letter lines", () =>
        query("cartbridge_dead_letter_lines", DEAD_LETTER, [
          lines.map((l) => l.cartKey),
          lines.map((l) => l.lineKey),
          lines.map((l) => l.reason),
          lines.map((l) => l.category ?? null),
          nowMs,
        ]),
      );
    },
  };
}

/** The known line items of `rows` (KNOWN's), by cart. */
function knownOf(rows: readonly Row[]): Map<string, KnownLineItem[]> {
  const byCart = new Map<string, KnownLineItem[]>();
  for (const r of rows) {
    const list = byCart.get(String(r["cart_key"])) ?? [];
    list.push({
      lineKey: String(r["line_key"]),
      hubspotId: String(r["hubspot_id"]),
      associatedCartId: optionalText(r["associated_cart_id"]),
    });
    byCart.set(String(r["cart_key"]), list);
  }
  return byCart;
}

function optionalText(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}
