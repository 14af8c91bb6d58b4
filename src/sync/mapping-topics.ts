/**
 * One mapper per topic family (SPEC §4): a validated Shopify payload in, the `Draft` it describes out — the
 * cart token, status and properties before mapping.ts adds the key, time and stamp. Pure.
 */
import type { CartPayload, CheckoutPayload, LineItem, OrderPayload } from "../shopify/payloads.ts";
import type { BuyerContact, CartStatus } from "./cart-event.ts";
import {
  asCount,
  asEmail,
  asPerson,
  asToken,
  currencyCode,
  either,
  newProps,
  nonEmpty,
  putAmount,
  putInstant,
  putSum,
  putText,
  type Props,
} from "./mapping-values.ts";

/** Name of a cart without line items (or whose quantities add up to zero). */
export const EMPTY_CART_NAME = "Empty cart";

/** What a body says before the key, time and stamp are added. */
export type Draft =
  | { kind: "unkeyed"; reason: string }
  | {
      kind: "keyed";
      token: string;
      status: CartStatus;
      props: Props;
      contact?: BuyerContact;
      checkoutToken?: string;
    };

export function mapCart(cart: CartPayload): Draft {
  const token = asToken(cart.token) ?? asToken(cart.id);
  if (token === undefined) return { kind: "unkeyed", reason: "cart has no token" };
  const props = newProps();
  const lines = cart.line_items;
  if (lines !== null && lines !== undefined) {
    props.values.hs_cart_name = cartName(lines);
    const currency = lines
      .map((line) =>
        currencyCode(
          line.line_price_set?.presentment_money?.currency_code ??
            line.price_set?.presentment_money?.currency_code,
        ),
      )
      .find((code) => code !== undefined);
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

export function mapCheckout(checkout: CheckoutPayload): Draft {
  const token = asToken(checkout.cart_token) ?? asToken(checkout.token);
  if (token === undefined) return { kind: "unkeyed", reason: "checkout has neither cart_token nor token" };
  const props = newProps();
  if (checkout.line_items !== null && checkout.line_items !== undefined) {
    props.values.hs_cart_name = cartName(checkout.line_items);
  }
  putText(
    props,
    "hs_currency_code",
    currencyCode(checkout.presentment_currency) ?? currencyCode(checkout.currency),
  );
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

export function mapCheckoutDelete(deleted: { cart_token?: unknown; token?: unknown }): Draft {
  const token = asToken(deleted.cart_token) ?? asToken(deleted.token);
  if (token === undefined)
    return { kind: "unkeyed", reason: "checkouts/delete has neither cart_token nor token" };
  return { kind: "keyed", token, status: "deleted", props: newProps() };
}

export function mapOrder(order: OrderPayload): Draft {
  const token = asToken(order.cart_token) ?? asToken(order.checkout_token);
  if (token === undefined) {
    return {
      kind: "unkeyed",
      reason: "order has neither cart_token nor checkout_token (POS or draft order)",
    };
  }
  const props = newProps();
  putText(
    props,
    "hs_currency_code",
    currencyCode(order.presentment_currency) ?? currencyCode(order.currency),
  );
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

/** Longer titles are cut in a cart's name: it is for reading (HubSpot refuses text over 65,536 characters). */
const MAX_TITLE_CHARS = 200;

function clipped(title: string): string {
  if (title.length <= MAX_TITLE_CHARS) return title;
  const chars = Array.from(title);
  return chars.length <= MAX_TITLE_CHARS ? title : `${chars.slice(0, MAX_TITLE_CHARS - 1).join("")}…`;
}

/** "<first title>", then " + N more" for further lines and " (Q items)" when the quantities add up to more than one. */
export function cartName(lines: readonly LineItem[]): string {
  let quantity = 0;
  for (const line of lines) quantity += asCount(line.quantity) ?? 1;
  const first = lines[0];
  if (first === undefined || quantity === 0) return EMPTY_CART_NAME;
  const title = clipped(
    nonEmpty(first.title?.trim()) ?? nonEmpty(first.presentment_title?.trim()) ?? "Untitled item",
  );
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
