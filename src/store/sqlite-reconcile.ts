import type { DatabaseSync } from "node:sqlite";
import {
  toMissedChange,
  type CheckoutLink,
  type ReconcileSource,
  type ReconcileStore,
} from "./reconcile-store.ts";

/**
 * Reconciliation's rows on SQLite (see reconcile-store.ts); the tables come from `reconcileSchema`.
 * `relaxed` runs a batch in one transaction without a full fsync: links are re-learned from the next
 * checkout webhook if a crash loses them, and one commit for 500 links keeps the event loop free.
 */
export function createSqliteReconcileStore(
  db: DatabaseSync,
  relaxed: (what: string, fn: () => void) => void,
): ReconcileStore {
  const q = {
    watermark: db.prepare("SELECT watermark_ms FROM reconcile_watermarks WHERE shop = ? AND source = ?"),
    setWatermark:
      db.prepare(`INSERT INTO reconcile_watermarks (shop, source, watermark_ms) VALUES (?1, ?2, ?3)
      ON CONFLICT (shop, source) DO UPDATE SET watermark_ms = ?3`),
    link: db.prepare("SELECT cart_token FROM checkout_links WHERE shop = ? AND checkout_token = ?"),
    learn: db.prepare(`INSERT INTO checkout_links (shop, checkout_token, cart_token, updated_at)
      VALUES (?1, ?2, ?3, ?4) ON CONFLICT (shop, checkout_token) DO UPDATE SET cart_token = ?3, updated_at = ?4`),
    acquire: db.prepare(`INSERT INTO reconcile_leases (shop, owner, lease_until) VALUES (?1, ?2, ?4)
      ON CONFLICT (shop) DO UPDATE SET owner = ?2, lease_until = ?4
      WHERE reconcile_leases.owner = ?2 OR reconcile_leases.lease_until < ?3`),
    release: db.prepare("DELETE FROM reconcile_leases WHERE shop = ? AND owner = ?"),
    recordMissed: db.prepare(`INSERT INTO reconcile_missed (shop, topic, cart_key, updated_at, found_at)
      VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (shop) DO UPDATE SET topic = ?2, cart_key = ?3, updated_at = ?4,
      found_at = ?5 WHERE reconcile_missed.found_at <= ?5`),
    lastMissed: db.prepare("SELECT shop, topic, cart_key, updated_at, found_at FROM reconcile_missed"),
  };
  /* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; the port is async */
  return {
    async watermark(shop: string, source: ReconcileSource) {
      const row = q.watermark.get(shop, source) as { watermark_ms: number } | undefined;
      return row === undefined ? undefined : Number(row.watermark_ms);
    },
    async setWatermark(shop, source, watermarkMs) {
      q.setWatermark.run(shop, source, watermarkMs);
    },
    async cartTokensOf(shop, checkoutTokens) {
      const found = new Map<string, string>();
      for (const token of checkoutTokens) {
        const row = q.link.get(shop, token) as { cart_token: string } | undefined;
        if (row !== undefined) found.set(token, row.cart_token);
      }
      return found;
    },
    async learnCheckoutLinks(links: readonly CheckoutLink[], nowMs) {
      relaxed("learning checkout links", () => {
        for (const l of links) q.learn.run(l.shopDomain, l.checkoutToken, l.cartToken, nowMs);
      });
    },
    async acquireReconcileLease(shop, owner, nowMs, untilMs) {
      return q.acquire.run(shop, owner, nowMs, untilMs).changes > 0;
    },
    async recordMissed(shop, m) {
      q.recordMissed.run(shop, m.topic, m.cartKey, m.updatedAtMs, m.foundAtMs);
    },
    async lastMissed() {
      const rows = q.lastMissed.all() as Record<string, unknown>[];
      return new Map(rows.map((row) => [String(row["shop"]), toMissedChange(row)]));
    },
    async releaseReconcileLease(shop, owner) {
      q.release.run(shop, owner);
    },
  };
  /* eslint-enable @typescript-eslint/require-await */
}
