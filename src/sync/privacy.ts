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
 * The shop is the header's (SPEC §3), but the topic and shop headers are not covered by the HMAC, the body
 * is: an erasure whose body names another shop (a real `<shop>.myshopify.com`, not the docs samples'
 * `{shop}` placeholder), or whose body is another topic's (a customer request sent as shop/redact, a data
 * request sent as customers/redact, a cart or order), erases nothing. It is kept as a dead letter with the
 * reason, for the operator, and answered 200 like any genuine body the bridge cannot use.
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
  const shopDomain = delivery.shopDomain;
  const request = readRequest(delivery.body);
  if (request !== "unparseable" && ERASURE_TOPICS.has(delivery.topic)) {
    const problem = erasureProblem(delivery.topic, shopDomain, request);
    if (problem !== undefined)
      return keepAsDeadLetter(
        store,
        log,
        delivery,
        `${problem}; nothing was erased`,
        "does not fit its headers",
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
  if (request === "unparseable")
    return keepAsDeadLetter(
      store,
      log,
      delivery,
      `${delivery.topic} body is not a JSON object; nothing was erased`,
      "unreadable",
    );
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

/** A shop domain as Shopify sends it (the docs samples' `{shop}.myshopify.com` is not one). */
const SHOP_DOMAIN = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;

/** Keys that only another topic's body has: what an erasure sent under a swapped topic header carries. */
const FOREIGN_KEYS: Readonly<Record<string, readonly string[]>> = {
  "shop/redact": ["customer", "orders_to_redact", "data_request", "token", "cart_token", "line_items"],
  "customers/redact": ["data_request", "orders_requested", "token", "cart_token", "line_items"],
};

/** Why an erasure's signed body does not fit its unsigned headers, or undefined when it does. */
function erasureProblem(topic: string, shopDomain: string, request: PrivacyRequest): string | undefined {
  const named = request.shopDomain;
  if (named !== undefined && SHOP_DOMAIN.test(named) && named !== shopDomain)
    return `${topic} body is for ${named}, its header for ${shopDomain}`;
  const foreign = (FOREIGN_KEYS[topic] ?? []).filter((k) => request.keys.has(k));
  if (foreign.length > 0) return `${topic} body has ${foreign.join(", ")}: it is another topic's`;
  return undefined;
}

/**
 * A genuine privacy request the bridge cannot act on (its body unreadable, or not fitting its headers) is
 * kept as a dead letter with `reason` (the operator sees it and can act; it expires with the retention) and
 * answered 200 like any genuine body the bridge cannot map (SPEC §3), never silently dropped.
 */
async function keepAsDeadLetter(
  store: Store,
  log: LogSink,
  delivery: Parameters<typeof handlePrivacyDelivery>[2],
  reason: string,
  why: string,
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
      mapped: { kind: "invalid", reason },
    },
  ]);
  log.warn(
    { topic: delivery.topic, shop: delivery.shopDomain, outcome, reason },
    `privacy request ${why}; kept as a dead letter`,
  );
  return outcome ?? "dead_lettered";
}

/** What a privacy request's body says: the shop it names, its customer's e-mail or phone, its keys. */
interface PrivacyRequest {
  readonly shopDomain?: string;
  readonly customer?: { email?: string; phone?: string };
  readonly keys: ReadonlySet<string>;
}

function readRequest(body: Buffer): PrivacyRequest | "unparseable" {
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
  return {
    ...(shopDomain ? { shopDomain } : {}),
    ...(customer ? { customer } : {}),
    keys: new Set(Object.keys(parsed)),
  };
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
