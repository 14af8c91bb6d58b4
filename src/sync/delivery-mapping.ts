import { createHash } from "node:crypto";
import { mapDelivery, type MapResult } from "./mapping.ts";

/**
 * The one way a verified delivery becomes a `MapResult`, shared by live ingest (`http/webhooks.ts`) and
 * dead-letter replay (`sync/replay.ts`), so a replayed delivery is ordered and filtered exactly as it was
 * when it arrived:
 * - ties between equal-time events break on the webhook id, or, when Shopify sent none, on the body's
 *   SHA-256 digest (so every delivery order gives the same cart);
 * - with contact sync off (`HUBSPOT_SYNC_CONTACTS=false`) the buyer is dropped before anything is stored,
 *   and with line item sync off (`HUBSPOT_SYNC_LINE_ITEMS=false`) the line set.
 */
export interface VerifiedDeliveryInput {
  readonly topic: string;
  readonly shopDomain: string;
  readonly body: Buffer;
  readonly webhookId: string | undefined;
  readonly triggeredAt: string | undefined;
  readonly receivedAtMs: number;
  readonly syncContacts: boolean;
  /** Default true. */
  readonly syncLineItems?: boolean;
}

export function mapVerifiedDelivery(input: VerifiedDeliveryInput): MapResult {
  const mapped = mapDelivery({
    topic: input.topic,
    shopDomain: input.shopDomain,
    body: input.body,
    webhookId: input.webhookId ?? bodyDigest(input.body),
    triggeredAt: input.triggeredAt,
    receivedAtMs: input.receivedAtMs,
  });
  if (mapped.kind !== "event") return mapped;
  let event = mapped.event;
  if (!input.syncContacts && event.contact !== undefined) {
    const { contact: _dropped, ...rest } = event;
    event = rest;
  }
  if (input.syncLineItems === false && event.lines !== undefined) {
    const { lines: _dropped, ...rest } = event;
    event = rest;
  }
  return event === mapped.event ? mapped : { ...mapped, event };
}

/** Hex SHA-256 of the raw body: the tie-breaker for deliveries without a webhook id. */
export function bodyDigest(body: Buffer): string {
  return createHash("sha256").update(body).digest("hex");
}
