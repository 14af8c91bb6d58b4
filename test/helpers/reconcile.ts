import { fixtureJson } from "./shopify.ts";
import { abandonedCheckoutFromWebhook, orderFromWebhook } from "../fakes/shopify-admin-seed.ts";
import type { SandboxNode, ShopifyAdminSandbox } from "../fakes/shopify-admin.ts";

/** Test data for reconciliation: checkout and order webhooks of many carts, and their GraphQL equivalents. */

const checkoutSample = fixtureJson("checkouts-update.shopify-docs-2026-04.json");
const orderSample = fixtureJson("orders-create.shopify-docs-2026-04.json");

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The sample checkout as cart `cart-<i>` (checkout token `chk-<i>`), updated at `updatedAtMs`. */
export function checkoutBody(
  i: number,
  updatedAtMs: number,
  total = "421.88",
  shop = "recon-shop.myshopify.com",
): Record<string, unknown> {
  const email = `buyer${i}@example.com`;
  return {
    ...checkoutSample,
    // Today's recovery URL shape, as the Admin API gives it for the same checkout.
    abandoned_checkout_url: `https://${shop}/548380009/checkouts/ac/cart-${i}/recover?key=example-secret-token`,
    id: 10_000 + i,
    token: `chk-${i}`,
    cart_token: `cart-${i}`,
    email,
    customer: { ...(checkoutSample["customer"] as object), email },
    total_price: total,
    created_at: iso(updatedAtMs - 60_000),
    updated_at: iso(updatedAtMs),
  };
}

/** The sample order for cart `cart-<i>`, updated at `updatedAtMs`. */
export function orderBody(i: number, updatedAtMs: number): Record<string, unknown> {
  const email = `buyer${i}@example.com`;
  return {
    ...orderSample,
    id: 20_000 + i,
    cart_token: `cart-${i}`,
    checkout_token: `chk-${i}`,
    email,
    customer: { ...(orderSample["customer"] as object), email },
    created_at: iso(updatedAtMs - 60_000),
    updated_at: iso(updatedAtMs),
  };
}

export function checkoutNode(shop: string, i: number, body: Record<string, unknown>): SandboxNode {
  return abandonedCheckoutFromWebhook(body, { id: 10_000 + i, shop });
}

export function orderNode(i: number, body: Record<string, unknown>): SandboxNode {
  return orderFromWebhook(body, { id: 20_000 + i });
}

/** Seeds `count` checkouts and, for every second one, its order; returns the webhook bodies. */
export function seedCarts(
  sandbox: ShopifyAdminSandbox,
  shop: string,
  count: number,
  updatedAtMs: (i: number) => number,
): { checkouts: Record<string, unknown>[]; orders: Record<string, unknown>[] } {
  const checkouts: Record<string, unknown>[] = [];
  const orders: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const c = checkoutBody(i, updatedAtMs(i), "421.88", shop);
    checkouts.push(c);
    if (i % 2 === 0) orders.push(orderBody(i, updatedAtMs(i) + 1000));
  }
  sandbox.putCheckouts(
    shop,
    checkouts.map((b, i) => checkoutNode(shop, i, b)),
  );
  sandbox.putOrders(
    shop,
    orders.map((b) => orderNode(Number(b["id"]) - 20_000, b)),
  );
  return { checkouts, orders };
}

export function reconcileEnv(
  sandbox: ShopifyAdminSandbox,
  shops: readonly string[],
  intervalMs: number,
): Record<string, string> {
  return {
    SHOPIFY_CLIENT_ID: "sandbox-client-id",
    SHOPIFY_CLIENT_SECRET: "sandbox-client-secret",
    SHOPIFY_SHOPS: shops.join(","),
    SHOPIFY_ADMIN_API_URL: sandbox.adminApiUrl,
    RECONCILE_INTERVAL_MS: String(intervalMs),
  };
}
