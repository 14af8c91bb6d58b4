/**
 * What reconciliation (SPEC §9) keeps in the store, beside the carts it ingests through `Store.ingestBatch`.
 *
 * Glossary
 * - source: what a pass reads, `checkouts` (abandonedCheckouts) or `orders`.
 * - watermark: per shop and source, the instant up to which everything Shopify reported has been ingested;
 *   the next pass reads what was updated after it (minus an overlap). Moved only after a pass completes,
 *   so a pass interrupted at any instant is read again from the old watermark: nothing is skipped.
 * - checkout link: checkout token → cart token, learned from checkout webhooks (they carry both); keys
 *   abandoned checkouts whose URL has the older `/checkouts/<checkout token>/recover` shape.
 * - reconcile lease: with PostgreSQL, the replica that reconciles a shop holds it until it expires; others
 *   skip the shop meanwhile.
 * - last missed change: per shop, the newest change a pass found that webhooks had not brought (SPEC §9);
 *   kept so a restart, another replica or `cartbridge reconcile` does not lose the sign that a subscription
 *   or a secret is wrong.
 */
export type ReconcileSource = "checkouts" | "orders";

export interface CheckoutLink {
  readonly shopDomain: string;
  readonly checkoutToken: string;
  readonly cartToken: string;
}

/** A change reconciliation found newer than the store's and over 10 minutes old (SPEC §9). */
export interface MissedChange {
  readonly topic: ReconcileSource;
  readonly cartKey: string;
  readonly updatedAtMs: number;
  readonly foundAtMs: number;
}

export interface ReconcileStore {
  watermark(shopDomain: string, source: ReconcileSource): Promise<number | undefined>;
  setWatermark(shopDomain: string, source: ReconcileSource, watermarkMs: number): Promise<void>;
  /** Cart tokens of the given checkout tokens, where a checkout webhook taught one. */
  cartTokensOf(shopDomain: string, checkoutTokens: readonly string[]): Promise<Map<string, string>>;
  learnCheckoutLinks(links: readonly CheckoutLink[], nowMs: number): Promise<void>;
  /** Takes (or renews) the shop's lease until `untilMs`; false while another owner holds it. */
  acquireReconcileLease(shopDomain: string, owner: string, nowMs: number, untilMs: number): Promise<boolean>;
  releaseReconcileLease(shopDomain: string, owner: string): Promise<void>;
  /** Keeps `missed` as the shop's last missed change unless one found later is kept already. */
  recordMissed(shopDomain: string, missed: MissedChange): Promise<void>;
  /** Every shop's last missed change. */
  lastMissed(): Promise<Map<string, MissedChange>>;
}

/** Migration "last missed change per shop" of both stores. */
export function reconcileMissedSchema(time: "INTEGER" | "BIGINT"): string {
  return `
CREATE TABLE IF NOT EXISTS reconcile_missed (
  shop       TEXT PRIMARY KEY,
  topic      TEXT NOT NULL,
  cart_key   TEXT NOT NULL,
  updated_at ${time} NOT NULL,
  found_at   ${time} NOT NULL
);
`;
}

export function toMissedChange(row: Record<string, unknown>): MissedChange {
  return {
    topic: row["topic"] === "orders" ? "orders" : "checkouts",
    cartKey: String(row["cart_key"]),
    updatedAtMs: Number(row["updated_at"]),
    foundAtMs: Number(row["found_at"]),
  };
}

/** Schema of both stores (same names; SQLite INTEGER, PostgreSQL BIGINT for epoch ms). */
export function reconcileSchema(time: "INTEGER" | "BIGINT"): string {
  return `
CREATE TABLE IF NOT EXISTS reconcile_watermarks (
  shop         TEXT NOT NULL,
  source       TEXT NOT NULL,
  watermark_ms ${time} NOT NULL,
  PRIMARY KEY (shop, source)
);
CREATE TABLE IF NOT EXISTS checkout_links (
  shop           TEXT NOT NULL,
  checkout_token TEXT NOT NULL,
  cart_token     TEXT NOT NULL,
  updated_at     ${time} NOT NULL,
  PRIMARY KEY (shop, checkout_token)
);
CREATE INDEX IF NOT EXISTS checkout_links_updated_at ON checkout_links (updated_at);
CREATE TABLE IF NOT EXISTS reconcile_leases (
  shop        TEXT PRIMARY KEY,
  owner       TEXT NOT NULL,
  lease_until ${time} NOT NULL
);
`;
}
