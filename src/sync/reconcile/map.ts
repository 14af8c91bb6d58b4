/**
 * Turns what reconciliation reads from the Shopify Admin GraphQL API (SPEC §9) into the same `MapResult`
 * as a webhook of the same checkout or order. Pure: nodes in, values out; no I/O, no clock, never throws.
 *
 * How: each node is rewritten as the webhook body it corresponds to (GraphQL field names → REST names,
 * MoneyBags → presentment amounts) and given to the webhook mapping, so both paths share every property
 * rule. Only what the query carries is written: an abandoned checkout has no shipping lines (no
 * `hs_shipping_cost`), a line no discount, and fields whose GraphQL form differs from the webhook's (landing page, referrer,
 * marketing consent) are left to webhooks. The event is then stamped with the lowest topic rank, so at an
 * equal event time a webhook wins the tie (SPEC §9).
 *
 * Keys (SPEC §9): an abandoned checkout's cart token is the `abandonedCheckoutUrl` segment after
 * `/checkouts/ac/`; the older `/checkouts/<checkout token>/recover` shape names a checkout token, which
 * `cartTokenOf` (the links learned from checkout webhooks) turns into its cart token, else it is the token.
 * Orders: `cartToken`, else `checkoutToken`; neither is `unkeyed`.
 */
import { mapDelivery, type MapResult } from "../mapping.ts";

/** A node as the webhook delivery it stands for: kept like one (for dead letters), mapped like one. */
export interface ReconciledDelivery {
  readonly topic: "checkouts/update" | "orders/updated";
  /** The webhook-shaped body the mapping read (personal data: kept only as long as a delivery is). */
  readonly body: Buffer;
  readonly mapped: MapResult;
}

/** Topic rank of reconciliation events: below every webhook topic (carts 1, checkouts 2, orders 3). */
export const RECONCILE_TOPIC_RANK = 0;

export interface Money {
  readonly amount?: string | null;
  readonly currencyCode?: string | null;
}
export interface MoneyBag {
  readonly presentmentMoney?: Money | null;
  readonly shopMoney?: Money | null;
}
export interface GraphPerson {
  readonly email?: string | null;
  readonly firstName?: string | null;
  readonly lastName?: string | null;
  readonly phone?: string | null;
}

/**
 * A line of an abandoned checkout (the fields the query reads). Orders' lines are not read: each pass's
 * overlap would cost twice the points (bench/results.md, ninth session).
 */
export interface GraphLine {
  readonly title?: string | null;
  readonly variantTitle?: string | null;
  readonly quantity?: number | null;
  readonly sku?: string | null;
  readonly variant?: { readonly id?: string | null } | null;
  readonly product?: { readonly id?: string | null } | null;
  readonly originalUnitPriceSet?: MoneyBag | null;
}

export interface GraphLines {
  readonly nodes?: readonly GraphLine[] | null;
  readonly pageInfo?: { readonly hasNextPage?: boolean | null } | null;
}

export interface AbandonedCheckoutNode {
  readonly id: string;
  readonly abandonedCheckoutUrl?: string | null;
  readonly createdAt?: string | null;
  readonly updatedAt?: string | null;
  readonly completedAt?: string | null;
  readonly customer?: GraphPerson | null;
  readonly billingAddress?: GraphPerson | null;
  readonly discountCodes?: readonly string[] | null;
  readonly lineItems?: GraphLines | null;
  readonly subtotalPriceSet?: MoneyBag | null;
  readonly totalDiscountSet?: MoneyBag | null;
  readonly totalPriceSet?: MoneyBag | null;
  readonly totalTaxSet?: MoneyBag | null;
}

export interface OrderNode {
  readonly id: string;
  readonly createdAt?: string | null;
  readonly updatedAt?: string | null;
  readonly email?: string | null;
  readonly phone?: string | null;
  readonly cartToken?: string | null;
  readonly checkoutToken?: string | null;
  readonly customer?: GraphPerson | null;
  readonly billingAddress?: GraphPerson | null;
  readonly presentmentCurrencyCode?: string | null;
  readonly discountCodes?: readonly string[] | null;
  readonly totalPriceSet?: MoneyBag | null;
  readonly subtotalPriceSet?: MoneyBag | null;
  readonly totalTaxSet?: MoneyBag | null;
  readonly totalDiscountsSet?: MoneyBag | null;
  readonly totalShippingPriceSet?: MoneyBag | null;
}

/** Which token an abandoned checkout URL names, or undefined when it has neither shape. */
export function tokenFromCheckoutUrl(
  url: string | null | undefined,
): { kind: "cart" | "checkout"; token: string } | undefined {
  if (typeof url !== "string") return undefined;
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const current = /\/checkouts\/ac\/([^/]+)/.exec(path);
  if (current?.[1] !== undefined) return { kind: "cart", token: decodeURIComponent(current[1]) };
  const older = /\/checkouts\/([^/]+)\/recover/.exec(path);
  if (older?.[1] !== undefined) return { kind: "checkout", token: decodeURIComponent(older[1]) };
  return undefined;
}

export function mapAbandonedCheckout(
  shopDomain: string,
  node: AbandonedCheckoutNode,
  cartTokenOf: (checkoutToken: string) => string | undefined,
): ReconciledDelivery {
  const named = tokenFromCheckoutUrl(node.abandonedCheckoutUrl);
  if (named === undefined) {
    const reason = "abandoned checkout URL names neither a cart nor a checkout token";
    return { topic: "checkouts/update", body: Buffer.alloc(0), mapped: { kind: "unkeyed", reason } };
  }
  const cartToken = named.kind === "cart" ? named.token : cartTokenOf(named.token);
  const body = {
    ...(named.kind === "checkout" ? { token: named.token } : {}),
    ...(cartToken === undefined ? {} : { cart_token: cartToken }),
    created_at: node.createdAt,
    updated_at: node.updatedAt,
    completed_at: node.completedAt,
    abandoned_checkout_url: node.abandonedCheckoutUrl,
    customer: person(node.customer),
    billing_address: person(node.billingAddress),
    presentment_currency: node.totalPriceSet?.presentmentMoney?.currencyCode,
    total_price: amount(node.totalPriceSet),
    subtotal_price: amount(node.subtotalPriceSet),
    total_tax: amount(node.totalTaxSet),
    total_discounts: amount(node.totalDiscountSet),
    ...(node.discountCodes == null ? {} : { discount_codes: node.discountCodes.map((code) => ({ code })) }),
    ...webhookLines(node.lineItems),
  };
  const reconciled = asReconciled(shopDomain, "checkouts/update", body, node.id);
  return withoutProducts(node.lineItems) ? withoutLineSet(reconciled) : reconciled;
}

/** Lines read without their variant and product (a token without `read_products`): not even `null`. */
function withoutProducts(lines: GraphLines | null | undefined): boolean {
  return (lines?.nodes ?? []).some((l) => l.variant === undefined && l.product === undefined);
}

/**
 * The event without a line set: keyed by title, it would replace the webhooks' variant-keyed HubSpot line
 * items with others until the next webhook. Its lines still name the cart.
 */
function withoutLineSet(d: ReconciledDelivery): ReconciledDelivery {
  if (d.mapped.kind !== "event") return d;
  const { lines: _withoutLines, ...event } = d.mapped.event;
  return { ...d, mapped: { ...d.mapped, event } };
}

export function mapOrder(shopDomain: string, node: OrderNode): ReconciledDelivery {
  const shipping = amount(node.totalShippingPriceSet);
  const body = {
    cart_token: node.cartToken,
    checkout_token: node.checkoutToken,
    created_at: node.createdAt,
    updated_at: node.updatedAt,
    email: node.email,
    phone: node.phone,
    customer: person(node.customer),
    billing_address: person(node.billingAddress),
    presentment_currency: node.presentmentCurrencyCode,
    total_price_set: bag(node.totalPriceSet),
    subtotal_price_set: bag(node.subtotalPriceSet),
    total_tax_set: bag(node.totalTaxSet),
    total_discounts_set: bag(node.totalDiscountsSet),
    ...(shipping == null ? {} : { shipping_lines: [{ price: shipping }] }),
    ...(node.discountCodes == null ? {} : { discount_codes: node.discountCodes.map((code) => ({ code })) }),
    // No lines: the pass does not read them (queries.ts), so the order carries no line set.
  };
  return asReconciled(shopDomain, "orders/updated", body, node.id);
}

/**
 * The lines as a webhook's `line_items`, only when the list is complete: a cut-off one would give a wrong
 * cart name and replace the cart's line items with a part of them. Variant and product ids are the numeric
 * ids the webhooks carry (the end of their GIDs), so a line keeps the key, and HubSpot line item, its
 * webhooks gave it; a line's discount is not read (its property is left as HubSpot has it).
 */
function webhookLines(lines: GraphLines | null | undefined): { line_items?: object[] } {
  if (lines?.nodes == null || lines.pageInfo?.hasNextPage === true) return {};
  return {
    line_items: lines.nodes.map((l) => ({
      title: l.title,
      variant_title: l.variantTitle,
      quantity: l.quantity,
      sku: l.sku,
      variant_id: legacyId(l.variant?.id),
      product_id: legacyId(l.product?.id),
      price: amount(l.originalUnitPriceSet),
      price_set: bag(l.originalUnitPriceSet, true),
    })),
  };
}

/** `gid://shopify/ProductVariant/704912205188288575` → "704912205188288575" (kept whole as text). */
function legacyId(gid: string | null | undefined): string | undefined {
  return typeof gid === "string" ? /\/(\d+)$/.exec(gid)?.[1] : undefined;
}

function asReconciled(
  shopDomain: string,
  topic: ReconciledDelivery["topic"],
  json: object,
  nodeId: string,
): ReconciledDelivery {
  const body = Buffer.from(JSON.stringify(json));
  const mapped = mapDelivery({
    topic,
    shopDomain,
    body,
    webhookId: "",
    triggeredAt: undefined,
    // Only used when `updatedAt` is missing or malformed: the epoch, so such an event never wins.
    receivedAtMs: 0,
  });
  return { topic, body, mapped: restamp(mapped, nodeId) };
}

/** Lowest rank; the node id orders reconciliation events of equal time among themselves. */
function restamp(result: MapResult, nodeId: string): MapResult {
  if (result.kind !== "event") return result;
  const stamp = { ...result.event.stamp, topicRank: RECONCILE_TOPIC_RANK, webhookId: `reconcile:${nodeId}` };
  return { ...result, event: { ...result.event, stamp } };
}

function person(p: GraphPerson | null | undefined) {
  if (p == null) return null;
  return { email: p.email, first_name: p.firstName, last_name: p.lastName, phone: p.phone };
}

function amount(b: MoneyBag | null | undefined): string | null | undefined {
  return b?.presentmentMoney?.amount;
}

function bag(b: MoneyBag | null | undefined, withCurrency = false) {
  if (b == null) return null;
  const money = b.presentmentMoney;
  return {
    presentment_money: {
      amount: money?.amount,
      ...(withCurrency ? { currency_code: money?.currencyCode } : {}),
    },
  };
}
