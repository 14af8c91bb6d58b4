import type pg from "pg";

/**
 * What the PostgreSQL store's statements share: the database clock, the lease fence, and the key-order lock.
 * Each module keeps its own statements beside the code that runs them (ingest: postgres-ingest.ts; the send
 * ledger: postgres-ledger.ts; buyers: postgres-contacts.ts; privacy and retention: postgres-privacy.ts; dead
 * letters: postgres-dead-letters.ts; line items: postgres-line-items.ts). Array parameters (`unnest`,
 * `= ANY`) make every call one statement, whatever the number of rows. Updates of several carts lock them
 * in key order first (LOCK_CARTS_BY_KEY or a sorted FOR UPDATE subquery), the order ingest uses, so they
 * cannot deadlock with it.
 */

/** Rows of the carts `$1` in key order. */
export const LOCK_CARTS_BY_KEY = "SELECT key FROM carts WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE";

/** LOCK_CARTS_BY_KEY for `keys`, as the first statement of a transaction that updates those carts. */
export const lockCarts = (keys: readonly string[]): pg.QueryConfig => ({
  name: "cartbridge_lock_carts_by_key",
  text: LOCK_CARTS_BY_KEY,
  values: [[...keys]],
});

/** The carts `$1`, locked in key order, as a subquery to join an update with. */
export const LOCKED_KEYS = "(SELECT key FROM carts WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE)";

/**
 * Leases are timed by the database's clock, never a replica's: `now()` in epoch ms (the transaction's start,
 * so every statement of one transaction sees the same instant). A write-back counts only while its claim
 * is held: same owner, lease not run out (HELD, with the owner in the parameter named).
 */
export const DB_NOW_MS = "(extract(epoch FROM now()) * 1000)::bigint";
export const held = (alias: string, owner: string): string =>
  `coalesce(${alias}.lease_owner = ${owner} AND ${alias}.lease_until >= ${DB_NOW_MS}, false)`;

/** The cart `c` has no buyer waiting to be sent (its kept delivery may still be needed for a dead letter). */
export const NO_PENDING_LINK =
  "NOT EXISTS (SELECT 1 FROM contact_links AS p WHERE p.cart_key = c.key AND p.version > p.synced_version)";

/** One entry per key, the highest version winning (the callers never repeat a key; be exact anyway). */
export function newestPerKey<T extends { readonly version: number }>(
  items: readonly T[],
  keyOf: (item: T) => string,
): T[] {
  const byKey = new Map<string, T>();
  for (const item of items) {
    const seen = byKey.get(keyOf(item));
    if (seen === undefined || item.version > seen.version) byKey.set(keyOf(item), item);
  }
  return [...byKey.values()];
}
