import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { CartEvent } from "../../src/sync/cart-event.ts";
import { mapLineSet } from "../../src/sync/line-items.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";

const FIXTURES = new URL("../../../shared/fixtures/shopify/", import.meta.url);
const SHOP = "example.myshopify.com";

function fixtureJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8")) as Record<string, unknown>;
}

function fixtureBytes(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

function eventFrom(topic: string, body: object | Buffer | string): CartEvent {
  const result = mapDelivery({
    topic,
    shopDomain: SHOP,
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : JSON.stringify(body)),
    webhookId: "wh-1",
    triggeredAt: undefined,
    receivedAtMs: Date.UTC(2030, 0, 1),
  });
  assert.equal(result.kind, "event");
  return (result as { event: CartEvent }).event;
}

describe("line sets from Shopify's samples", () => {
  it("a cart's line: variant key, presentment unit price, total discount, currency from the MoneyBag", () => {
    // The sample's bytes as Shopify sends them: 704912205188288575 is above 2^53, and stays exact.
    const event = eventFrom("carts/update", fixtureBytes("carts-update.shopify-docs-2026-04.json"));
    assert.deepEqual(event.lines, [
      {
        key: "example.myshopify.com:exampleCartId:704912205188288575",
        properties: {
          name: "Example T-Shirt - Small",
          quantity: "3",
          price: "19.99",
          hs_sku: "example-shirt-s",
          discount: "39.98",
          hs_line_item_currency_code: "USD",
        },
      },
    ]);
  });

  it("two variants whose ids a double cannot tell apart keep two keys; a product id too", () => {
    const body = `{"token":"big","updated_at":"2026-06-01T10:00:00Z","line_items":[
      {"variant_id":704912205188288575,"title":"Shirt","variant_title":"Red","quantity":1,"price":"10.00"},
      {"variant_id":704912205188288560,"title":"Shirt","variant_title":"Blue","quantity":5,"price":"10.00"},
      {"variant_id":null,"product_id":9007199254740993,"title":"Cap","quantity":1,"price":"5.00"}]}`;
    const event = eventFrom("carts/update", body);
    const keys = event.lines?.map((l) => l.key);
    assert.deepEqual(keys, [
      "example.myshopify.com:big:704912205188288575",
      "example.myshopify.com:big:704912205188288560",
      "example.myshopify.com:big:9007199254740993",
    ]);
    // Only keys are read so: the same words inside a string value are left as they are (quoting them there
    // would break the JSON, and the delivery would be a dead letter, not an event).
    const note = `{"token":"n","note":"\\"variant_id\\": 704912205188288575","updated_at":"2026-06-01T10:00:00Z",
      "line_items":[{"variant_id":704912205188288575,"title":"Shirt","quantity":1,"price":"10.00"}]}`;
    const noted = eventFrom("carts/update", note);
    assert.equal(noted.lines?.[0]?.key, "example.myshopify.com:n:704912205188288575");
  });

  it("a quantity sent as a string of digits counts; one that is no count drops only the line's quantity", () => {
    const body = {
      token: "q",
      updated_at: "2026-06-01T10:00:00Z",
      line_items: [
        { variant_id: 11, title: "Sock", quantity: "3", price: "2.00" },
        { variant_id: 12, title: "Hat", quantity: "lots", price: "4.00" },
        { variant_id: 13, title: "Pin", quantity: "123456789012345678901234", price: "1.00" },
      ],
    };
    const event = eventFrom("carts/update", body);
    assert.equal(event.lines?.[0]?.properties["quantity"], "3");
    assert.equal(event.lines?.[1]?.properties["quantity"], undefined);
    assert.equal(event.lines?.[1]?.properties["name"], "Hat");
    assert.equal(
      event.lines?.[2]?.properties["quantity"],
      undefined,
      "no count a double cannot hold exactly",
    );
  });

  it("a checkout's two lines of one variant: the second gets :2; name adds the variant title; currency from the checkout", () => {
    const event = eventFrom("checkouts/update", fixtureJson("checkouts-update.shopify-docs-2026-04.json"));
    const props = {
      name: "IPod Nano - 8GB - Pink",
      quantity: "1",
      price: "199.00",
      hs_sku: "IPOD2008PINK",
      discount: "0.00",
      hs_line_item_currency_code: "USD",
    };
    assert.deepEqual(event.lines, [
      { key: "example.myshopify.com:eeafa272cebfd4b22385bc4b645e762c:808950810", properties: props },
      { key: "example.myshopify.com:eeafa272cebfd4b22385bc4b645e762c:808950810:2", properties: props },
    ]);
  });

  it("an order's lines without variants: product id, else title; repeats numbered", () => {
    // The sample's own bytes, with a cart token: its product ids (788032119674292922) are above 2^53.
    const body = fixtureBytes("orders-create.shopify-docs-2026-04.json")
      .toString("utf8")
      .replace('"cart_token": null', '"cart_token": "ct1"');
    const event = eventFrom("orders/create", body);
    const k = "example.myshopify.com:ct1";
    assert.deepEqual(
      event.lines?.map((l) => [l.key, l.properties["name"], l.properties["price"], l.properties["hs_sku"]]),
      [
        [`${k}:788032119674292922`, "Aviator sunglasses", "89.99", "SKU2006-001"],
        [`${k}:Lens Protection Plan (2 Year)`, "Lens Protection Plan (2 Year)", "19.99", "LENS-PROTECT-2YR"],
        [`${k}:Premium Leather Case`, "Premium Leather Case", "24.99", "CASE-LEATHER-PREM"],
        [`${k}:788032119674292922:2`, "Mid-century lounger", "159.99", "SKU2006-020"],
        [`${k}:788032119674292922:3`, "Coffee table", "119.99", "SKU2006-035"],
      ],
    );
    assert.equal(event.lines?.[0]?.properties["discount"], "0.00");
    assert.equal(event.lines?.[0]?.properties["hs_line_item_currency_code"], "USD");
  });

  it("checkouts/delete carries no line set; a cart with line_items: [] carries an empty one", () => {
    const deleted = eventFrom("checkouts/delete", fixtureJson("checkouts-delete.shopify-docs-2026-04.json"));
    assert.equal(deleted.lines, undefined);
    const empty = eventFrom("carts/update", {
      token: "t",
      updated_at: "2026-01-01T00:00:00Z",
      line_items: [],
    });
    assert.deepEqual(empty.lines, []);
  });
});

describe("line mapping is robust to real-store quirks", () => {
  it("null SKU, gift card, zero price, presentment money unlike shop money, malformed amount", () => {
    const lines = mapLineSet(
      "orders/create",
      {
        presentment_currency: "EUR",
        line_items: [
          {
            variant_id: 11,
            title: "Gift card",
            variant_title: "€50",
            gift_card: true,
            sku: null,
            quantity: 2,
            price: "55.00",
            price_set: {
              shop_money: { amount: "55.00", currency_code: "USD" },
              presentment_money: { amount: "50.0", currency_code: "EUR" },
            },
            discount_allocations: [
              { amount: "5.00", amount_set: { presentment_money: { amount: "4.5", currency_code: "EUR" } } },
              { amount: "1.10" },
            ],
          },
          { variant_id: "12", title: "Free sample", sku: "", quantity: 1, price: "0.0" },
          { variant_id: 13, title: "Broken", quantity: 1, price: "12,50", total_discount: "abc" },
        ],
      },
      "s:t",
    );
    assert.deepEqual(lines, [
      {
        key: "s:t:11",
        properties: {
          name: "Gift card - €50",
          quantity: "2",
          price: "50.00",
          discount: "5.60",
          hs_line_item_currency_code: "EUR",
        },
      },
      {
        key: "s:t:12",
        properties: { name: "Free sample", quantity: "1", price: "0.00", hs_line_item_currency_code: "EUR" },
      },
      { key: "s:t:13", properties: { name: "Broken", quantity: "1", hs_line_item_currency_code: "EUR" } },
    ]);
  });

  it("currency codes in capitals, as HubSpot's enumeration has them, from the line or the body", () => {
    const lines = mapLineSet(
      "checkouts/update",
      {
        presentment_currency: " eur ",
        line_items: [
          { variant_id: 1, title: "A", quantity: 1, price: "1.00" },
          {
            variant_id: 2,
            title: "B",
            quantity: 1,
            price_set: { presentment_money: { amount: "2.00", currency_code: "cad" } },
          },
        ],
      },
      "s:t",
    );
    assert.deepEqual(
      lines?.map((l) => l.properties["hs_line_item_currency_code"]),
      ["EUR", "CAD"],
    );
  });

  it("a line with neither variant, product nor title; non-object entries skipped; 150 lines all kept", () => {
    const lines = mapLineSet(
      "carts/update",
      { line_items: [{ quantity: 1 }, null, "x", { quantity: 1 }] },
      "s:t",
    );
    assert.deepEqual(
      lines?.map((l) => l.key),
      ["s:t:untitled", "s:t:untitled:2"],
    );
    const many = mapLineSet(
      "carts/update",
      {
        line_items: Array.from({ length: 150 }, (_, i) => ({
          variant_id: 1000 + i,
          quantity: 1,
          price: "1",
        })),
      },
      "s:t",
    );
    assert.equal(many?.length, 150);
    assert.equal(new Set(many?.map((l) => l.key)).size, 150);
    assert.equal(many?.[149]?.key, "s:t:1149");
    assert.equal(many?.[149]?.properties["price"], "1.00");
  });
});
