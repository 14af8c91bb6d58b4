/**
 * The GraphQL equivalents of Shopify's webhook samples, for seeding the Admin sandbox: what
 * `abandonedCheckouts` and `orders` return for the same checkout or order (field names per
 * ../shared/reference/shopify-admin-graphql.md; connections stored as arrays, cut to `first` by the sandbox).
 */
import type { SandboxNode } from "./shopify-admin.ts";

type Json = Record<string, unknown>;

const str = (v: unknown): string | null =>
  typeof v === "string" ? v : typeof v === "number" ? String(v) : null;

function person(p: unknown): Json | null {
  if (p === null || typeof p !== "object" || Array.isArray(p)) return null;
  const o = p as Json;
  return {
    email: str(o["email"]),
    firstName: str(o["first_name"]),
    lastName: str(o["last_name"]),
    phone: str(o["phone"]),
  };
}

function moneyBag(
  amount: unknown,
  currency: string | null,
  shopAmount?: unknown,
  shopCurrency?: string | null,
): Json | null {
  const a = str(amount);
  if (a === null) return null;
  return {
    presentmentMoney: { amount: a, currencyCode: currency },
    shopMoney: { amount: str(shopAmount) ?? a, currencyCode: shopCurrency ?? currency },
  };
}

function presentment(set: unknown, fallback: unknown): unknown {
  const p = (set as { presentment_money?: { amount?: unknown } } | null | undefined)?.presentment_money
    ?.amount;
  return p ?? fallback;
}

function iso(v: unknown): string {
  const t = Date.parse(String(v));
  return new Date(Number.isFinite(t) ? t : 0).toISOString();
}

/**
 * A checkout webhook body as an AbandonedCheckout node. `urlShape: "current"` gives today's
 * `/checkouts/ac/<cart token>/recover` URL; "docs" keeps the sample's `/checkouts/<checkout token>/recover`.
 */
export function abandonedCheckoutFromWebhook(
  body: Json,
  opts: { id: number; shop: string; urlShape?: "current" | "docs" },
): SandboxNode {
  const currency = str(body["presentment_currency"]) ?? str(body["currency"]);
  const cartToken = str(body["cart_token"]) ?? str(body["token"]) ?? "";
  const url =
    opts.urlShape === "docs"
      ? str(body["abandoned_checkout_url"])
      : `https://${opts.shop}/548380009/checkouts/ac/${cartToken}/recover?key=example-secret-token`;
  const lines = Array.isArray(body["line_items"]) ? (body["line_items"] as Json[]) : [];
  return {
    id: `gid://shopify/AbandonedCheckout/${opts.id}`,
    name: `#${opts.id}`,
    abandonedCheckoutUrl: url,
    createdAt: iso(body["created_at"]),
    updatedAt: iso(body["updated_at"]),
    completedAt: body["completed_at"] == null ? null : iso(body["completed_at"]),
    customer: person(body["customer"]),
    billingAddress: person(body["billing_address"]),
    shippingAddress: person(body["shipping_address"]),
    discountCodes: Array.isArray(body["discount_codes"])
      ? (body["discount_codes"] as Json[]).map((d) => str(d["code"]) ?? "")
      : [],
    lineItems: lines.map((l) => lineNode(l, currency)),
    subtotalPriceSet: moneyBag(body["subtotal_price"], currency),
    totalDiscountSet: moneyBag(body["total_discounts"], currency),
    totalPriceSet: moneyBag(body["total_price"], currency),
    totalTaxSet: moneyBag(body["total_tax"], currency),
    totalLineItemsPriceSet: moneyBag(body["total_line_items_price"], currency),
  };
}

/** An order webhook body as an Order node (API 2026-07+: with cartToken and checkoutToken). */
export function orderFromWebhook(body: Json, opts: { id: number }): SandboxNode {
  const currency = str(body["presentment_currency"]) ?? str(body["currency"]);
  const shipping = Array.isArray(body["shipping_lines"])
    ? (body["shipping_lines"] as Json[])
        .map((l) => Number(presentment(l["price_set"], l["price"])))
        .reduce((a, b) => a + b, 0)
        .toFixed(2)
    : null;
  return {
    id: `gid://shopify/Order/${opts.id}`,
    name: str(body["name"]) ?? `#${opts.id}`,
    createdAt: iso(body["created_at"]),
    updatedAt: iso(body["updated_at"]),
    cancelledAt: body["cancelled_at"] == null ? null : iso(body["cancelled_at"]),
    email: str(body["email"]),
    phone: str(body["phone"]),
    cartToken: str(body["cart_token"]),
    checkoutToken: str(body["checkout_token"]),
    customer: person(body["customer"]),
    billingAddress: person(body["billing_address"]),
    currencyCode: str(body["currency"]),
    presentmentCurrencyCode: currency,
    discountCodes: Array.isArray(body["discount_codes"])
      ? (body["discount_codes"] as Json[]).map((d) => str(d["code"]) ?? "")
      : [],
    totalPriceSet: moneyBag(presentment(body["total_price_set"], body["total_price"]), currency),
    subtotalPriceSet: moneyBag(presentment(body["subtotal_price_set"], body["subtotal_price"]), currency),
    totalTaxSet: moneyBag(presentment(body["total_tax_set"], body["total_tax"]), currency),
    totalDiscountsSet: moneyBag(presentment(body["total_discounts_set"], body["total_discounts"]), currency),
    totalShippingPriceSet: moneyBag(shipping, currency),
    landingPageUrl: str(body["landing_site"]),
    referrerUrl: str(body["referring_site"]),
    lineItems: (Array.isArray(body["line_items"]) ? (body["line_items"] as Json[]) : []).map((l) =>
      lineNode(l, currency),
    ),
  };
}

/** A webhook's line as a GraphQL line item: ids as GIDs, the unit price as a MoneyBag. */
function lineNode(l: Json, currency: string | null): Json {
  // Ids as the webhook has them: a number, or the digits of one past 2^53 kept as text by the caller.
  const gid = (type: string, id: unknown) =>
    typeof id === "number" || typeof id === "string" ? { id: `gid://shopify/${type}/${id}` } : null;
  return {
    title: str(l["title"]),
    variantTitle: str(l["variant_title"]),
    quantity: l["quantity"],
    sku: str(l["sku"]),
    variant: gid("ProductVariant", l["variant_id"]),
    product: gid("Product", l["product_id"]),
    originalUnitPriceSet: moneyBag(presentment(l["price_set"], l["price"]), currency),
  };
}
