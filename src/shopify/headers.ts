/**
 * The Shopify delivery headers cartbridge reads (Node lower-cases incoming header names). Each is also
 * accepted without its `x-` prefix (`shopify-hmac-sha256`, `shopify-topic`, …), as Shopify's newer Events
 * deliveries send them (SPEC §4); when both forms are present the `x-` one is read.
 */
export const SHOPIFY_HEADERS = {
  hmac: "x-shopify-hmac-sha256",
  topic: "x-shopify-topic",
  shopDomain: "x-shopify-shop-domain",
  webhookId: "x-shopify-webhook-id",
  triggeredAt: "x-shopify-triggered-at",
  apiVersion: "x-shopify-api-version",
  eventId: "x-shopify-event-id",
} as const;

type IncomingHeaders = Record<string, string | string[] | undefined>;

export function headerValue(headers: IncomingHeaders, name: string): string | undefined {
  const value = singleValue(headers, name);
  if (value !== undefined || !name.startsWith("x-shopify-")) return value;
  return singleValue(headers, name.slice("x-".length));
}

function singleValue(headers: IncomingHeaders, name: string): string | undefined {
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  const trimmed = s.trim();
  return trimmed === "" ? undefined : trimmed;
}

const UNPREFIXED_HMAC = SHOPIFY_HEADERS.hmac.slice("x-".length);

/** The headers kept with a delivery: Shopify's own (never the HMAC) and the content type. */
export function headersToKeep(headers: IncomingHeaders): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === SHOPIFY_HEADERS.hmac || name === UNPREFIXED_HMAC) continue;
    if (!name.startsWith("x-shopify-") && !name.startsWith("shopify-") && name !== "content-type") continue;
    const s = Array.isArray(value) ? value.join(", ") : value;
    if (s !== undefined) kept[name] = s.slice(0, 1024);
  }
  return kept;
}
