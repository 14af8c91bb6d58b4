/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import type { DatabaseSync } from "node:sqlite";
import { toClaimedContact } from "./rows.ts";
import type { SqliteDeadLetters } from "./sqlite-dead-letters.ts";
import { CLEAR_SENT_DELIVERY } from "./sqlite-ledger.ts";
import type { SqliteTransaction } from "./sqlite-transaction.ts";
import type { Store } from "./store.ts";

/** The contact lane's part of the port: claims on contact links and HubSpot's answers. */
export type SqliteContacts = Pick<
  Store,
  "claimContactsDue" | "markContactsSent" | "markContactsFailed" | "releaseContacts" | "markContactsRejected"
>;

type Row = Record<string, unknown>;

/**
 * The contact lane on SQLite: claims are leases in the `contact_links` rows (owner and until), and every
 * write-back is fenced by the owner. Ingest writes the links themselves (sqlite-ingest.ts).
 */
export function createSqliteContacts(
  db: DatabaseSync,
  transaction: SqliteTransaction,
  deadLetters: SqliteDeadLetters,
): SqliteContacts {
  const q = prepareContactStatements(db);

  return {
    async claimContactsDue({ limit, nowMs, leaseMs, owner }) {
      return transaction(
        "claim contacts",
        () => {
          const rows = q.contactsDue.all(nowMs, limit) as Row[];
          return rows.map((row) => {
            q.leaseContact.run(owner, nowMs + leaseMs, row["cart_key"] as string);
            return toClaimedContact(row);
          });
        },
        "relaxed",
      );
    },

    async markContactsSent(contacts, owner) {
      transaction(
        "mark contacts sent",
        () => {
          for (const c of contacts) {
            q.contactSent.run(c.version, owner, c.cartKey);
            q.clearSentDelivery.run(c.cartKey);
          }
        },
        "relaxed",
      );
      return;
    },

    async markContactsFailed(keys, owner, { nextAttemptAtMs, error }) {
      transaction(
        "mark contacts failed",
        () => {
          for (const key of keys) q.contactFailed.run(nextAttemptAtMs, error, key, owner);
        },
        "relaxed",
      );
      return;
    },

    async releaseContacts(keys, owner) {
      transaction(
        "release contacts",
        () => {
          for (const key of keys) q.contactRelease.run(key, owner);
        },
        "relaxed",
      );
      return;
    },

    async markContactsRejected(contacts, owner, nowMs) {
      transaction("mark contacts rejected", () => {
        for (const c of contacts) {
          if (q.contactHeld.get(c.cartKey, owner) === undefined) continue;
          const kept = deadLetters.keptDeliveryOf(c.cartKey);
          deadLetters.insertRejected(
            c.cartKey,
            kept,
            { reason: `contact: ${c.reason}`, category: c.category },
            nowMs,
          );
          // Forget the buyer entirely, so a replay of the dead letter links it again.
          q.deleteContact.run(c.cartKey);
          q.clearSentDelivery.run(c.cartKey);
        }
      });
      return;
    },
  };
}

/** At server start-up (SQLite serves one process): contact claims left by a dead process are released. */
export function releaseSqliteContactClaims(db: DatabaseSync): void {
  db.exec("UPDATE contact_links SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL");
}

function prepareContactStatements(db: DatabaseSync) {
  const sql = (text: string) => db.prepare(text);
  return {
    contactsDue: sql(`SELECT l.cart_key, l.version, l.attempts, l.email, l.firstname, l.lastname, l.phone,
        c.hubspot_id FROM contact_links l JOIN carts c ON c.key = l.cart_key
        WHERE l.version > l.synced_version AND l.email IS NOT NULL AND c.hubspot_id IS NOT NULL
          AND l.next_attempt_at <= ?1 AND (l.lease_until IS NULL OR l.lease_until < ?1)
        ORDER BY l.updated_at LIMIT ?2`),
    leaseContact: sql("UPDATE contact_links SET lease_owner = ?, lease_until = ? WHERE cart_key = ?"),
    contactSent: sql(`UPDATE contact_links SET synced_version = max(synced_version, ?1),
        email = CASE WHEN version <= ?1 THEN NULL ELSE email END,
        firstname = CASE WHEN version <= ?1 THEN NULL ELSE firstname END,
        lastname = CASE WHEN version <= ?1 THEN NULL ELSE lastname END,
        phone = CASE WHEN version <= ?1 THEN NULL ELSE phone END,
        attempts = 0, next_attempt_at = 0, last_error = NULL,
        lease_owner = NULL, lease_until = NULL
        WHERE cart_key = ?3 AND lease_owner = ?2`),
    contactHeld: sql("SELECT 1 FROM contact_links WHERE cart_key = ? AND lease_owner = ?"),
    contactFailed: sql(`UPDATE contact_links SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
        lease_owner = NULL, lease_until = NULL WHERE cart_key = ? AND lease_owner = ?`),
    contactRelease: sql(
      "UPDATE contact_links SET lease_owner = NULL, lease_until = NULL WHERE cart_key = ? AND lease_owner = ?",
    ),
    deleteContact: sql("DELETE FROM contact_links WHERE cart_key = ?"),
    clearSentDelivery: sql(CLEAR_SENT_DELIVERY),
  };
}
