import type { LineDraft } from "./line-items.ts";

/**
 * The value every delivery is turned into: one change to one HubSpot cart.
 *
 * Terminology
 * - delivery: one HTTP POST from Shopify (identified by X-Shopify-Webhook-Id).
 * - event: what a delivery says about one cart, after mapping (`CartEvent`).
 * - key: the cart's identity, "<shop domain>:<token>", written to HUBSPOT_CART_ID_PROPERTY.
 * - stamp: the (event time, topic rank, webhook id) triple that orders events; larger wins.
 */

/** Cart statuses in their forward-only order: a cart's status is the highest any event carried. */
export const CART_STATUSES = ["open", "checkout", "deleted", "completed"] as const;
export type CartStatus = (typeof CART_STATUSES)[number];

export function statusRank(status: CartStatus): number {
  return CART_STATUSES.indexOf(status);
}

/** Topic families in tie-break order: orders > checkouts > carts. */
export const TOPIC_RANK = { carts: 1, checkouts: 2, orders: 3 } as const;
export type TopicFamily = keyof typeof TOPIC_RANK;

/** Orders events; compare with `compareStamps`. */
export interface EventStamp {
  /** Event time as epoch milliseconds (payload updated_at, else X-Shopify-Triggered-At, else receive time). */
  readonly timeMs: number;
  /** TOPIC_RANK of the delivery's topic family. */
  readonly topicRank: number;
  /** X-Shopify-Webhook-Id (empty when Shopify sent none). */
  readonly webhookId: string;
}

export function compareStamps(a: EventStamp, b: EventStamp): number {
  if (a.timeMs !== b.timeMs) return a.timeMs < b.timeMs ? -1 : 1;
  if (a.topicRank !== b.topicRank) return a.topicRank < b.topicRank ? -1 : 1;
  if (a.webhookId === b.webhookId) return 0;
  return a.webhookId < b.webhookId ? -1 : 1;
}

/** The buyer a checkout or order names; personal data, kept only until it is sent. */
export interface BuyerContact {
  readonly email: string;
  readonly firstname?: string;
  readonly lastname?: string;
  readonly phone?: string;
}

export interface CartEvent {
  /** "<shop domain>:<token>" */
  readonly key: string;
  readonly shopDomain: string;
  readonly token: string;
  readonly status: CartStatus;
  readonly stamp: EventStamp;
  /**
   * HubSpot property values this event sets (strings, exact decimals), excluding the id property and
   * hs_external_status, which the sender adds from `key` and the merged status. Optional properties
   * (hs_subtotal_price etc.) are included whenever the payload has them; the sender drops what the portal lacks.
   */
  readonly properties: Readonly<Record<string, string>>;
  readonly contact?: BuyerContact;
  /** checkouts/*: the checkout token when the key uses the cart token (a link reconciliation learns, §9). */
  readonly checkoutToken?: string;
  /** The event's line set (SPEC §10), when it carries `line_items`; see sync/line-items.ts. */
  readonly lines?: readonly LineDraft[];
}

/** What mapping makes of one delivery (sync/mapping.ts); the store records it as it is. */
export type MapResult =
  /** `warnings` names properties left out because the delivery carried them malformed. */
  | { kind: "event"; event: CartEvent; warnings?: readonly string[] }
  | { kind: "unkeyed"; reason: string }
  | { kind: "unhandled" }
  | { kind: "invalid"; reason: string };
