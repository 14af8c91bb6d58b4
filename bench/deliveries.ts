/**
 * Realistic signed deliveries for the benchmark: Shopify's own checkouts/update sample (2026-04), compacted
 * as Shopify sends it (5,014 bytes), with the fields that make one change distinct substituted per delivery:
 * the checkout token, the cart token (which carts are distinct or repeated is each measure's choice), the
 * buyer's e-mail, `updated_at` (later changes are newer) and `total_price`, which carries the change's
 * sequence number as a marker that can be found again in the upsert HubSpot receives.
 *
 * Bodies are built and signed before a timed run (`presign`), so neither costs the load generator anything
 * while it measures; the webhook id header is made per request, so every delivery has its own.
 */
import { readFileSync } from "node:fs";
import { signShopifyBody } from "../src/shopify/verify.ts";
import { FIXTURES_DIR, TEST_SECRET } from "../test/helpers/shopify.ts";

export const BENCH_SECRET = TEST_SECRET;
export const BENCH_SHOP = "bench-shop.myshopify.com";
export const BENCH_TOPIC = "checkouts/update";

const SAMPLE = "checkouts-update.shopify-docs-2026-04.json";
const BASE_TIME_MS = Date.parse("2026-11-01T00:00:00Z");

export interface Delivery {
  readonly body: Buffer;
  readonly hmac: string;
  /** The HubSpot cart key this delivery changes. */
  readonly key: string;
  /** The change's sequence number, written as its total price (seq / 100). */
  readonly seq: number;
}

/** A function from a change's sequence number to its delivery (built on demand, or from a pre-signed list). */
export type DeliverySource = (seq: number) => Delivery;

/** The sample with whitespace outside strings removed (numbers stay byte-exact) and placeholders cut in. */
function templateParts(): string[] {
  const text = readFileSync(new URL(SAMPLE, FIXTURES_DIR), "utf8");
  const compact = text.replace(/("(?:[^"\\]|\\.)*")|\s+/g, (_m, str: string | undefined) => str ?? "");
  const marked = compact
    .replaceAll("123123123", "\u0000CHECKOUT\u0000")
    .replace('"cart_token":"eeafa272cebfd4b22385bc4b645e762c"', '"cart_token":"\u0000CART\u0000"')
    .replace('"email":"example@email.com"', '"email":"\u0000EMAIL\u0000"')
    .replace('"updated_at":"2021-12-31T19:00:00-05:00"', '"updated_at":"\u0000UPDATED\u0000"')
    .replace('"total_price":"421.88"', '"total_price":"\u0000TOTAL\u0000"');
  const parts = marked.split("\u0000");
  if (parts.length !== 13)
    throw new Error(`bench: the sample ${SAMPLE} no longer has the fields the bench varies`);
  return parts;
}

const PARTS = templateParts();

/** The cart token of cart number `cart` (32 characters, like Shopify's). */
export function cartToken(cart: number): string {
  return `bench${String(cart).padStart(27, "0")}`;
}

export function cartKey(cart: number): string {
  return `${BENCH_SHOP}:${cartToken(cart)}`;
}

/** The total price that marks change `seq`, and back. */
export function markerPrice(seq: number): string {
  return (seq / 100).toFixed(2);
}

export function seqOfPrice(price: string | undefined): number | undefined {
  if (price === undefined) return undefined;
  const n = Math.round(Number(price) * 100);
  return Number.isFinite(n) ? n : undefined;
}

/** Change `seq` to cart `cart`: a signed ~5 kB checkouts/update body. */
export function buildDelivery(seq: number, cart: number): Delivery {
  const token = cartToken(cart);
  const values: Record<string, string> = {
    CHECKOUT: `chk${token}`,
    CART: token,
    EMAIL: `buyer${cart}@example.com`,
    UPDATED: new Date(BASE_TIME_MS + seq * 1000).toISOString(),
    TOTAL: markerPrice(seq),
  };
  const body = Buffer.from(PARTS.map((part, i) => (i % 2 === 1 ? (values[part] ?? part) : part)).join(""));
  return { body, hmac: signShopifyBody(body, BENCH_SECRET), key: `${BENCH_SHOP}:${token}`, seq };
}

/**
 * Builds and signs changes `first` … `first + count - 1`, change `seq` going to cart `cartOf(seq)`. A change
 * past the list is, per `beyond`: refused ("throw"), the list's body again ("wrap", for a server that ignores
 * bodies), or signed on demand ("sign", counted in `signedOnDemand`).
 */
export function presign(
  count: number,
  cartOf: (seq: number) => number,
  opts: { first?: number; beyond?: "throw" | "wrap" | "sign" } = {},
): DeliverySource & { readonly signedOnDemand: () => number } {
  const first = opts.first ?? 0;
  const beyond = opts.beyond ?? "throw";
  const list: Delivery[] = new Array<Delivery>(count);
  for (let i = 0; i < count; i++) list[i] = buildDelivery(first + i, cartOf(first + i));
  let late = 0;
  const source = (seq: number): Delivery => {
    const i = seq - first;
    const d = list[beyond === "wrap" ? i % count : i];
    if (d !== undefined) return d;
    if (beyond === "sign" && i >= 0) {
      late++;
      return buildDelivery(seq, cartOf(seq));
    }
    throw new Error(`bench: change ${seq} was not pre-signed (${first}…${first + count - 1})`);
  };
  return Object.assign(source, { signedOnDemand: () => late });
}

/** Signs each change when it is sent: for runs whose timing is not the measure (backlogs, memory). */
export function onDemand(cartOf: (seq: number) => number): DeliverySource {
  return (seq) => buildDelivery(seq, cartOf(seq));
}

/** The request headers Shopify sends with a delivery, as a flat name/value list. */
export function deliveryHeaders(d: Delivery, webhookId: string): string[] {
  return [
    "content-type",
    "application/json",
    "x-shopify-topic",
    BENCH_TOPIC,
    "x-shopify-hmac-sha256",
    d.hmac,
    "x-shopify-shop-domain",
    BENCH_SHOP,
    "x-shopify-api-version",
    "2026-04",
    "x-shopify-webhook-id",
    webhookId,
    "x-shopify-event-id",
    webhookId,
    "x-shopify-triggered-at",
    "2026-11-01T00:00:00.000Z",
  ];
}
