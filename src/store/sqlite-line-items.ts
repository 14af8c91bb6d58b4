/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { compareStamps, type CartEvent } from "../sync/cart-event.ts";
import type { LineDraft } from "../sync/line-items.ts";
import type { ClaimedLineSet, KnownLineItem, LineItemStore } from "./line-items.ts";
import { stampOf } from "./rows.ts";
import type { SqliteDeadLetters } from "./sqlite-dead-letters.ts";
import type { SqliteTransaction } from "./sqlite-transaction.ts";

/**
 * SQLite side of the line item store (see line-items.ts): the `cart_line_sets` and `line_items` tables of
 * migration 2. `ingestLineSet` runs inside the ingest transaction; the rest run in their own.
 */
export const SQLITE_LINE_ITEMS_MIGRATION = `
CREATE TABLE cart_line_sets (
  cart_key        TEXT PRIMARY KEY,
  shop            TEXT NOT NULL,
  lines           TEXT NOT NULL,
  stamp_time      INTEGER NOT NULL,
  stamp_rank      INTEGER NOT NULL,
  stamp_webhook   TEXT NOT NULL,
  version         INTEGER NOT NULL,
  synced_version  INTEGER NOT NULL DEFAULT 0,
  pending_since   INTEGER,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  lease_owner     TEXT,
  lease_until     INTEGER,
  last_error      TEXT
);
CREATE INDEX cart_line_sets_pending ON cart_line_sets (pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX cart_line_sets_shop ON cart_line_sets (shop);
CREATE TABLE line_items (
  line_key           TEXT PRIMARY KEY,
  cart_key           TEXT NOT NULL,
  shop               TEXT NOT NULL,
  hubspot_id         TEXT NOT NULL,
  associated_cart_id TEXT
);
CREATE INDEX line_items_cart ON line_items (cart_key);
CREATE INDEX line_items_shop ON line_items (shop);
`;

type Row = Record<string, unknown>;

export interface SqliteLineItems extends LineItemStore {
  /** Inside the ingest transaction: keeps the event's line set when it is the newest. */
  ingestLineSet(event: CartEvent, nowMs: number): void;
  /** Inside a transaction: the line set is sent again (a replayed dead letter). */
  markLineSetPending(cartKey: string, nowMs: number): void;
  /** Inside a transaction: erases a shop's line sets and known line items; returns rows removed. */
  redactShop(shop: string): number;
}

export function createSqliteLineItems(
  db: DatabaseSync,
  transaction: SqliteTransaction,
  deadLetters: SqliteDeadLetters,
): SqliteLineItems {
  const q = prepareLineItemStatements(db);
  return {
    ...lineSetWrites(q),
    ...lineSetClaims(q, transaction),
    ...lineSetAnswers(q, transaction, deadLetters),
  };
}

type Statements = ReturnType<typeof prepareLineItemStatements>;

function prepareLineItemStatements(db: DatabaseSync) {
  const sql = (text: string): StatementSync => db.prepare(text);
  return {
    getSet: sql("SELECT lines, stamp_time, stamp_rank, stamp_webhook FROM cart_line_sets WHERE cart_key = ?"),
    insertSet: sql(`INSERT INTO cart_line_sets (cart_key, shop, lines, stamp_time, stamp_rank, stamp_webhook,
        version, pending_since) VALUES (?, ?, ?, ?, ?, ?, 1, ?)`),
    replaceSet:
      sql(`UPDATE cart_line_sets SET lines = ?1, stamp_time = ?2, stamp_rank = ?3, stamp_webhook = ?4,
        version = version + ?5, pending_since = CASE WHEN ?5 = 1 THEN coalesce(pending_since, ?6) ELSE pending_since END
        WHERE cart_key = ?7`),
    due: sql(`SELECT s.cart_key, s.shop, s.lines, s.version, s.attempts, c.hubspot_id
        FROM cart_line_sets s JOIN carts c ON c.key = s.cart_key
        WHERE s.pending_since IS NOT NULL AND c.hubspot_id IS NOT NULL AND s.next_attempt_at <= ?1
          AND (s.lease_until IS NULL OR s.lease_until < ?1)
        ORDER BY s.pending_since LIMIT ?2`),
    lease: sql("UPDATE cart_line_sets SET lease_owner = ?, lease_until = ? WHERE cart_key = ?"),
    known: sql("SELECT line_key, hubspot_id, associated_cart_id FROM line_items WHERE cart_key = ?"),
    learn: sql(`INSERT INTO line_items (line_key, cart_key, shop, hubspot_id, associated_cart_id)
        VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (line_key) DO UPDATE SET hubspot_id = ?4,
        associated_cart_id = CASE WHEN line_items.hubspot_id = ?4 THEN coalesce(?5, line_items.associated_cart_id)
          ELSE ?5 END`),
    forget: sql("DELETE FROM line_items WHERE line_key = ?"),
    sent: sql(`UPDATE cart_line_sets SET synced_version = max(synced_version, ?1),
        pending_since = CASE WHEN version <= ?1 THEN NULL ELSE pending_since END,
        attempts = 0, next_attempt_at = 0, last_error = NULL, lease_owner = NULL, lease_until = NULL
        WHERE cart_key = ?2 AND lease_owner = ?3`),
    failed: sql(`UPDATE cart_line_sets SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
        lease_owner = NULL, lease_until = NULL WHERE cart_key = ? AND lease_owner = ?`),
    release: sql(`UPDATE cart_line_sets SET lease_owner = NULL, lease_until = NULL
        WHERE cart_key = ? AND lease_owner = ?`),
    pending: sql(`UPDATE cart_line_sets SET version = version + 1, pending_since = coalesce(pending_since, ?),
        attempts = 0, next_attempt_at = 0 WHERE cart_key = ?`),
    redactSets: sql("DELETE FROM cart_line_sets WHERE shop = ?"),
    redactItems: sql("DELETE FROM line_items WHERE shop = ?"),
  };
}

/** What other transactions write: ingest's line sets, a replay's pending mark, a shop's erasure. */
function lineSetWrites(
  q: Statements,
): Pick<SqliteLineItems, "ingestLineSet" | "markLineSetPending" | "redactShop"> {
  return {
    ingestLineSet(event, nowMs) {
      if (event.lines === undefined) return;
      const row = q.getSet.get(event.key) as Row | undefined;
      const lines = JSON.stringify(event.lines);
      const s = event.stamp;
      if (row === undefined) {
        q.insertSet.run(event.key, event.shopDomain, lines, s.timeMs, s.topicRank, s.webhookId, nowMs);
        return;
      }
      if (compareStamps(s, stampOf(row)) <= 0) return;
      const changed = row["lines"] !== lines ? 1 : 0;
      q.replaceSet.run(lines, s.timeMs, s.topicRank, s.webhookId, changed, nowMs, event.key);
    },

    markLineSetPending(cartKey, nowMs) {
      q.pending.run(nowMs, cartKey);
    },

    redactShop(shop) {
      return Number(q.redactSets.run(shop).changes) + Number(q.redactItems.run(shop).changes);
    },
  };
}

/** The line item lane's reads: claims on due line sets, and a cart's line set with what HubSpot holds. */
function lineSetClaims(
  q: Statements,
  transaction: SqliteTransaction,
): Pick<SqliteLineItems, "claimLineSetsDue" | "lineSetOf"> {
  const known = (cartKey: string): KnownLineItem[] =>
    (q.known.all(cartKey) as Row[]).map((r) => ({
      lineKey: String(r["line_key"]),
      hubspotId: String(r["hubspot_id"]),
      associatedCartId: typeof r["associated_cart_id"] === "string" ? r["associated_cart_id"] : undefined,
    }));
  return {
    async claimLineSetsDue({ limit, nowMs, leaseMs, owner }) {
      // Most polls find nothing: a read first, so an idle lane never takes the write lock.
      if ((q.due.all(nowMs, 1) as Row[]).length === 0) return [];
      return transaction(
        "claim line sets",
        () =>
          (q.due.all(nowMs, limit) as Row[]).map((row): ClaimedLineSet => {
            const cartKey = String(row["cart_key"]);
            q.lease.run(owner, nowMs + leaseMs, cartKey);
            return {
              cartKey,
              shopDomain: String(row["shop"]),
              cartId: String(row["hubspot_id"]),
              version: Number(row["version"]),
              attempts: Number(row["attempts"]),
              lines: JSON.parse(String(row["lines"])) as LineDraft[],
              known: known(cartKey),
            };
          }),
        "relaxed",
      );
    },

    async lineSetOf(cartKey) {
      const row = q.getSet.get(cartKey) as Row | undefined;
      if (row === undefined) return undefined;
      return { lines: JSON.parse(String(row["lines"])) as LineDraft[], known: known(cartKey) };
    },
  };
}

/** What the line item lane writes back after HubSpot answered (fenced by the claim's owner). */
function lineSetAnswers(
  q: Statements,
  transaction: SqliteTransaction,
  deadLetters: SqliteDeadLetters,
): Pick<
  SqliteLineItems,
  "recordLineItems" | "markLineSetsSent" | "markLineSetsFailed" | "releaseLineSets" | "deadLetterLines"
> {
  return {
    async recordLineItems(items) {
      transaction(
        "record line items",
        () => {
          for (const i of items)
            q.learn.run(
              i.lineKey,
              i.cartKey,
              i.cartKey.split(":")[0] ?? "",
              i.hubspotId,
              i.associatedCartId ?? null,
            );
        },
        "relaxed",
      );
    },

    async markLineSetsSent(sets, owner) {
      transaction(
        "mark line sets sent",
        () => {
          for (const s of sets) {
            for (const key of s.archivedLineKeys) q.forget.run(key);
            q.sent.run(s.version, s.cartKey, owner);
          }
        },
        "relaxed",
      );
    },

    async markLineSetsFailed(cartKeys, owner, { nextAttemptAtMs, error }) {
      transaction(
        "mark line sets failed",
        () => {
          for (const key of cartKeys) q.failed.run(nextAttemptAtMs, error, key, owner);
        },
        "relaxed",
      );
    },

    async releaseLineSets(cartKeys, owner) {
      transaction(
        "release line sets",
        () => {
          for (const key of cartKeys) q.release.run(key, owner);
        },
        "relaxed",
      );
    },

    async deadLetterLines(lines, nowMs) {
      transaction("dead-letter lines", () => {
        for (const l of lines) {
          const kept = deadLetters.keptDeliveryOf(l.cartKey);
          const reason = `line item ${l.lineKey}: ${l.reason}`;
          deadLetters.insertRejected(l.cartKey, kept, { reason, category: l.category }, nowMs);
        }
      });
    },
  };
}

/** At server start-up (SQLite serves one process): claims left by a dead process are released. */
export function releaseSqliteLineClaims(db: DatabaseSync): void {
  db.exec("UPDATE cart_line_sets SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL");
}
