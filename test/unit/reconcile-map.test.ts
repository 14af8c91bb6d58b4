import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  mapAbandonedCheckout,
  mapOrder,
  RECONCILE_TOPIC_RANK,
  tokenFromCheckoutUrl,
  type AbandonedCheckoutNode,
  type OrderNode,
} from "../../src/sync/reconcile/map.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { abandonedCheckoutFromWebhook, orderFromWebhook } from "../fakes/shopify-admin-seed.ts";
import { fixtureJson } from "../helpers/shopify.ts";

const SHOP = "example-shop.myshopify.com";
const CART = "eeafa272cebfd4b22385bc4b645e762c";

const json = fixtureJson;

/** The line set the webhook of `file` gives (the webhook mapping, tested on its own in line-items.test.ts). */
function webhookLines(file: string, topic: string, body: object) {
  const mapped = mapDelivery({
    topic,
    shopDomain: SHOP,
    body: Buffer.from(JSON.stringify(body)),
    webhookId: "w",
    triggeredAt: undefined,
    receivedAtMs: 0,
  });
  assert.ok(mapped.kind === "event", file);
  return mapped.event.lines;
}

const withoutDiscount = (props: Record<string, string>) =>
  Object.fromEntries(Object.entries(props).filter(([k]) => k !== "discount"));

/** What `abandonedCheckouts` returns for the sample, with the selection the pass sends (lines as a connection). */
function checkoutNode(shape: "current" | "docs"): AbandonedCheckoutNode {
  const n = abandonedCheckoutFromWebhook(json("checkouts-update.shopify-docs-2026-04.json"), {
    id: 7,
    shop: SHOP,
    urlShape: shape,
  });
  return { ...n, lineItems: { nodes: n["lineItems"] as never, pageInfo: { hasNextPage: false } } };
}

describe("reconciliation mapping", () => {
  it("reads the cart token from /checkouts/ac/, a checkout token from the older /recover shape", () => {
    assert.deepEqual(tokenFromCheckoutUrl(`https://${SHOP}/548380009/checkouts/ac/${CART}/recover?key=k`), {
      kind: "cart",
      token: CART,
    });
    assert.deepEqual(
      tokenFromCheckoutUrl("https://checkout.local/548380009/checkouts/123123123/recover?key=k"),
      { kind: "checkout", token: "123123123" },
    );
    assert.equal(tokenFromCheckoutUrl("https://x.example/cart"), undefined);
    assert.equal(tokenFromCheckoutUrl("not a url"), undefined);
  });

  it("maps an abandoned checkout like its webhook: key, status and every property the query carries", () => {
    const r = mapAbandonedCheckout(SHOP, checkoutNode("current"), () => undefined);
    assert.equal(r.topic, "checkouts/update");
    assert.equal(r.mapped.kind, "event");
    if (r.mapped.kind !== "event") return;
    const e = r.mapped.event;
    assert.equal(e.key, `${SHOP}:${CART}`);
    assert.equal(e.status, "checkout");
    assert.deepEqual(e.stamp, {
      timeMs: Date.parse("2022-01-01T00:00:00Z"),
      topicRank: RECONCILE_TOPIC_RANK,
      webhookId: "reconcile:gid://shopify/AbandonedCheckout/7",
    });
    assert.deepEqual(e.properties, {
      hs_external_cart_id: CART,
      hs_source_store: SHOP,
      hs_cart_name: "IPod Nano - 8GB + 1 more (2 items)",
      hs_currency_code: "USD",
      hs_total_price: "421.88",
      hs_cart_discount: "0.00",
      hs_tax: "23.88",
      hs_subtotal_price: "398.00",
      hs_cart_url: `https://${SHOP}/548380009/checkouts/ac/${CART}/recover?key=example-secret-token`,
      hs_discount_codes: "",
      hs_external_created_date: "2022-01-01T00:00:00.000Z",
      hs_external_modified_date: "2022-01-01T00:00:00.000Z",
    });
    // The line set, keyed by the webhook's variant ids (so each line keeps its HubSpot line item) with the
    // same name, quantity, unit price, SKU and currency; the query reads no discount.
    const ipod = {
      name: "IPod Nano - 8GB - Pink",
      quantity: "1",
      price: "199.00",
      hs_sku: "IPOD2008PINK",
      hs_line_item_currency_code: "USD",
    };
    assert.deepEqual(e.lines, [
      { key: `${SHOP}:${CART}:808950810`, properties: ipod },
      { key: `${SHOP}:${CART}:808950810:2`, properties: ipod },
    ]);
    const file = "checkouts-update.shopify-docs-2026-04.json";
    assert.deepEqual(
      e.lines,
      webhookLines(file, "checkouts/update", json(file))?.map((l) => ({
        key: l.key,
        properties: withoutDiscount(l.properties),
      })),
      "as its webhook gives them",
    );
    // GraphQL's checkout has no top-level e-mail: the customer's; names from the customer.
    assert.deepEqual(e.contact, {
      email: "john@example.com",
      firstname: "John",
      lastname: "Smith",
      phone: "555-555-BILL",
    });
  });

  it("keys the older URL shape through a learned checkout link, else by the checkout token", () => {
    const linked = mapAbandonedCheckout(SHOP, checkoutNode("docs"), (t) =>
      t === "123123123" ? CART : undefined,
    );
    assert.equal(linked.mapped.kind === "event" && linked.mapped.event.key, `${SHOP}:${CART}`);
    const unlinked = mapAbandonedCheckout(SHOP, checkoutNode("docs"), () => undefined);
    assert.equal(unlinked.mapped.kind === "event" && unlinked.mapped.event.key, `${SHOP}:123123123`);
  });

  it("writes no cart name when the lines were cut off, completed when completedAt is set", () => {
    const n = checkoutNode("current");
    const r = mapAbandonedCheckout(
      SHOP,
      {
        ...n,
        completedAt: "2022-01-02T00:00:00Z",
        lineItems: { nodes: [{ title: "A", quantity: 1 }], pageInfo: { hasNextPage: true } },
      },
      () => undefined,
    );
    assert.ok(r.mapped.kind === "event");
    assert.equal(r.mapped.event.status, "completed");
    assert.equal(r.mapped.event.properties["hs_cart_name"], undefined);
    assert.equal(r.mapped.event.lines, undefined, "nor a line set that would drop the lines not read");
  });

  it("maps an order by cartToken, else checkoutToken, with presentment amounts and shipping", () => {
    const body = {
      ...json("orders-create.shopify-docs-2026-04.json"),
      cart_token: CART,
      checkout_token: "chk-1",
    };
    const node = orderFromWebhook(body, { id: 9 }) as unknown as OrderNode;
    const r = mapOrder(SHOP, node);
    assert.ok(r.mapped.kind === "event");
    const e = r.mapped.event;
    assert.equal(e.key, `${SHOP}:${CART}`);
    assert.equal(e.status, "completed");
    assert.deepEqual(e.properties, {
      hs_external_cart_id: CART,
      hs_source_store: SHOP,
      hs_currency_code: "USD",
      hs_total_price: "404.95",
      hs_cart_discount: "20.00",
      hs_tax: "0.00",
      hs_shipping_cost: "10.00",
      hs_subtotal_price: "404.95",
      hs_discount_codes: "",
      hs_external_created_date: "2022-01-01T00:00:00.000Z",
      hs_external_modified_date: "2022-01-01T00:00:00.000Z",
    });
    assert.equal(e.contact?.email, "jon@example.com");
    assert.equal(e.lines, undefined, "the pass reads no order lines: no line set");
    const byCheckout = mapOrder(SHOP, { ...node, cartToken: null });
    assert.equal(byCheckout.mapped.kind === "event" && byCheckout.mapped.event.key, `${SHOP}:chk-1`);
    const pos = mapOrder(SHOP, { ...node, cartToken: null, checkoutToken: null });
    assert.equal(pos.mapped.kind, "unkeyed");
  });

  it("writes presentment money, not shop money", () => {
    const bag = (shop: string, presented: string) => ({
      shopMoney: { amount: shop, currencyCode: "USD" },
      presentmentMoney: { amount: presented, currencyCode: "EUR" },
    });
    const r = mapOrder(SHOP, {
      id: "gid://shopify/Order/2",
      updatedAt: "2026-11-01T00:00:00Z",
      cartToken: "c2",
      presentmentCurrencyCode: "EUR",
      totalPriceSet: bag("11.00", "10.00"),
      totalTaxSet: bag("2.20", "2.00"),
      totalShippingPriceSet: bag("5.50", "5.00"),
    });
    assert.ok(r.mapped.kind === "event");
    const p = r.mapped.event.properties;
    assert.deepEqual(
      [p["hs_currency_code"], p["hs_total_price"], p["hs_tax"], p["hs_shipping_cost"]],
      ["EUR", "10.00", "2.00", "5.00"],
    );
  });

  it("treats every customer field as optional", () => {
    const r = mapOrder(SHOP, {
      id: "gid://shopify/Order/1",
      updatedAt: "2026-11-01T00:00:00Z",
      cartToken: "c1",
      customer: null,
      billingAddress: null,
      email: null,
    });
    assert.ok(r.mapped.kind === "event");
    assert.equal(r.mapped.event.contact, undefined);
    assert.deepEqual(Object.keys(r.mapped.event.properties).sort(), [
      "hs_external_cart_id",
      "hs_external_modified_date",
      "hs_source_store",
    ]);
  });
});
