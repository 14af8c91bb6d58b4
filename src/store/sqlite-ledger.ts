/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import type { DatabaseSync } from "node:sqlite";
import type { CartState } from "../sync/merge.ts";
import { optionalNumber } from "./rows.ts";
import type { SqliteDeadLetters } from "./sqlite-dead-letters.ts";
import type { SqliteLineItems } from "./sqlite-line-items.ts";
import type { SqliteTransaction } from "./sqlite-transaction.ts";
import {
  rejectionNote,
  type ClaimedCart,
  type PendingSummary,
  type RejectedCart,
  type SentCart,
  type Store,
} from "./store.ts";

/** The cart send ledger's part of the port: what is due, claims, and what HubSpot answered. */
export type SqliteLedger = Pick<
  Store,
  | "pendingSummary"
  | "claimDue"
  | "markSent"
  | "markFailed"
  | "renewClaims"
  | "release"
  | "markRejected"
  | "markPending"
>;

/** Clears a cart's kept delivery once neither the cart nor its buyer waits to be sent. */
export const CLEAR_SENT_DELIVERY = `DELETE FROM cart_deliveries WHERE cart_key = ?1
    AND EXISTS (SELECT 1 FROM carts WHERE key = ?1 AND version <= synced_version)
    AND NOT EXISTS (SELECT 1 FROM contact_links WHERE cart_key = ?1 AND version > synced_version)`;

type Row = Record<string, unknown>;

/**
 * The send ledger on SQLite: the sending columns of `carts` (synced_version, pending_since, attempts,
 * next_attempt_at, last_error, hubspot_id, last_sent_at) and the claims on carts, which live in memory.
 */
export function createSqliteLedger(
  db: DatabaseSync,
  transaction: SqliteTransaction,
  deadLetters: SqliteDeadLetters,
  lineItems: SqliteLineItems,
): SqliteLedger {
  const q = prepareLedgerStatements(db);
  const leases = createCartLeases();
  return {
    ...ledgerClaims(q, leases),
    ...ledgerAnswers(q, leases, transaction, { deadLetters, lineItems }),
  };
}

type Statements = ReturnType<typeof prepareLedgerStatements>;
type CartLeases = ReturnType<typeof createCartLeases>;

function prepareLedgerStatements(db: DatabaseSync) {
  const sql = (text: string) => db.prepare(text);
  return {
    dueCandidates: sql(`SELECT key, pending_since FROM carts
        WHERE pending_since IS NOT NULL AND next_attempt_at <= ?1 ORDER BY pending_since LIMIT ?2`),
    nextRetry: sql(`SELECT min(next_attempt_at) AS t FROM carts
        WHERE pending_since IS NOT NULL AND next_attempt_at > ?`),
    claimRows: sql(`SELECT key, version, attempts, state, hubspot_id FROM carts
        WHERE key IN (SELECT value FROM json_each(?1))`),
    markSent: sql(`UPDATE carts SET
        synced_version = max(synced_version, ?1),
        pending_since = CASE WHEN version <= ?1 THEN NULL ELSE pending_since END,
        attempts = 0, next_attempt_at = 0, last_error = ?5,
        hubspot_id = coalesce(?2, hubspot_id), last_sent_at = coalesce(?4, last_sent_at)
        WHERE key = ?3`),
    markFailed: sql(`UPDATE carts SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
        WHERE key = ?`),
    markPending: sql(`UPDATE carts SET pending_since = coalesce(pending_since, ?), version = version + 1,
        attempts = 0, next_attempt_at = 0 WHERE key = ?`),
    repend: sql(
      "UPDATE carts SET pending_since = coalesce(pending_since, ?), version = version + 1 WHERE key = ?",
    ),
    clearSentDelivery: sql(CLEAR_SENT_DELIVERY),
  };
}

/** What is due, and claims on it (in memory, see createCartLeases). */
function ledgerClaims(
  q: Statements,
  leases: CartLeases,
): Pick<SqliteLedger, "pendingSummary" | "claimDue" | "renewClaims" | "release"> {
  return {
    async pendingSummary(nowMs, cap): Promise<PendingSummary> {
      const due = (q.dueCandidates.all(nowMs, cap + leases.size()) as Row[]).filter(
        (r) => !leases.leased(String(r["key"]), nowMs),
      );
      const retry = q.nextRetry.get(nowMs) as Row;
      return {
        dueCount: Math.min(cap, due.length),
        oldestDueSinceMs: optionalNumber(due[0]?.["pending_since"]),
        nextRetryAtMs: optionalNumber(retry["t"]),
      };
    },

    async claimDue({ limit, nowMs, leaseMs, owner }) {
      leases.dropExpired(nowMs);
      // The keys from the index, then the rows of the carts taken only (not of the claimed ones passed over).
      const keys = (q.dueCandidates.all(nowMs, limit + leases.size()) as Row[])
        .map((r) => String(r["key"]))
        .filter((key) => !leases.leased(key, nowMs))
        .slice(0, limit);
      if (keys.length === 0) return [];
      const byKey = new Map(
        (q.claimRows.all(JSON.stringify(keys)) as Row[]).map((row) => [String(row["key"]), row]),
      );
      return keys.map((key): ClaimedCart => {
        const row = byKey.get(key) as Row;
        leases.take(key, owner, nowMs + leaseMs);
        return {
          key,
          version: Number(row["version"]),
          attempts: Number(row["attempts"]),
          state: JSON.parse(String(row["state"])) as CartState,
          hubspotId: (row["hubspot_id"] as string | null) ?? undefined,
        };
      });
    },

    async renewClaims(keys, owner, { nowMs, leaseMs }) {
      return leases.renew(keys, owner, nowMs + leaseMs);
    },

    async release(keys, owner) {
      for (const key of keys) leases.release(key, owner);
    },
  };
}

/** What HubSpot answered (sent, failed, rejected) and a replay's pending mark; fenced by the claim's owner. */
function ledgerAnswers(
  q: Statements,
  leases: CartLeases,
  transaction: SqliteTransaction,
  parts: { readonly deadLetters: SqliteDeadLetters; readonly lineItems: SqliteLineItems },
): Pick<SqliteLedger, "markSent" | "markFailed" | "markRejected" | "markPending"> {
  const { deadLetters, lineItems } = parts;
  return {
    async markSent(carts: readonly SentCart[], owner) {
      const marked = carts.filter((c) => leases.holds(c.key, owner));
      transaction(
        "mark sent",
        () => {
          for (const c of carts) {
            if (!marked.includes(c)) {
              // Lost claim: a newer version may have been sent meanwhile; send the current state again.
              q.repend.run(Date.now(), c.key);
              continue;
            }
            q.markSent.run(c.version, c.hubspotId ?? null, c.key, Date.now(), null);
            q.clearSentDelivery.run(c.key);
          }
        },
        "relaxed",
      );
      for (const c of marked) leases.release(c.key, owner);
      return marked;
    },

    async markFailed(keys, owner, { nextAttemptAtMs, error }) {
      const held = keys.filter((key) => leases.holds(key, owner));
      transaction(
        "mark failed",
        () => {
          for (const key of keys) {
            if (held.includes(key)) q.markFailed.run(nextAttemptAtMs, error, key);
            else q.repend.run(Date.now(), key); // as in markSent: the failed write may still have landed
          }
        },
        "relaxed",
      );
      for (const key of held) leases.release(key, owner);
    },

    async markRejected(carts: readonly RejectedCart[], owner, nowMs) {
      transaction("mark rejected", () => {
        for (const c of carts) {
          // A lost claim's rejection is dropped: HubSpot wrote nothing, the new owner sends the cart.
          if (!leases.holds(c.key, owner)) continue;
          const kept = deadLetters.keptDeliveryOf(c.key);
          if (kept === undefined) continue;
          deadLetters.insertRejected(c.key, kept, c, nowMs);
          // Settled, not written: the cart lookup says so until a later version is sent.
          q.markSent.run(c.version, null, c.key, null, rejectionNote(c.reason));
          q.clearSentDelivery.run(c.key);
        }
      });
      for (const c of carts) leases.release(c.key, owner);
      return;
    },

    async markPending(key, nowMs) {
      transaction("mark pending", () => {
        q.markPending.run(nowMs, key);
        lineItems.markLineSetPending(key, nowMs);
      });
      return;
    },
  };
}

/**
 * Claims on carts live in memory: SQLite serves one bridge process, so a claim never needs to outlive
 * it, and claiming costs a read instead of rewriting a hundred rows.
 */
function createCartLeases() {
  const leases = new Map<string, { owner: string; untilMs: number }>();
  return {
    size: (): number => leases.size,
    leased: (key: string, nowMs: number): boolean => (leases.get(key)?.untilMs ?? -1) >= nowMs,
    /**
     * Write-backs are fenced by owner: in one process a claim changes hands only when another sender claims
     * the cart after the lease ran out, and then the first one's answer no longer counts.
     */
    holds: (key: string, owner: string): boolean => leases.get(key)?.owner === owner,
    take(key: string, owner: string, untilMs: number): void {
      leases.set(key, { owner, untilMs });
    },
    /** Extends the leases this owner still holds; returns their keys. */
    renew(keys: readonly string[], owner: string, untilMs: number): string[] {
      const renewed: string[] = [];
      for (const key of keys) {
        const lease = leases.get(key);
        if (lease?.owner !== owner) continue;
        lease.untilMs = untilMs;
        renewed.push(key);
      }
      return renewed;
    },
    release(key: string, owner: string): void {
      if (leases.get(key)?.owner === owner) leases.delete(key);
    },
    dropExpired(nowMs: number): void {
      for (const [key, lease] of leases) if (lease.untilMs < nowMs) leases.delete(key);
    },
  };
}
