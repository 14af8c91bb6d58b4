/**
 * The two Admin GraphQL queries reconciliation sends, and their page sizes (SPEC §9).
 *
 * Shopify charges a query its requested cost up front: 2 per connection plus `first` × the cost of one
 * node, an object 1, a scalar 0 (pageInfo free); the difference to the actual cost is refunded. A single
 * query may not cost more than 1,000. The node costs below are counted from the selections (a MoneyBag
 * and its presentmentMoney are 2), and a page is sized to stay under the limit with room to spare.
 */

/**
 * Lines read per abandoned checkout. One with more gets no line set and no cart name from here (a cut-off
 * list would replace the cart's line items with a part of them): its webhooks carry them.
 */
export const NODE_LINES = 10;

const MONEY = "presentmentMoney { amount currencyCode }";
const PERSON = "email firstName lastName phone";
/** A line as SPEC §10 keys and writes it: the variant's and product's ids carry the webhook's numeric ids. */
const LINE = `title variantTitle quantity sku variant { id } product { id } originalUnitPriceSet { ${MONEY} }`;
/** A line node 1 + variant 1 + product 1 + a MoneyBag 2. */
const LINE_COST = 1 + 1 + 1 + 2;
/**
 * A line without its variant and product, for a token whose scopes do not reach products (`read_products`):
 * Shopify refuses the whole query over those two fields. Enough for the cart name, not for a line set.
 */
const LINE_WITHOUT_PRODUCTS = `title variantTitle quantity sku originalUnitPriceSet { ${MONEY} }`;
const LINE_WITHOUT_PRODUCTS_COST = 1 + 2;

function checkoutsQuery(line: string): string {
  return `query ReconcileCheckouts($first: Int!, $after: String, $query: String) {
  abandonedCheckouts(first: $first, after: $after, query: $query, sortKey: ID) {
    nodes {
      id abandonedCheckoutUrl createdAt updatedAt completedAt discountCodes
      customer { ${PERSON} }
      billingAddress { firstName lastName phone }
      lineItems(first: ${NODE_LINES}) { nodes { ${line} } pageInfo { hasNextPage } }
      subtotalPriceSet { ${MONEY} }
      totalDiscountSet { ${MONEY} }
      totalPriceSet { ${MONEY} }
      totalTaxSet { ${MONEY} }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;
}

/** node 1 + customer 1 + billingAddress 1 + the lines' connection (2 + each line) + 4 MoneyBags × 2. */
function checkoutNodeCost(lineCost: number): number {
  return 1 + 1 + 1 + (2 + NODE_LINES * lineCost) + 4 * 2;
}

export const ABANDONED_CHECKOUTS_QUERY = checkoutsQuery(LINE);
export const CHECKOUT_NODE_COST = checkoutNodeCost(LINE_COST);
export const ABANDONED_CHECKOUTS_QUERY_WITHOUT_PRODUCTS = checkoutsQuery(LINE_WITHOUT_PRODUCTS);
export const CHECKOUT_NODE_COST_WITHOUT_PRODUCTS = checkoutNodeCost(LINE_WITHOUT_PRODUCTS_COST);

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

/**
 * node 1 + customer 1 + billingAddress 1 + 5 MoneyBags × 2. No lines: an order completes its cart, which no
 * abandoned-cart e-mail shows, and each pass reads again the orders of its few minutes of overlap — with
 * their lines, twice the points (bench: missed-change p95 3 → 5–8 s as passes got throttled).
 */
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
