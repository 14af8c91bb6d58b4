/**
 * Turns one verified Shopify delivery into the `CartEvent` it describes (SPEC §4). Pure: bytes and headers
 * in, a `MapResult` out; no I/O, no clock, never throws.
 *
 * Outcomes
 * - event: a cart change, keyed "<shop domain, trimmed and lower-cased>:<token>".
 * - unkeyed: a mapped topic whose body has no usable token (POS and draft orders); changes nothing.
 * - unhandled: a topic this module does not map (compliance topics, app/uninstalled, …); checked before the body.
 * - invalid: genuine but unusable — empty body, not JSON, not a JSON object, a field of an impossible type.
 *
 * Values a delivery carries but that are malformed (an amount "abc", a date "yesterday") drop only their own
 * property and are reported in `warnings`; the rest of the delivery still counts. A sum with one unusable
 * term (a cart line without a price) is dropped whole: a partial sum would be a wrong total.
 */
import type { z } from "zod";
import {
  cartPayloadSchema,
  checkoutDeletePayloadSchema,
  checkoutPayloadSchema,
  orderPayloadSchema,
} from "../shopify/payloads.ts";
import { TOPIC_RANK } from "./cart-event.ts";
import type { CartEvent, MapResult, TopicFamily } from "./cart-event.ts";
import { mapLineSet } from "./line-items.ts";
import { mapCart, mapCheckout, mapCheckoutDelete, mapOrder, type Draft } from "./mapping-topics.ts";
import { parseInstantMs } from "./mapping-values.ts";

export type { MapResult } from "./cart-event.ts";
export { cartName, EMPTY_CART_NAME } from "./mapping-topics.ts";
export { parseInstantMs } from "./mapping-values.ts";

export interface MapInput {
  topic: string;
  shopDomain: string;
  body: Buffer;
  webhookId: string;
  triggeredAt: string | undefined;
  receivedAtMs: number;
}

export const MAPPED_TOPICS: readonly string[] = [
  "carts/create",
  "carts/update",
  "checkouts/create",
  "checkouts/update",
  "checkouts/delete",
  "orders/create",
  "orders/updated",
  "orders/paid",
];

export function mapDelivery(input: MapInput): MapResult {
  try {
    return mapUnchecked(input);
  } catch (error) {
    // A bug, not an input problem; still a value, so the delivery becomes a replayable dead letter.
    return { kind: "invalid", reason: `mapping failed unexpectedly: ${errorMessage(error)}` };
  }
}

function mapUnchecked(input: MapInput): MapResult {
  const topic = input.topic.trim().toLowerCase();
  if (!MAPPED_TOPICS.includes(topic)) return { kind: "unhandled" };
  const family = topic.slice(0, topic.indexOf("/")) as TopicFamily;
  const shop = input.shopDomain.trim().toLowerCase();
  if (shop === "") return { kind: "invalid", reason: "shop domain is empty" };
  if (input.body.length === 0) return { kind: "invalid", reason: "body is empty" };

  let json: unknown;
  try {
    json = parseBody(input.body.toString("utf8"));
  } catch {
    // V8's message quotes the body; reasons end up in logs, so it is left out.
    return { kind: "invalid", reason: "body is not valid JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return {
      kind: "invalid",
      reason: `body is JSON ${json === null ? "null" : Array.isArray(json) ? "array" : typeof json}, not an object`,
    };
  }

  let draft: Draft | string;
  if (family === "carts") draft = parsed(cartPayloadSchema, json, topic, mapCart);
  else if (family === "orders") draft = parsed(orderPayloadSchema, json, topic, mapOrder);
  else if (topic === "checkouts/delete")
    draft = parsed(checkoutDeletePayloadSchema, json, topic, mapCheckoutDelete);
  else draft = parsed(checkoutPayloadSchema, json, topic, mapCheckout);
  if (typeof draft === "string") return { kind: "invalid", reason: draft };
  if (draft.kind === "unkeyed") return draft;

  const { values, warnings } = draft.props;
  const updatedAt = (json as { updated_at?: unknown }).updated_at;
  const timeMs = parseInstantMs(updatedAt) ?? parseInstantMs(input.triggeredAt) ?? input.receivedAtMs;
  const key = `${shop}:${draft.token}`;
  const lines = mapLineSet(topic, json as Record<string, unknown>, key);
  const event: CartEvent = {
    key,
    shopDomain: shop,
    token: draft.token,
    status: draft.status,
    stamp: { timeMs, topicRank: TOPIC_RANK[family], webhookId: input.webhookId },
    properties: { hs_external_cart_id: draft.token, hs_source_store: shop, ...values },
    ...(draft.contact === undefined ? {} : { contact: draft.contact }),
    ...(draft.checkoutToken === undefined ? {} : { checkoutToken: draft.checkoutToken }),
    ...(lines === undefined ? {} : { lines }),
  };
  return warnings.length === 0 ? { kind: "event", event } : { kind: "event", event, warnings };
}

/** Validates `json` with `schema` and maps it, or returns the reason it does not fit. */
function parsed<T>(
  schema: z.ZodType<T>,
  json: unknown,
  topic: string,
  map: (payload: T) => Draft,
): Draft | string {
  const result = schema.safeParse(json);
  if (result.success) return map(result.data);
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? "body" : issue.path.map(String).join(".");
  return `${topic} body does not match its schema at ${where}: ${issue?.message ?? "invalid"}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A cheap first test (about 1 µs on a 7 kB body: its literal start is searched fast) for an `…_id` integer
 * of 16 digits or more; only bodies that pass it are searched for the ids that matter (about 4 µs).
 */
const ANY_LONG_ID = /_id"\s*:\s*-?\d{16}/;
/** `"variant_id": 704912205188288575` (or product_id), a whole number of 16 digits or more, in $2. */
const LONG_LINE_ID = /("(?:variant_id|product_id)"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g;

/**
 * JSON.parse, but `variant_id` and `product_id` integers of 16 digits or more are kept as their exact
 * digits (a string) instead of rounded to a double: they name line items (SPEC §10), and two rounded to
 * one double would swap HubSpot line items. They are quoted in the text before parsing (a key's quotes
 * inside a JSON string are escaped, so only real keys match); a reviver reading each value's source
 * would cost about 6 times the parse. Bodies without such ids (all real ones today) parse as they are.
 */
function parseBody(text: string): unknown {
  if (!ANY_LONG_ID.test(text)) return JSON.parse(text);
  return JSON.parse(text.replace(LONG_LINE_ID, '$1"$2"'));
}
