/** The Shopify delivery headers cartbridge reads (Node lower-cases incoming header names). */
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
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  const trimmed = s.trim();
  return trimmed === "" ? undefined : trimmed;
}

/** The headers kept with a delivery: Shopify's own (never the HMAC) and the content type. */
export function headersToKeep(headers: IncomingHeaders): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === SHOPIFY_HEADERS.hmac) continue;
    if (!name.startsWith("x-shopify-") && name !== "content-type") continue;
    const s = Array.isArray(value) ? value.join(", ") : value;
    if (s !== undefined) kept[name] = s.slice(0, 1024);
  }
  return kept;
}
