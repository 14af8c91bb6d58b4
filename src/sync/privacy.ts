import type { DataSubject, Store } from "../store/store.ts";
import type { LogSink } from "./flusher.ts";

/**
 * Shopify's privacy topics: customers/redact erases what the store holds for one customer, shop/redact
 * erases everything for the shop, customers/data_request is acknowledged and logged with what we hold
 * (counts, never the data). Each answers once the erasure is committed.
 *
 * app/uninstalled erases nothing (SPEC §6): changes Shopify already got a 200 for are still sent; the
 * shop's data goes with shop/redact, which Shopify sends 48 hours after the uninstall.
 */
export const PRIVACY_TOPICS = new Set([
  "customers/redact",
  "shop/redact",
  "app/uninstalled",
  "customers/data_request",
]);

export async function handlePrivacyDelivery(
  store: Store,
  log: LogSink,
  delivery: { topic: string; shopDomain: string; body: Buffer },
): Promise<string | undefined> {
  if (!PRIVACY_TOPICS.has(delivery.topic)) return undefined;
  const shopDomain = delivery.shopDomain;
  if (delivery.topic === "app/uninstalled") {
    log.info({ topic: delivery.topic, shop: shopDomain }, "app uninstalled; pending carts are still sent");
    return "acknowledged";
  }
  if (delivery.topic === "shop/redact") {
    const erased = await store.redact({ shopDomain });
    log.info({ topic: delivery.topic, shop: shopDomain, erased }, "shop data erased");
    return "redacted";
  }
  const customer = readCustomer(delivery.body);
  if (customer === undefined) {
    log.warn(
      { topic: delivery.topic, shop: shopDomain },
      "privacy request without a customer e-mail or phone; nothing to match",
    );
    return "ignored";
  }
  const subject: DataSubject = { shopDomain, ...customer };
  if (delivery.topic === "customers/redact") {
    const erased = await store.redact(subject);
    log.info({ topic: delivery.topic, shop: shopDomain, erased }, "customer data erased");
    return "redacted";
  }
  const holds = await store.describeSubject(subject);
  log.info({ topic: delivery.topic, shop: shopDomain, holds }, "customer data request received");
  return "acknowledged";
}

function readCustomer(body: Buffer): { email?: string; phone?: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  const customer = (parsed as { customer?: { email?: unknown; phone?: unknown } } | null)?.customer;
  const email =
    typeof customer?.email === "string" && customer.email.trim() !== ""
      ? customer.email.trim().toLowerCase()
      : undefined;
  const phone =
    typeof customer?.phone === "string" && customer.phone.trim() !== "" ? customer.phone.trim() : undefined;
  if (email === undefined && phone === undefined) return undefined;
  return { ...(email ? { email } : {}), ...(phone ? { phone } : {}) };
}
