/**
 * The two Admin GraphQL queries reconciliation sends, and their page sizes (SPEC §9).
 *
 * Shopify charges a query its requested cost up front: 2 per connection plus `first` × the cost of one
 * node, an object 1, a scalar 0 (pageInfo free); the difference to the actual cost is refunded. A single
 * query may not cost more than 1,000. The node costs below are counted from the selections (a MoneyBag
 * and its presentmentMoney are 2), and a page is sized to stay under the limit with room to spare.
 */

/** Lines read per checkout: enough for the cart name; a checkout with more gets no name from here. */
export const CHECKOUT_LINES = 10;

const MONEY = "presentmentMoney { amount currencyCode }";
const PERSON = "email firstName lastName phone";

export const ABANDONED_CHECKOUTS_QUERY = `query ReconcileCheckouts($first: Int!, $after: String, $query: String) {
  abandonedCheckouts(first: $first, after: $after, query: $query, sortKey: ID) {
    nodes {
      id abandonedCheckoutUrl createdAt updatedAt completedAt discountCodes
      customer { ${PERSON} }
      billingAddress { firstName lastName phone }
      lineItems(first: ${CHECKOUT_LINES}) { nodes { title quantity } pageInfo { hasNextPage } }
      subtotalPriceSet { ${MONEY} }
      totalDiscountSet { ${MONEY} }
      totalPriceSet { ${MONEY} }
      totalTaxSet { ${MONEY} }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** node 1 + customer 1 + billingAddress 1 + lineItems (2 + lines) + 4 MoneyBags × 2. */
export const CHECKOUT_NODE_COST = 1 + 1 + 1 + (2 + CHECKOUT_LINES) + 4 * 2;

export const ORDERS_QUERY = `query ReconcileOrders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: ID) {
    nodes {
      id createdAt updatedAt email phone cartToken checkoutToken presentmentCurrencyCode discountCodes
      customer { ${PERSON} }
      billingAddress { firstName lastName phone }
      totalPriceSet { ${MONEY} }
      subtotalPriceSet { ${MONEY} }
      totalTaxSet { ${MONEY} }
      totalDiscountsSet { ${MONEY} }
      totalShippingPriceSet { ${MONEY} }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** node 1 + customer 1 + billingAddress 1 + 5 MoneyBags × 2. */
export const ORDER_NODE_COST = 1 + 1 + 1 + 5 * 2;

export const SINGLE_QUERY_LIMIT = 1000;

/** The largest page whose requested cost stays under the single-query limit with 10 % to spare. */
export function pageSizeFor(nodeCost: number, limit = SINGLE_QUERY_LIMIT): number {
  return Math.max(1, Math.min(250, Math.floor((limit * 0.9 - 2) / nodeCost)));
}

export function requestedCostOf(first: number, nodeCost: number): number {
  return 2 + first * nodeCost;
}

/** Shopify search syntax for "updated after", e.g. `updated_at:>'2026-11-01T00:00:00Z'`. */
export function updatedSince(sinceMs: number): string {
  return `updated_at:>'${new Date(sinceMs).toISOString().replace(/\.\d{3}Z$/, "Z")}'`;
}
