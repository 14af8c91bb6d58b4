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
import type { CartPayload, CheckoutPayload, LineItem, OrderPayload, Person } from "../shopify/payloads.ts";
import { TOPIC_RANK } from "./cart-event.ts";
import type { BuyerContact, CartEvent, CartStatus, MapResult, TopicFamily } from "./cart-event.ts";

export type { MapResult } from "./cart-event.ts";
import { formatDecimal, readDecimal, sumDecimals } from "./decimal.ts";
import { mapLineSet } from "./line-items.ts";
import type { Decimal } from "./decimal.ts";

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

/** Name of a cart without line items (or whose quantities add up to zero). */
export const EMPTY_CART_NAME = "Empty cart";

/** What a body says before the key, time and stamp are added. */
type Draft =
  | { kind: "unkeyed"; reason: string }
  | {
      kind: "keyed";
      token: string;
      status: CartStatus;
      props: Props;
      contact?: BuyerContact;
      checkoutToken?: string;
    };

/** Properties under construction, plus what was left out and why. */
interface Props {
  readonly values: Record<string, string>;
  readonly warnings: string[];
}

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
    json = JSON.parse(input.body.toString("utf8"));
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

function mapCart(cart: CartPayload): Draft {
  const token = asToken(cart.token) ?? asToken(cart.id);
  if (token === undefined) return { kind: "unkeyed", reason: "cart has no token" };
  const props = newProps();
  const lines = cart.line_items;
  if (lines !== null && lines !== undefined) {
    props.values.hs_cart_name = cartName(lines);
    const currency = lines
      .map(
        (line) =>
          line.line_price_set?.presentment_money?.currency_code ??
          line.price_set?.presentment_money?.currency_code,
      )
      .find((code) => nonEmpty(code) !== undefined);
    putText(props, "hs_currency_code", currency);
    putSum(props, "hs_total_price", lines, (line) =>
      either(line.line_price_set?.presentment_money?.amount, line.line_price),
    );
    putSum(props, "hs_cart_discount", lines, (line) =>
      either(line.total_discount_set?.presentment_money?.amount, line.total_discount),
    );
  }
  return { kind: "keyed", token, status: "open", props };
}

function mapCheckout(checkout: CheckoutPayload): Draft {
  const token = asToken(checkout.cart_token) ?? asToken(checkout.token);
  if (token === undefined) return { kind: "unkeyed", reason: "checkout has neither cart_token nor token" };
  const props = newProps();
  if (checkout.line_items !== null && checkout.line_items !== undefined) {
    props.values.hs_cart_name = cartName(checkout.line_items);
  }
  putText(props, "hs_currency_code", nonEmpty(checkout.presentment_currency) ?? checkout.currency);
  putAmount(props, "hs_total_price", checkout.total_price);
  putAmount(props, "hs_cart_discount", checkout.total_discounts);
  putAmount(props, "hs_tax", checkout.total_tax);
  putSum(props, "hs_shipping_cost", checkout.shipping_lines, (line) => line.price);
  putText(props, "hs_cart_url", checkout.abandoned_checkout_url);
  putAmount(props, "hs_subtotal_price", checkout.subtotal_price);
  putAttribution(props, checkout);
  const status: CartStatus = nonEmpty(checkout.completed_at) === undefined ? "checkout" : "completed";
  const checkoutToken = asToken(checkout.token);
  const link = checkoutToken !== undefined && checkoutToken !== token ? { checkoutToken } : {};
  return withContact({ kind: "keyed", token, status, props, ...link }, buyerContact(checkout));
}

function mapCheckoutDelete(deleted: { cart_token?: unknown; token?: unknown }): Draft {
  const token = asToken(deleted.cart_token) ?? asToken(deleted.token);
  if (token === undefined)
    return { kind: "unkeyed", reason: "checkouts/delete has neither cart_token nor token" };
  return { kind: "keyed", token, status: "deleted", props: newProps() };
}

function mapOrder(order: OrderPayload): Draft {
  const token = asToken(order.cart_token) ?? asToken(order.checkout_token);
  if (token === undefined) {
    return {
      kind: "unkeyed",
      reason: "order has neither cart_token nor checkout_token (POS or draft order)",
    };
  }
  const props = newProps();
  putText(props, "hs_currency_code", nonEmpty(order.presentment_currency) ?? order.currency);
  putAmount(
    props,
    "hs_total_price",
    either(order.total_price_set?.presentment_money?.amount, order.total_price),
  );
  putAmount(
    props,
    "hs_cart_discount",
    either(order.total_discounts_set?.presentment_money?.amount, order.total_discounts),
  );
  putAmount(props, "hs_tax", either(order.total_tax_set?.presentment_money?.amount, order.total_tax));
  putSum(props, "hs_shipping_cost", order.shipping_lines, (line) =>
    either(line.price_set?.presentment_money?.amount, line.price),
  );
  putAmount(
    props,
    "hs_subtotal_price",
    either(order.subtotal_price_set?.presentment_money?.amount, order.subtotal_price),
  );
  putAttribution(props, order);
  return withContact({ kind: "keyed", token, status: "completed", props }, buyerContact(order));
}

/** "<first title>", then " + N more" for further lines and " (Q items)" when the quantities add up to more than one. */
export function cartName(lines: readonly LineItem[]): string {
  let quantity = 0;
  for (const line of lines)
    quantity += typeof line.quantity === "number" && line.quantity >= 0 ? line.quantity : 1;
  const first = lines[0];
  if (first === undefined || quantity === 0) return EMPTY_CART_NAME;
  const title = nonEmpty(first.title?.trim()) ?? nonEmpty(first.presentment_title?.trim()) ?? "Untitled item";
  const more = lines.length > 1 ? ` + ${lines.length - 1} more` : "";
  const count = quantity > 1 ? ` (${quantity} items)` : "";
  return `${title}${more}${count}`;
}

/** The optional properties checkouts and orders share (SPEC §4, "where the portal has them"). */
function putAttribution(props: Props, payload: CheckoutPayload | OrderPayload): void {
  if (payload.discount_codes !== null && payload.discount_codes !== undefined) {
    const codes = payload.discount_codes
      .map((discount) => nonEmpty(discount.code))
      .filter((code) => code !== undefined);
    props.values.hs_discount_codes = codes.join(", ");
  }
  putInstant(props, "hs_external_created_date", payload.created_at);
  putInstant(props, "hs_external_modified_date", payload.updated_at);
  putText(props, "hs_landing_site", payload.landing_site);
  putText(props, "hs_referring_site", payload.referring_site);
  if (typeof payload.buyer_accepts_marketing === "boolean") {
    props.values.hs_buyer_accepts_marketing = String(payload.buyer_accepts_marketing);
  }
}

/** E-mail: `email`, else `customer.email`, else `contact_email`; names and phone per SPEC §4. */
function buyerContact(payload: CheckoutPayload | OrderPayload): BuyerContact | undefined {
  const customer = asPerson(payload.customer);
  const billing = asPerson(payload.billing_address);
  const email = [payload.email, customer?.email, payload.contact_email]
    .map(asEmail)
    .find((e) => e !== undefined);
  if (email === undefined) return undefined;
  const customerNamed = nonEmpty(customer?.first_name?.trim()) ?? nonEmpty(customer?.last_name?.trim());
  const named = customerNamed === undefined ? billing : customer;
  const firstname = nonEmpty(named?.first_name?.trim());
  const lastname = nonEmpty(named?.last_name?.trim());
  const phone = [customer?.phone, payload.phone, billing?.phone]
    .map((p) => nonEmpty(p?.trim()))
    .find((p) => p !== undefined);
  return {
    email,
    ...(firstname === undefined ? {} : { firstname }),
    ...(lastname === undefined ? {} : { lastname }),
    ...(phone === undefined ? {} : { phone }),
  };
}

function withContact(draft: Draft & { kind: "keyed" }, contact: BuyerContact | undefined): Draft {
  return contact === undefined ? draft : { ...draft, contact };
}

/**
 * An ISO 8601 instant ("2021-12-31T19:00:00-05:00", "2023-12-11T04:40:09.792Z", or Shopify's
 * X-Shopify-Triggered-At "2025-07-10T16:15:47.000000Z") as epoch ms, or undefined. Fractions are cut to
 * milliseconds before `Date.parse`, which does not take six digits everywhere; other formats are refused.
 */
export function parseInstantMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = INSTANT_PATTERN.exec(value.trim());
  if (match === null) return undefined;
  const [, dateTime, fraction = "", zone = ""] = match;
  const millis = fraction.slice(0, 3).padEnd(3, "0");
  const offset =
    zone === "Z" || zone === "z" ? "Z" : zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const ms = Date.parse(`${dateTime}.${millis}${offset}`);
  return Number.isFinite(ms) ? ms : undefined;
}

const INSTANT_PATTERN = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|z|[+-]\d{2}:?\d{2})$/;

function newProps(): Props {
  return { values: {}, warnings: [] };
}

function putText(props: Props, name: string, value: string | null | undefined): void {
  const text = nonEmpty(value);
  if (text !== undefined) props.values[name] = text;
}

function putAmount(props: Props, name: string, value: unknown): void {
  const read = readDecimal(value);
  if (read.kind === "ok") props.values[name] = formatDecimal(read.value);
  else if (read.kind === "malformed") props.warnings.push(`${name}: malformed amount "${read.input}"`);
}

/** Writes Σ pick(item); an empty list is a zero sum, an absent list writes nothing. */
function putSum<T>(
  props: Props,
  name: string,
  items: readonly T[] | null | undefined,
  pick: (item: T) => unknown,
): void {
  if (items === null || items === undefined) return;
  const terms: Decimal[] = [];
  for (const [index, item] of items.entries()) {
    const read = readDecimal(pick(item));
    if (read.kind === "ok") terms.push(read.value);
    else {
      const problem = read.kind === "absent" ? "has no amount" : `has malformed amount "${read.input}"`;
      props.warnings.push(`${name}: item ${index} ${problem}`);
      return;
    }
  }
  props.values[name] = formatDecimal(sumDecimals(terms));
}

function putInstant(props: Props, name: string, value: string | null | undefined): void {
  if (nonEmpty(value) === undefined) return;
  const ms = parseInstantMs(value);
  if (ms === undefined) props.warnings.push(`${name}: malformed date "${value}"`);
  else props.values[name] = new Date(ms).toISOString();
}

/** The first value that is present (not null, undefined or ""); MoneyBag presentment amount before the plain one. */
function either(preferred: unknown, fallback: unknown): unknown {
  return preferred === null || preferred === undefined || preferred === "" ? fallback : preferred;
}

/** Tokens are opaque non-empty strings; numbers are ids, not tokens. */
function asToken(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

function asEmail(value: string | null | undefined): string | undefined {
  const email = value?.trim().toLowerCase();
  return email !== undefined && EMAIL_PATTERN.test(email) ? email : undefined;
}

const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+$/;

function asPerson(value: Person | readonly unknown[] | null | undefined): Person | undefined {
  return value === null || value === undefined || Array.isArray(value) ? undefined : (value as Person);
}

function nonEmpty(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === "" ? undefined : value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
