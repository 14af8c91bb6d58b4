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
 * property and are reported in `warnings`; the rest of the delivery still counts. So do values of a type no
 * store should send (a number where text is read, a `null` line): each is left out and the rest is read
 * (see `fitted`), except in the key, money, currency and completion fields, where the delivery stays invalid.
 * A sum with one unusable term (a cart line without a price) is dropped whole: a partial sum would be a
 * wrong total.
 */
import type { z } from "zod";
import {
  KEY_FIELDS,
  STAND_IN_FIELDS,
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

/** Validates `json` with `schema` (see `fitted`) and maps it, or returns the reason it does not fit. */
function parsed<T>(
  schema: z.ZodType<T>,
  json: object,
  topic: string,
  map: (payload: T) => Draft,
): Draft | string {
  const fit = fitted(schema, json);
  if (typeof fit === "string") return `${topic} body does not match its schema at ${fit}`;
  const draft = map(fit.data);
  if (draft.kind === "keyed") draft.props.warnings.push(...fit.leftOut);
  return draft;
}

/** The body itself, or a strict field (shopify/payloads.ts): its wrong type makes the delivery invalid. */
const isStrict = (path: readonly PropertyKey[]): boolean =>
  path.length === 0 ||
  (path.length === 1 && KEY_FIELDS.has(path[0]!)) ||
  path.some((key) => STAND_IN_FIELDS.has(key));
/** At most this many values are left out in one round (each copies the objects along its path). */
const MAX_LEFT_OUT = 50;

/**
 * `json` validated by `schema`. A value of a type no store should send is left out and named in `leftOut`
 * ("line_items[].title: …", never the value), and the rest is validated again: a field is deleted, a list
 * element becomes an empty object (so a sum over the list is dropped whole, never made partial), on copies
 * of the objects along its path. A strict field of the wrong type (`isStrict`), dozens of values at once or
 * more rounds than a body's nesting needs return the reason instead ("<where>: <zod's message>").
 */
function fitted<T>(schema: z.ZodType<T>, json: object): { data: T; leftOut: string[] } | string {
  let input = json;
  const leftOut: string[] = [];
  for (let round = 0; ; round++) {
    const result = schema.safeParse(input);
    if (result.success) return { data: result.data, leftOut };
    const issues = result.error.issues.flatMap((issue) => innermost(issue));
    // Past a few rounds, or dozens of values at once, the body is not a store's with a slip in it.
    const fatal =
      issues.find((i) => isStrict(i.path)) ??
      (round === 4 || issues.length > MAX_LEFT_OUT ? issues[0] : undefined);
    if (fatal !== undefined) {
      const where = fatal.path.length === 0 ? "body" : fatal.path.map(String).join(".");
      return `${where}: ${fatal.message}`;
    }
    for (const issue of issues) {
      input = leftOutAt(input, issue.path) as object;
      const where = issue.path.map((k) => (typeof k === "number" ? "[]" : `.${String(k)}`)).join("");
      leftOut.push(`${where.replace(/^\./, "")}: left out, ${issue.message}`);
    }
  }
}

/**
 * The issue where it lies: when no option of a union fit (`customer` is a person or `[]`), but one option
 * failed only inside its value (`customer.first_name: 7`), that option's issues, so only the field goes.
 */
function innermost(issue: z.core.$ZodIssue): Array<Pick<z.core.$ZodIssue, "path" | "message">> {
  if (issue.code === "invalid_union") {
    const inside = issue.errors.find((option) => option.length > 0 && option.every((i) => i.path.length > 0));
    if (inside !== undefined) {
      return inside.flatMap((i) => innermost({ ...i, path: [...issue.path, ...i.path] }));
    }
  }
  return [{ path: issue.path, message: issue.message }];
}

/**
 * `node` without the value at `path` (a list element becomes `{}`): the objects and lists along the path are
 * copied, nothing is changed in place; a path that leads nowhere leaves it as it is.
 */
function leftOutAt(node: unknown, path: readonly PropertyKey[]): unknown {
  const [key, ...rest] = path;
  if (key === undefined || typeof node !== "object" || node === null) return node;
  if (Array.isArray(node)) {
    if (typeof key !== "number" || key >= node.length) return node;
    const copy: unknown[] = [...(node as unknown[])];
    copy[key] = rest.length === 0 ? {} : leftOutAt(node[key], rest);
    return copy;
  }
  const copy = { ...node } as Record<PropertyKey, unknown>;
  if (rest.length === 0) delete copy[key];
  else copy[key] = leftOutAt(copy[key], rest);
  return copy;
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
function parseBody(raw: string): unknown {
  // A UTF-8 byte order mark, which some proxies and tools add, is not JSON (RFC 8259 lets a parser skip it).
  const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
  if (!ANY_LONG_ID.test(text)) return JSON.parse(text);
  return JSON.parse(text.replace(LONG_LINE_ID, '$1"$2"'));
}
