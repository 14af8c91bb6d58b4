import type { IngestItem } from "../../src/store/store.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { checkoutBody, TEST_SHOP } from "./shopify.ts";

/** The shop and the receipt time of the deliveries `cartItem` builds. */
export const SHOP = "example.myshopify.com";
export const T0 = Date.UTC(2030, 0, 1);

/** A mapped carts/update delivery of cart `token` with one line, its body padded by `padBytes` spaces. */
export function cartItem(token: string, webhookId: string, padBytes = 0): IngestItem {
  const body = Buffer.from(
    JSON.stringify({
      token,
      updated_at: new Date(T0).toISOString(),
      note: " ".repeat(padBytes),
      line_items: [{ title: "Sock", quantity: 1, line_price: "10.00" }],
    }),
  );
  const mapped = mapDelivery({
    topic: "carts/update",
    shopDomain: SHOP,
    body,
    webhookId,
    triggeredAt: undefined,
    receivedAtMs: T0,
  });
  return { webhookId, topic: "carts/update", shopDomain: SHOP, receivedAtMs: T0, headers: {}, body, mapped };
}

/** A verified, mapped checkouts/update delivery of cart `token` (webhook id `token`), as the intake hands it on. */
export function checkoutItem(token: string, receivedAtMs: number): IngestItem {
  const body = Buffer.from(checkoutBody(token));
  const mapped = mapDelivery({
    topic: "checkouts/update",
    shopDomain: TEST_SHOP,
    body,
    webhookId: token,
    triggeredAt: undefined,
    receivedAtMs,
  });
  const delivery = { webhookId: token, topic: "checkouts/update", shopDomain: TEST_SHOP, receivedAtMs };
  return { ...delivery, headers: {}, body, mapped };
}
