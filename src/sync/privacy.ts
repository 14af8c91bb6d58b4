import type { DataSubject, Store } from "../store/store.ts";
import type { LogSink } from "./lane-types.ts";

/**
 * Shopify's privacy topics: customers/redact erases what the store holds for one customer, shop/redact
 * erases everything for the shop, customers/data_request is acknowledged and logged with what we hold
 * (counts, never the data). Each answers once the erasure is committed.
 *
 * app/uninstalled erases nothing (SPEC §6): changes Shopify already got a 200 for are still sent; the
 * shop's data goes with shop/redact, which Shopify sends 48 hours after the uninstall.
 *
 * The shop is the one the body names (`shop_domain`), which the HMAC covers, not the shop header, which it
 * does not: a signed redact request replayed under another shop's header erases only the shop it was for.
 * A body without one falls back to the header.
 */
export const PRIVACY_TOPICS = new Set([
  "customers/redact",
  "shop/redact",
  "app/uninstalled",
  "customers/data_request",
]);

/** The privacy topics that erase data (the raw deliveries an intake still keeps go with it). */
export const ERASURE_TOPICS = new Set(["customers/redact", "shop/redact"]);

export async function handlePrivacyDelivery(
  store: Store,
  log: LogSink,
  delivery: {
    topic: string;
    shopDomain: string;
    body: Buffer;
    webhookId?: string | undefined;
    receivedAtMs?: number;
    headers?: Readonly<Record<string, string>>;
  },
): Promise<string | undefined> {
  if (!PRIVACY_TOPICS.has(delivery.topic)) return undefined;
  const request = readRequest(delivery.body);
  const named = request === "unparseable" ? undefined : request.shopDomain;
  const shopDomain = named ?? delivery.shopDomain;
  if (named !== undefined && named !== delivery.shopDomain) {
    log.warn(
      { topic: delivery.topic, shop: named, header: delivery.shopDomain },
      "privacy request names another shop than its header; the body's (signed) shop is the one served",
    );
  }
  if (delivery.topic === "app/uninstalled") {
    log.info({ topic: delivery.topic, shop: shopDomain }, "app uninstalled; pending carts are still sent");
    return "acknowledged";
  }
  if (delivery.topic === "shop/redact") {
    const erased = await store.redact({ shopDomain });
    log.info({ topic: delivery.topic, shop: shopDomain, erased }, "shop data erased");
    return "redacted";
  }
  if (request === "unparseable") return keepUnreadable(store, log, delivery);
  const customer = request.customer;
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

/**
 * A genuine privacy request whose body cannot be read (not JSON, not an object) is Shopify's request all
 * the same: it is kept as a dead letter (the operator sees it and can act; it expires with the retention)
 * and answered 200 like any genuine body the bridge cannot map (SPEC §3), never silently dropped.
 */
async function keepUnreadable(
  store: Store,
  log: LogSink,
  delivery: Parameters<typeof handlePrivacyDelivery>[2],
): Promise<string> {
  const receivedAtMs = delivery.receivedAtMs ?? Date.now();
  const [outcome] = await store.ingestBatch([
    {
      webhookId: delivery.webhookId,
      topic: delivery.topic,
      shopDomain: delivery.shopDomain,
      receivedAtMs,
      headers: delivery.headers ?? {},
      body: delivery.body,
      mapped: { kind: "invalid", reason: `${delivery.topic} body is not a JSON object; nothing was erased` },
    },
  ]);
  log.warn(
    { topic: delivery.topic, shop: delivery.shopDomain, outcome },
    "privacy request unreadable; kept as a dead letter",
  );
  return outcome ?? "dead_lettered";
}

/** The shop a privacy request's body names, and its customer's e-mail or phone. */
function readRequest(
  body: Buffer,
): { shopDomain?: string; customer?: { email?: string; phone?: string } } | "unparseable" {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return "unparseable";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "unparseable";
  const domain = (parsed as { shop_domain?: unknown }).shop_domain;
  const shopDomain =
    typeof domain === "string" && domain.trim() !== "" ? domain.trim().toLowerCase() : undefined;
  const customer = readCustomer(parsed);
  return { ...(shopDomain ? { shopDomain } : {}), ...(customer ? { customer } : {}) };
}

function readCustomer(parsed: {
  customer?: { email?: unknown; phone?: unknown };
}): { email?: string; phone?: string } | undefined {
  const customer = parsed.customer;
  const email =
    typeof customer?.email === "string" && customer.email.trim() !== ""
      ? customer.email.trim().toLowerCase()
      : undefined;
  const phone =
    typeof customer?.phone === "string" && customer.phone.trim() !== "" ? customer.phone.trim() : undefined;
  if (email === undefined && phone === undefined) return undefined;
  return { ...(email ? { email } : {}), ...(phone ? { phone } : {}) };
}
