import type { Query } from "./postgres-connection.ts";
import { toMissedChange, type ReconcileStore } from "./reconcile-store.ts";

/**
 * Reconciliation's rows on PostgreSQL (see reconcile-store.ts; tables from migration "reconciliation").
 * The lease is one conditional upsert: it is taken when free, expired, or already ours.
 */
export function createPostgresReconcileStore(query: Query): ReconcileStore {
  return {
    async watermark(shop, source) {
      const r = await query(
        "cartbridge_reconcile_watermark",
        "SELECT watermark_ms FROM reconcile_watermarks WHERE shop = $1 AND source = $2",
        [shop, source],
      );
      const row = r.rows[0];
      return row === undefined ? undefined : Number(row["watermark_ms"]);
    },
    async setWatermark(shop, source, watermarkMs) {
      await query(
        "cartbridge_reconcile_set_watermark",
        `INSERT INTO reconcile_watermarks (shop, source, watermark_ms) VALUES ($1, $2, $3)
         ON CONFLICT (shop, source) DO UPDATE SET watermark_ms = EXCLUDED.watermark_ms`,
        [shop, source, watermarkMs],
      );
    },
    async cartTokensOf(shop, checkoutTokens) {
      const r = await query(
        "cartbridge_reconcile_links",
        "SELECT checkout_token, cart_token FROM checkout_links WHERE shop = $1 AND checkout_token = ANY($2::text[])",
        [shop, [...checkoutTokens]],
      );
      return new Map(r.rows.map((row) => [String(row["checkout_token"]), String(row["cart_token"])]));
    },
    async learnCheckoutLinks(links, nowMs) {
      if (links.length === 0) return;
      await query(
        "cartbridge_reconcile_learn_links",
        `INSERT INTO checkout_links (shop, checkout_token, cart_token, updated_at)
         SELECT DISTINCT ON (s, c) s, c, t, $4::bigint FROM unnest($1::text[], $2::text[], $3::text[]) AS x(s, c, t)
         ON CONFLICT (shop, checkout_token) DO UPDATE SET cart_token = EXCLUDED.cart_token, updated_at = EXCLUDED.updated_at`,
        [
          links.map((l) => l.shopDomain),
          links.map((l) => l.checkoutToken),
          links.map((l) => l.cartToken),
          nowMs,
        ],
      );
    },
    async acquireReconcileLease(shop, owner, nowMs, untilMs) {
      const r = await query(
        "cartbridge_reconcile_acquire",
        `INSERT INTO reconcile_leases AS l (shop, owner, lease_until) VALUES ($1, $2, $4)
         ON CONFLICT (shop) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
         WHERE l.owner = $2 OR l.lease_until < $3
         RETURNING owner`,
        [shop, owner, nowMs, untilMs],
      );
      return r.rowCount === 1;
    },
    async recordMissed(shop, m) {
      await query(
        "cartbridge_reconcile_record_missed",
        `INSERT INTO reconcile_missed AS m (shop, topic, cart_key, updated_at, found_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (shop) DO UPDATE SET topic = EXCLUDED.topic, cart_key = EXCLUDED.cart_key,
           updated_at = EXCLUDED.updated_at, found_at = EXCLUDED.found_at
         WHERE m.found_at <= EXCLUDED.found_at`,
        [shop, m.topic, m.cartKey, m.updatedAtMs, m.foundAtMs],
      );
    },
    async lastMissed() {
      const r = await query(
        "cartbridge_reconcile_last_missed",
        "SELECT shop, topic, cart_key, updated_at, found_at FROM reconcile_missed",
        [],
      );
      return new Map(r.rows.map((row) => [String(row["shop"]), toMissedChange(row)]));
    },
    async releaseReconcileLease(shop, owner) {
      await query(
        "cartbridge_reconcile_release",
        "DELETE FROM reconcile_leases WHERE shop = $1 AND owner = $2",
        [shop, owner],
      );
    },
  };
}
