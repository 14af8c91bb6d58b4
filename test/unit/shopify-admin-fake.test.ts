/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- the sandbox's JSON answers are read field by field */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  startShopifyAdminSandbox,
  type SandboxNode,
  type ShopifyAdminSandbox,
} from "../fakes/shopify-admin.ts";

const SHOP = "fake-test.myshopify.com";
const URL_OF = (s: ShopifyAdminSandbox, version = "2026-10") =>
  `${s.url}/${SHOP}/admin/api/${version}/graphql.json`;

function order(id: number, updatedAt: string): SandboxNode {
  return {
    id: `gid://shopify/Order/${id}`,
    createdAt: "2026-11-01T00:00:00Z",
    updatedAt,
    cartToken: `cart-${id}`,
    email: "buyer@example.com",
    totalPriceSet: { presentmentMoney: { amount: "10.00", currencyCode: "EUR" } },
  };
}

async function grant(s: ShopifyAdminSandbox, shop = SHOP, secret = "sandbox-client-secret") {
  const res = await fetch(`${s.url}/${shop}/admin/oauth/access_token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: "sandbox-client-id",
      client_secret: secret,
    }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function gql(
  s: ShopifyAdminSandbox,
  token: string,
  query: string,
  variables: object = {},
  version?: string,
) {
  const res = await fetch(URL_OF(s, version), {
    method: "POST",
    headers: { "content-type": "application/json", "x-shopify-access-token": token },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const ORDERS = `query Q($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: ID) {
    nodes { id updatedAt cartToken totalPriceSet { presentmentMoney { amount } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

describe("Shopify Admin sandbox", () => {
  let s: ShopifyAdminSandbox;
  let token: string;
  before(async () => {
    s = await startShopifyAdminSandbox({
      bucketSize: 100,
      restoreRatePerS: 10,
      maxQueryCost: 100,
      permittedShops: [SHOP],
    });
    s.putOrders(SHOP, [
      order(3, "2026-11-03T00:00:00Z"),
      order(1, "2026-11-01T00:00:00Z"),
      order(2, "2026-11-02T00:00:00Z"),
    ]);
    const g = await grant(s);
    assert.equal(g.status, 200);
    token = g.json["access_token"] as string;
  });
  after(() => s.close());

  it("grants tokens with client credentials and refuses other shops and wrong secrets", async () => {
    assert.equal(g2(await grant(s, "other.myshopify.com")), "400 shop_not_permitted");
    assert.equal(g2(await grant(s, SHOP, "wrong")), "400 invalid_client");
    function g2(r: { status: number; json: Record<string, unknown> }): string {
      return `${r.status} ${String(r.json["error"])}`;
    }
  });

  it("answers 401 without a valid token and 403 for a forbidden shop", async () => {
    assert.equal((await gql(s, "shpat_nope", ORDERS, { first: 1 })).status, 401);
    s.forbid(SHOP, 403);
    assert.equal((await gql(s, token, ORDERS, { first: 1 })).status, 403);
    s.forbid(SHOP, undefined);
    assert.equal((await gql(s, token, ORDERS, { first: 1 })).status, 200);
  });

  it("pages with cursors, filters on updated_at and projects only the selection", async () => {
    const first = await gql(s, token, ORDERS, { first: 2, query: "updated_at:>'2026-11-01T12:00:00Z'" });
    const page = first.json["data"].orders;
    assert.deepEqual(
      page.nodes.map((n: { id: string }) => n.id),
      ["gid://shopify/Order/2", "gid://shopify/Order/3"],
    );
    assert.deepEqual(Object.keys(page.nodes[0]).sort(), ["cartToken", "id", "totalPriceSet", "updatedAt"]);
    assert.equal(page.pageInfo.hasNextPage, false);
    const all = await gql(s, token, ORDERS, { first: 1 });
    assert.equal(all.json["data"].orders.pageInfo.hasNextPage, true);
    const next = await gql(s, token, ORDERS, { first: 1, after: all.json["data"].orders.pageInfo.endCursor });
    assert.equal(next.json["data"].orders.nodes[0].id, "gid://shopify/Order/2");
  });

  it("charges the requested cost, refunds to the actual one, and reports throttleStatus", async () => {
    const before = s.available(SHOP);
    const r = await gql(s, token, ORDERS, { first: 10 });
    const cost = r.json["extensions"].cost;
    // 2 + 10 × (node 1 + totalPriceSet 1 + presentmentMoney 1)
    assert.equal(cost.requestedQueryCost, 32);
    // 3 orders returned: 2 + 3 × 3
    assert.equal(cost.actualQueryCost, 11);
    assert.ok(cost.throttleStatus.currentlyAvailable <= before - 11 + 1);
    assert.equal(cost.throttleStatus.maximumAvailable, 100);
    assert.equal(cost.throttleStatus.restoreRate, 10);
  });

  it("answers THROTTLED when the bucket cannot pay, MAX_COST_EXCEEDED over the single-query limit", async () => {
    const over = await gql(s, token, ORDERS, { first: 250 });
    assert.equal(over.json["errors"][0].extensions.code, "MAX_COST_EXCEEDED");
    assert.equal(over.json["data"], undefined);
    // 2 + 30 × 3 = 92 > what is left after draining.
    await gql(s, token, ORDERS, { first: 30 });
    const throttled = await gql(s, token, ORDERS, { first: 30 });
    assert.equal(throttled.status, 200);
    assert.equal(throttled.json["errors"][0].extensions.code, "THROTTLED");
    assert.equal(throttled.json["data"], undefined);
    assert.ok(throttled.json["extensions"].cost.throttleStatus.currentlyAvailable < 92);
  });

  it("has Order.cartToken only from 2026-07", async () => {
    const old = await gql(s, token, ORDERS, { first: 1 }, "2026-04");
    assert.match(old.json["errors"][0].message, /cartToken/);
  });
});
