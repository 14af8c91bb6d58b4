/**
 * zod schemas for the parts of Shopify cart, checkout and order webhook bodies that the mapping reads —
 * nothing else. Lenient by design, because real stores and API versions 2023-07…2026-04 differ:
 * - every object is loose (unknown keys pass through untouched and are never walked);
 * - every field is optional and nullable (`customer` absent or null, `email: null`, no `id` in 2026-04
 *   checkouts, `cart_token: null` on orders);
 * - money is a string or a number (its format is checked later, by `readDecimal`, so a malformed amount
 *   drops one property instead of the delivery);
 * - tokens are strings or numbers (only non-empty strings are used as tokens), and so are quantities (a
 *   quantity that is no count drops only what it feeds);
 * - an empty `customer` or `billing_address` may arrive as `[]` (the `shipping_address: []` quirk), read as none.
 * A field we read with a type no store sends (e.g. `line_items: "x"`, an e-mail that is a number) is left
 * out by the mapping, which reads the rest (sync/mapping.ts, `fitted`); only a strict field (below: a token,
 * an amount, a currency, `completed_at`) of an impossible type makes the body invalid, a dead letter
 * carrying zod's message.
 */
import { z } from "zod";

/**
 * Strict fields (sync/mapping.ts, `fitted`): a value of the wrong type there makes the delivery invalid (a
 * dead letter to replay once the mapping copes) rather than being left out, as other fields' are:
 * - the cart's key (left out, the delivery would be unkeyed and lost unseen);
 * - money, currencies and completion, anywhere in the body: another field would stand in for the one left
 *   out (shop money for presentment money, `currency` for `presentment_currency`, no `completed_at` for a
 *   paid checkout) and write a wrong value where the right one is unknown.
 */
export const KEY_FIELDS: ReadonlySet<PropertyKey> = new Set(["token", "cart_token", "checkout_token", "id"]);
export const STAND_IN_FIELDS: ReadonlySet<PropertyKey> = new Set([
  "total_price",
  "total_price_set",
  "subtotal_price",
  "subtotal_price_set",
  "total_tax",
  "total_tax_set",
  "total_discounts",
  "total_discounts_set",
  "line_price",
  "line_price_set",
  "price",
  "price_set",
  "total_discount",
  "total_discount_set",
  "shop_money",
  "presentment_money",
  "amount",
  "currency_code",
  "currency",
  "presentment_currency",
  "completed_at",
]);

const text = z.string().nullish();
const flag = z.boolean().nullish();
const money = z.union([z.string(), z.number()]).nullish();
const token = z.union([z.string(), z.number()]).nullish();

const moneyAmountSchema = z.looseObject({ amount: money, currency_code: text });

/** A Shopify MoneyBag: the amount in the shop's and in the buyer's (presentment) currency. */
const moneyBagSchema = z.looseObject({
  shop_money: moneyAmountSchema.nullish(),
  presentment_money: moneyAmountSchema.nullish(),
});
export type MoneyBag = z.infer<typeof moneyBagSchema>;

const personSchema = z.looseObject({ email: text, first_name: text, last_name: text, phone: text });
export type Person = z.infer<typeof personSchema>;

/** A person-like object, or `[]` which some stores send for "none". */
const personOrEmpty = z.union([personSchema, z.array(z.unknown())]).nullish();

/** Cart and checkout line items (checkout lines have no MoneyBags; cart lines have no presentment_title). */
const lineItemSchema = z.looseObject({
  title: text,
  presentment_title: text,
  quantity: z.union([z.number(), z.string()]).nullish(),
  line_price: money,
  line_price_set: moneyBagSchema.nullish(),
  price_set: moneyBagSchema.nullish(),
  total_discount: money,
  total_discount_set: moneyBagSchema.nullish(),
});
export type LineItem = z.infer<typeof lineItemSchema>;

const shippingLineSchema = z.looseObject({ price: money, price_set: moneyBagSchema.nullish() });
const discountCodeSchema = z.looseObject({ code: text });

export const cartPayloadSchema = z.looseObject({
  id: token,
  token,
  updated_at: text,
  line_items: z.array(lineItemSchema).nullish(),
});
export type CartPayload = z.infer<typeof cartPayloadSchema>;

/** Fields checkouts and orders share: the buyer, currencies, shipping, discounts, attribution. */
const purchaseFields = {
  updated_at: text,
  created_at: text,
  email: text,
  contact_email: text,
  phone: text,
  customer: personOrEmpty,
  billing_address: personOrEmpty,
  currency: text,
  presentment_currency: text,
  total_price: money,
  subtotal_price: money,
  total_tax: money,
  total_discounts: money,
  shipping_lines: z.array(shippingLineSchema).nullish(),
  discount_codes: z.array(discountCodeSchema).nullish(),
  landing_site: text,
  referring_site: text,
  buyer_accepts_marketing: flag,
};

export const checkoutPayloadSchema = z.looseObject({
  ...purchaseFields,
  token,
  cart_token: token,
  completed_at: text,
  abandoned_checkout_url: text,
  line_items: z.array(lineItemSchema).nullish(),
});
export type CheckoutPayload = z.infer<typeof checkoutPayloadSchema>;

/** `checkouts/delete` is tiny: `id`, `cart_token`, totals — and no `token` (kept here in case one appears). */
export const checkoutDeletePayloadSchema = z.looseObject({ cart_token: token, token, updated_at: text });
export type CheckoutDeletePayload = z.infer<typeof checkoutDeletePayloadSchema>;

export const orderPayloadSchema = z.looseObject({
  ...purchaseFields,
  cart_token: token,
  checkout_token: token,
  total_price_set: moneyBagSchema.nullish(),
  subtotal_price_set: moneyBagSchema.nullish(),
  total_tax_set: moneyBagSchema.nullish(),
  total_discounts_set: moneyBagSchema.nullish(),
});
export type OrderPayload = z.infer<typeof orderPayloadSchema>;
