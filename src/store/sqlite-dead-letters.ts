/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import type { DatabaseSync } from "node:sqlite";
import { toDeadLetter } from "./rows.ts";
import type { SqliteTransaction } from "./sqlite-transaction.ts";
import type { DeadLetter, IngestItem, Store } from "./store.ts";

type Row = Record<string, unknown>;

/** A cart's shop and its kept (newest) delivery, as a dead letter of what HubSpot rejected takes them. */
export interface KeptDelivery {
  readonly shop: string;
  readonly topic: string | null;
  readonly webhookId: string | null;
  readonly headers: string | null;
  readonly body: Uint8Array | null;
}

export interface SqliteDeadLetters {
  /** The port's dead-letter methods (list, read, delete). */
  readonly port: Pick<Store, "listDeadLetters" | "getDeadLetters" | "deleteDeadLetters">;
  /** Inside the ingest transaction: keeps a delivery the mapping could not read (source "mapping"). */
  insertUnmappable(item: IngestItem, reason: string): void;
  /** A cart's shop and kept delivery (its fields NULL when none is kept); undefined when the cart is gone. */
  keptDeliveryOf(cartKey: string): KeptDelivery | undefined;
  /**
   * Inside a transaction: keeps what HubSpot rejected for a cart (source "hubspot") with the cart's kept
   * delivery — topic "unknown", no body, and the shop read from the key when none is kept or the cart is gone.
   */
  insertRejected(
    cartKey: string,
    kept: KeptDelivery | undefined,
    failure: { readonly reason: string; readonly category?: string | undefined },
    nowMs: number,
  ): void;
}

/** The `dead_letters` table: what the mapping or HubSpot refused, kept for operators to replay or delete. */
export function createSqliteDeadLetters(db: DatabaseSync, transaction: SqliteTransaction): SqliteDeadLetters {
  const q = prepareDeadLetterStatements(db);

  return {
    insertUnmappable(item, reason) {
      q.insert.run(
        item.receivedAtMs,
        "mapping",
        item.topic,
        item.shopDomain,
        item.webhookId ?? null,
        null,
        reason,
        "UNMAPPABLE",
        JSON.stringify(item.headers),
        item.body,
      );
    },

    keptDeliveryOf(cartKey) {
      const row = q.cartForDeadLetter.get(cartKey) as Row | undefined;
      if (row === undefined) return undefined;
      return {
        shop: String(row["shop"]),
        topic: (row["last_topic"] as string | null) ?? null,
        webhookId: (row["last_webhook_id"] as string | null) ?? null,
        headers: (row["last_headers"] as string | null) ?? null,
        body: (row["last_body"] as Uint8Array | null) ?? null,
      };
    },

    insertRejected(cartKey, kept, failure, nowMs) {
      q.insert.run(
        nowMs,
        "hubspot",
        kept?.topic ?? "unknown",
        kept?.shop ?? cartKey.split(":")[0] ?? "",
        kept?.webhookId ?? null,
        cartKey,
        failure.reason,
        failure.category ?? null,
        kept?.headers ?? "{}",
        kept?.body ?? null,
      );
    },

    port: {
      async listDeadLetters({ limit, afterId }) {
        return (q.list.all(afterId ?? 0, limit) as Row[]).map(toDeadLetter);
      },

      async getDeadLetters(ids) {
        const found: DeadLetter[] = [];
        for (const id of ids) {
          const row = q.get.get(id) as Row | undefined;
          if (row !== undefined) found.push(toDeadLetter(row));
        }
        return found;
      },

      async deleteDeadLetters(ids) {
        transaction(
          "delete dead letters",
          () => {
            for (const id of ids) q.delete.run(id);
          },
          "relaxed",
        );
        return;
      },
    },
  };
}

function prepareDeadLetterStatements(db: DatabaseSync) {
  const sql = (text: string) => db.prepare(text);
  return {
    insert: sql(`INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason,
        category, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    cartForDeadLetter: sql(`SELECT c.shop, d.topic AS last_topic, d.webhook_id AS last_webhook_id,
        d.headers AS last_headers, d.body AS last_body FROM carts c LEFT JOIN cart_deliveries d ON d.cart_key = c.key
        WHERE c.key = ?`),
    list: sql("SELECT * FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?"),
    get: sql("SELECT * FROM dead_letters WHERE id = ?"),
    delete: sql("DELETE FROM dead_letters WHERE id = ?"),
  };
}
