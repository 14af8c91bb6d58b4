/**
 * Deliveries for the reliability suite, and an oracle for the HubSpot state they must produce.
 *
 * Every generated delivery carries values no other delivery carries (its totals), so the value HubSpot
 * holds names the delivery that wrote it. The oracle is deliberately independent of src/sync/merge.ts:
 * per property the value of the event with the greatest (time, topic rank, webhook id) wins, and the status
 * is the highest any event carried (SPEC §4). Mapping (bytes → event) is src's `mapDelivery`: mapping is not
 * what this suite tests, the ordering and durability of what it produces is.
 */
import { randomUUID } from "node:crypto";
import type { CartEvent, CartStatus, EventStamp } from "../../src/sync/cart-event.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { defaultCartProperties, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { cartBody, checkoutBody, TEST_SHOP } from "./shopify.ts";

export interface GeneratedDelivery {
  /** Sequence number, unique in a run (also the source of the unique amounts). */
  readonly seq: number;
  readonly webhookId: string;
  readonly topic: string;
  readonly token: string;
  readonly body: string;
  readonly triggeredAt: string;
  /** What the delivery means, as the bridge's own mapping reads it. */
  readonly event: CartEvent;
}

const STATUS_ORDER: readonly CartStatus[] = ["open", "checkout", "deleted", "completed"];
const rank = (s: string): number => STATUS_ORDER.indexOf(s as CartStatus);

/** The oracle's order of events: time, then topic rank, then webhook id (SPEC §4). */
export function newerThan(a: EventStamp, b: EventStamp): boolean {
  if (a.timeMs !== b.timeMs) return a.timeMs > b.timeMs;
  if (a.topicRank !== b.topicRank) return a.topicRank > b.topicRank;
  return a.webhookId > b.webhookId;
}

/** Properties the fake portal has, i.e. those the bridge sends (the rest are left out by design). */
export const PORTAL_PROPERTIES: ReadonlySet<string> = new Set(
  defaultCartProperties()
    .filter((p) => p.readOnlyValue !== true)
    .map((p) => p.name),
);

export function cartKey(token: string, shop = TEST_SHOP): string {
  return `${shop}:${token}`;
}

/** An order body for cart `token` (linked by cart_token), with its total and update time. */
export function orderBody(token: string, opts: { total: string; updatedAt: string }): string {
  return JSON.stringify({
    id: Math.floor(Math.random() * 1e12),
    cart_token: token,
    checkout_token: `chk-${token}`,
    email: `buyer-${token}@example.com`,
    currency: "USD",
    presentment_currency: "USD",
    total_price: opts.total,
    subtotal_price: opts.total,
    total_tax: "0.00",
    total_discounts: "0.00",
    shipping_lines: [],
    discount_codes: [],
    created_at: "2026-11-01T10:00:00Z",
    updated_at: opts.updatedAt,
  });
}

/**
 * Makes deliveries over `carts` carts: cart updates, checkout creates/updates, orders and checkout deletes,
 * with event times scattered over an hour (so arrival order and event order disagree) on a coarse grid (so
 * equal times happen and the tie-break rules are exercised).
 */
export function createDeliveryFactory(opts: { carts: number; prefix: string; random?: () => number }) {
  const random = opts.random ?? Math.random;
  const tokens = Array.from({ length: opts.carts }, (_, i) => `${opts.prefix}-${i}`);
  const base = Date.parse("2026-11-01T10:00:00Z");
  let seq = 0;

  function next(): GeneratedDelivery {
    seq += 1;
    const token = tokens[Math.floor(random() * tokens.length)] ?? `${opts.prefix}-0`;
    // 360 slots of 10 s: ties between deliveries of one cart are common enough to matter.
    const at = new Date(base + Math.floor(random() * 360) * 10_000).toISOString();
    const amount = `${seq}.${String(seq % 100).padStart(2, "0")}`;
    const roll = random();
    let topic: string;
    let body: string;
    if (roll < 0.4) {
      topic = "carts/update";
      body = cartBody(token, { price: amount, quantity: 1, updatedAt: at });
    } else if (roll < 0.75) {
      topic = roll < 0.45 ? "checkouts/create" : "checkouts/update";
      body = checkoutBody(token, { total: amount, updatedAt: at });
    } else if (roll < 0.9) {
      topic = "orders/create";
      body = orderBody(token, { total: amount, updatedAt: at });
    } else {
      // checkouts/delete carries no updated_at: its time is X-Shopify-Triggered-At.
      topic = "checkouts/delete";
      body = JSON.stringify({ id: seq, cart_token: token });
    }
    const webhookId = randomUUID();
    const mapped = mapDelivery({
      topic,
      shopDomain: TEST_SHOP,
      body: Buffer.from(body),
      webhookId,
      triggeredAt: at,
      receivedAtMs: 0,
    });
    if (mapped.kind !== "event") throw new Error(`generated ${topic} did not map: ${JSON.stringify(mapped)}`);
    return { seq, webhookId, topic, token, body, triggeredAt: at, event: mapped.event };
  }
  return { next, tokens };
}

/** The HubSpot properties (portal ones, empty values left out) and status the oracle expects for one cart. */
export interface ExpectedCart {
  readonly key: string;
  readonly properties: Record<string, { value: string; stamp: EventStamp }>;
  readonly status: CartStatus;
}

/** Folds events with the oracle's rules (independent of src/sync/merge.ts). */
export function expectedCarts(events: Iterable<CartEvent>): Map<string, ExpectedCart> {
  const carts = new Map<string, ExpectedCart>();
  for (const event of events) {
    let cart = carts.get(event.key);
    if (cart === undefined) {
      cart = { key: event.key, properties: {}, status: event.status };
      carts.set(event.key, cart);
    }
    for (const [name, value] of Object.entries(event.properties)) {
      const held = cart.properties[name];
      if (held === undefined || newerThan(event.stamp, held.stamp))
        cart.properties[name] = { value, stamp: event.stamp };
    }
    if (rank(event.status) > rank(cart.status)) carts.set(event.key, { ...cart, status: event.status });
  }
  return carts;
}

/** Differences between what HubSpot holds and what the oracle expects, exactly; empty when they agree. */
export function exactDifferences(hs: FakeHubSpot, expected: Map<string, ExpectedCart>): string[] {
  const problems: string[] = [];
  for (const [key, want] of expected) {
    const cart = hs.cartByKey(key);
    if (cart === undefined) {
      problems.push(`${key}: not in HubSpot`);
      continue;
    }
    if (cart.properties["hs_external_status"] !== want.status) {
      problems.push(`${key}: status ${cart.properties["hs_external_status"]} ≠ expected ${want.status}`);
    }
    for (const [name, { value }] of Object.entries(want.properties)) {
      if (!PORTAL_PROPERTIES.has(name) || value === "") continue;
      if (cart.properties[name] !== value)
        problems.push(`${key}: ${name} ${cart.properties[name]} ≠ expected ${value}`);
    }
  }
  return problems;
}

/**
 * Whether HubSpot reflects an acknowledged delivery: every property it set holds its value or the value of
 * a newer delivery that was sent (acknowledged or not) for that cart, and the status is at least as high.
 */
export function reflects(hs: FakeHubSpot, acked: CartEvent, sentForCart: readonly CartEvent[]): boolean {
  const cart = hs.cartByKey(acked.key);
  if (cart === undefined) return false;
  const status = cart.properties["hs_external_status"] ?? "";
  if (rank(status) < rank(acked.status)) return false;
  if (!sentForCart.some((e) => e.status === status)) return false; // a status nobody sent
  for (const [name, value] of Object.entries(acked.properties)) {
    if (!PORTAL_PROPERTIES.has(name) || value === "") continue;
    const held = cart.properties[name];
    if (held === value) continue;
    const newer = sentForCart.some((e) => e.properties[name] === held && newerThan(e.stamp, acked.stamp));
    if (!newer) return false;
  }
  return true;
}
