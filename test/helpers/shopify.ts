import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { signShopifyBody } from "../../src/shopify/verify.ts";

/** Shopify's sample payloads, byte-exact, with the topic their file name gives. */
export const FIXTURES_DIR = new URL("../../../shared/fixtures/shopify/", import.meta.url);

export interface Fixture {
  readonly file: string;
  readonly topic: string;
  readonly body: Buffer;
}

export function loadFixtures(): Fixture[] {
  return readdirSync(FIXTURES_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, topic: topicOf(file), body: readFileSync(new URL(file, FIXTURES_DIR)) }));
}

export function fixture(file: string): Fixture {
  return { file, topic: topicOf(file), body: readFileSync(new URL(file, FIXTURES_DIR)) };
}

/** A fixture's JSON, whole numbers past 2^53 (variant ids) kept as their digits, as the bridge reads them. */
export function fixtureJson(file: string): Record<string, unknown> {
  return JSON.parse(
    fixture(file).body.toString("utf8"),
    (_key, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined
        ? context.source
        : value,
  ) as Record<string, unknown>;
}

/** "checkouts-create.shopify-docs-2026-04.json" → "checkouts/create" (customers-redact → customers/redact). */
function topicOf(file: string): string {
  const stem = file.split(".")[0] ?? "";
  const special: Record<string, string> = {
    "app-uninstalled": "app/uninstalled",
    "customers-data-request": "customers/data_request",
    "customers-redact": "customers/redact",
    "shop-redact": "shop/redact",
  };
  if (special[stem]) return special[stem];
  const dash = stem.indexOf("-");
  return `${stem.slice(0, dash)}/${stem.slice(dash + 1)}`;
}

export const TEST_SECRET = "shpss_test_secret_0123456789";
export const TEST_SHOP = "example-shop.myshopify.com";

export interface DeliveryOptions {
  readonly topic: string;
  readonly body: Buffer | string;
  readonly secret?: string;
  readonly shop?: string | null;
  readonly webhookId?: string | null;
  readonly triggeredAt?: string;
  /** Overrides the computed HMAC header (null leaves it out). */
  readonly hmac?: string | null;
  readonly headers?: Record<string, string>;
}

/** A signed delivery as Shopify sends it; each option breaks exactly one thing for negative tests. */
export function buildDelivery(opts: DeliveryOptions): { headers: Record<string, string>; body: Buffer } {
  const body = Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-shopify-topic": opts.topic,
    "x-shopify-api-version": "2026-04",
    ...opts.headers,
  };
  const hmac = opts.hmac === undefined ? signShopifyBody(body, opts.secret ?? TEST_SECRET) : opts.hmac;
  if (hmac !== null) headers["x-shopify-hmac-sha256"] = hmac;
  const shop = opts.shop === undefined ? TEST_SHOP : opts.shop;
  if (shop !== null) headers["x-shopify-shop-domain"] = shop;
  const webhookId = opts.webhookId === undefined ? randomUUID() : opts.webhookId;
  if (webhookId !== null) headers["x-shopify-webhook-id"] = webhookId;
  if (opts.triggeredAt !== undefined) headers["x-shopify-triggered-at"] = opts.triggeredAt;
  return { headers, body };
}

export async function postDelivery(
  baseUrl: string,
  opts: DeliveryOptions,
): Promise<{ status: number; json: unknown }> {
  const { headers, body } = buildDelivery(opts);
  const res = await fetch(`${baseUrl}/webhooks/shopify`, { method: "POST", headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** webhooks_received_total summed per outcome, from the bridge's /metrics. */
async function outcomeCounts(baseUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^webhooks_received_total\{[^}]*outcome="([^"]+)"[^}]*\} (\S+)$/gm)) {
    const outcome = m[1] ?? "";
    counts.set(outcome, (counts.get(outcome) ?? 0) + Number(m[2]));
  }
  return counts;
}

/**
 * webhooks_received_total per outcome once deliveries sent before (and not awaited by their sender) have
 * been applied: the counts stay the same for 30 ms.
 */
export async function settledCounts(baseUrl: string): Promise<Map<string, number>> {
  let counts = await outcomeCounts(baseUrl);
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 30));
    const again = await outcomeCounts(baseUrl);
    if ([...again].every(([name, n]) => counts.get(name) === n)) return again;
    counts = again;
  }
  return counts;
}

/**
 * Posts a delivery (one at a time) and resolves with its answer and what it did: the answer's outcome, or,
 * when the answer is `accepted` (the SQLite inbox applies deliveries just behind the answer), the outcome
 * the bridge counted in webhooks_received_total once it applied it.
 */
export function deliver(
  baseUrl: string,
  opts: DeliveryOptions,
): Promise<{ status: number; json: unknown; outcome: string | undefined }> {
  return withOutcome(baseUrl, () => postDelivery(baseUrl, opts));
}

/** `post` (any way of sending one delivery), with the outcome as `deliver` reads it. */
export async function withOutcome<R extends { json: unknown }>(
  baseUrl: string,
  post: () => Promise<R>,
): Promise<R & { outcome: string | undefined }> {
  const before = await settledCounts(baseUrl);
  const res = await post();
  const answered = (res.json as { outcome?: string } | undefined)?.outcome;
  if (answered !== "accepted") return { ...res, outcome: answered };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const after = await outcomeCounts(baseUrl);
    const outcome = [...after].find(([name, n]) => n > (before.get(name) ?? 0))?.[0];
    if (outcome !== undefined) return { ...res, outcome };
    if (Date.now() > deadline) throw new Error("the accepted delivery was not applied within 10 s");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A checkout body for cart `token`, with the given total and update time. */
export function checkoutBody(
  token: string,
  opts: { total?: string; updatedAt?: string; email?: string | null; completedAt?: string | null } = {},
): string {
  return JSON.stringify({
    token: `chk-${token}`,
    cart_token: token,
    email: opts.email === undefined ? `buyer-${token}@example.com` : opts.email,
    presentment_currency: "USD",
    currency: "USD",
    total_price: opts.total ?? "10.00",
    subtotal_price: opts.total ?? "10.00",
    total_tax: "0.00",
    total_discounts: "0.00",
    shipping_lines: [],
    discount_codes: [],
    line_items: [
      { title: "Widget", quantity: 1, price: opts.total ?? "10.00", line_price: opts.total ?? "10.00" },
    ],
    abandoned_checkout_url: `https://shop.example/checkouts/${token}/recover`,
    created_at: "2026-11-01T10:00:00Z",
    updated_at: opts.updatedAt ?? "2026-11-01T10:00:00Z",
    completed_at: opts.completedAt ?? null,
  });
}

/** A cart body for `token` with one line of `price` × quantity. */
export function cartBody(
  token: string,
  opts: { price?: string; quantity?: number; updatedAt?: string } = {},
): string {
  const price = opts.price ?? "5.00";
  const quantity = opts.quantity ?? 1;
  const line = (Number(price) * quantity).toFixed(2);
  const money = (amount: string) => ({
    shop_money: { amount, currency_code: "USD" },
    presentment_money: { amount, currency_code: "USD" },
  });
  return JSON.stringify({
    id: token,
    token,
    line_items: [
      {
        id: 1,
        title: "Widget",
        quantity,
        price,
        line_price: line,
        total_discount: "0.00",
        price_set: money(price),
        line_price_set: money(line),
        total_discount_set: money("0.00"),
      },
    ],
    note: null,
    created_at: "2026-11-01T09:00:00Z",
    updated_at: opts.updatedAt ?? "2026-11-01T09:00:00Z",
  });
}
