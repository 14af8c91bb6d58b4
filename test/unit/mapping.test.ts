import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { describe, it } from "node:test";
import { TOPIC_RANK } from "../../src/sync/cart-event.ts";
import type { CartEvent } from "../../src/sync/cart-event.ts";
import {
  EMPTY_CART_NAME,
  MAPPED_TOPICS,
  cartName,
  mapDelivery,
  parseInstantMs,
} from "../../src/sync/mapping.ts";
import type { MapInput, MapResult } from "../../src/sync/mapping.ts";

const FIXTURES = new URL("../../../shared/fixtures/shopify/", import.meta.url);
const SHOP = "example.myshopify.com";
const RECEIVED_AT_MS = Date.UTC(2030, 0, 1);
const CART_TOKEN = "eeafa272cebfd4b22385bc4b645e762c";
/** updated_at of every docs sample: "2022-01-01T00:00:00.000Z" or "2021-12-31T19:00:00-05:00". */
const DOCS_UPDATED_AT_MS = Date.UTC(2022, 0, 1);

function fixture(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

/** A fixture's text with one exact substring replaced (the replacement must happen). */
function fixtureWith(name: string, from: string, to: string): string {
  const text = fixture(name).toString("utf8");
  assert.ok(text.includes(from), `${name} should contain ${from}`);
  return text.replace(from, to);
}

/** "customers-data-request.x.json" → "customers/data_request". */
function topicOf(fileName: string): string {
  const prefix = fileName.slice(0, fileName.indexOf("."));
  return prefix.replace("-", "/").replace("data-request", "data_request");
}

function map(topic: string, body: Buffer | string | object, overrides: Partial<MapInput> = {}): MapResult {
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  return mapDelivery({
    topic,
    shopDomain: SHOP,
    body: bytes,
    webhookId: "wh-1",
    triggeredAt: undefined,
    receivedAtMs: RECEIVED_AT_MS,
    ...overrides,
  });
}

function eventOf(result: MapResult): CartEvent {
  assert.equal(result.kind, "event", `expected an event, got ${JSON.stringify(result)}`);
  return (result as { event: CartEvent }).event;
}

function reasonOf(result: MapResult, kind: "invalid" | "unkeyed"): string {
  assert.equal(result.kind, kind, `expected ${kind}, got ${JSON.stringify(result)}`);
  return (result as { reason: string }).reason;
}

function warningsOf(result: MapResult): readonly string[] {
  return (result as { warnings?: readonly string[] }).warnings ?? [];
}

function cartLine(
  title: string,
  quantity: number,
  linePrice: string,
  discount: string,
  currency = "USD",
): object {
  const bag = (amount: string) => ({
    shop_money: { amount, currency_code: "USD" },
    presentment_money: { amount, currency_code: currency },
  });
  return {
    title,
    quantity,
    line_price: "999.99",
    total_discount: "999.99",
    price_set: bag(linePrice),
    line_price_set: bag(linePrice),
    total_discount_set: bag(discount),
    properties: null,
  };
}

function checkout(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    token: "checkout-token",
    cart_token: "cart-token",
    updated_at: "2024-11-05T10:00:00-05:00",
    email: "Buyer@Example.com",
    currency: "EUR",
    presentment_currency: "EUR",
    total_price: "10.00",
    total_discounts: "0.00",
    total_tax: "1.60",
    subtotal_price: "10.00",
    line_items: [{ title: "Mug", quantity: 1, line_price: "10.00", properties: [] }],
    shipping_lines: [],
    ...fields,
  };
}

void describe("Shopify sample payloads", () => {
  const files = readdirSync(FIXTURES).filter((name) => name.endsWith(".json"));

  void it("finds every sample", () => {
    assert.ok(files.length >= 29, `found only ${files.length} fixtures in ${FIXTURES.pathname}`);
  });

  for (const file of files) {
    const topic = topicOf(file);
    void it(`${file} (${topic})`, () => {
      const result = map(topic, fixture(file));
      if (!MAPPED_TOPICS.includes(topic)) {
        assert.deepEqual(result, { kind: "unhandled" });
        return;
      }
      if (topic.startsWith("orders/")) {
        // Every docs order sample has cart_token and checkout_token null.
        assert.match(reasonOf(result, "unkeyed"), /cart_token/);
        return;
      }
      const event = eventOf(result);
      const family = topic.slice(0, topic.indexOf("/")) as keyof typeof TOPIC_RANK;
      assert.equal(event.key, `${SHOP}:${event.token}`);
      assert.equal(event.shopDomain, SHOP);
      assert.equal(event.properties.hs_external_cart_id, event.token);
      assert.equal(event.properties.hs_source_store, SHOP);
      assert.equal(event.properties.hs_external_status, undefined);
      assert.equal(event.stamp.topicRank, TOPIC_RANK[family]);
      assert.equal(event.stamp.webhookId, "wh-1");
      assert.deepEqual(warningsOf(result), []);
      if (topic === "checkouts/delete") {
        assert.equal(event.stamp.timeMs, RECEIVED_AT_MS, "the delete body has no updated_at");
      } else {
        assert.equal(event.stamp.timeMs, DOCS_UPDATED_AT_MS);
      }
    });
  }

  void it("carts/create 2026-04: exact properties", () => {
    const event = eventOf(map("carts/create", fixture("carts-create.shopify-docs-2026-04.json")));
    assert.equal(event.key, `${SHOP}:exampleCartId`);
    assert.equal(event.status, "open");
    assert.equal(event.contact, undefined);
    assert.deepEqual(event.properties, {
      hs_external_cart_id: "exampleCartId",
      hs_source_store: SHOP,
      hs_cart_name: "Example T-Shirt - Small (3 items)",
      hs_currency_code: "USD",
      hs_total_price: "59.97",
      hs_cart_discount: "39.98",
    });
  });

  void it('carts/update 2023-10: a "0.0" discount is written as "0.00"', () => {
    const event = eventOf(map("carts/update", fixture("carts-update.shopify-docs-2023-10.json")));
    assert.equal(event.token, CART_TOKEN);
    assert.equal(event.properties.hs_cart_discount, "0.00");
    assert.equal(event.properties.hs_total_price, "59.97");
    assert.equal(event.properties.hs_cart_name, "Example T-Shirt (3 items)");
  });

  void it("checkouts/update 2026-04 (no id): exact properties and contact", () => {
    const event = eventOf(map("checkouts/update", fixture("checkouts-update.shopify-docs-2026-04.json")));
    assert.equal(event.key, `${SHOP}:${CART_TOKEN}`);
    assert.equal(event.status, "checkout");
    assert.equal(event.stamp.timeMs, DOCS_UPDATED_AT_MS);
    assert.deepEqual(event.properties, {
      hs_external_cart_id: CART_TOKEN,
      hs_source_store: SHOP,
      hs_cart_name: "IPod Nano - 8GB + 1 more (2 items)",
      hs_currency_code: "USD",
      hs_total_price: "421.88",
      hs_cart_discount: "0.00",
      hs_tax: "23.88",
      hs_shipping_cost: "0.00",
      hs_cart_url: "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token",
      hs_subtotal_price: "398.00",
      hs_discount_codes: "",
      hs_external_created_date: "2022-01-01T00:00:00.000Z",
      hs_external_modified_date: "2022-01-01T00:00:00.000Z",
      hs_buyer_accepts_marketing: "false",
    });
    // email beats customer.email (john@example.com); names from the customer; phone from the billing address.
    assert.deepEqual(event.contact, {
      email: "example@email.com",
      firstname: "John",
      lastname: "Smith",
      phone: "555-555-BILL",
    });
  });

  void it("checkouts/delete: only identity properties, status deleted", () => {
    for (const file of [
      "checkouts-delete.shopify-docs-2023-07.json",
      "checkouts-delete.shopify-docs-2026-04.json",
    ]) {
      const event = eventOf(map("checkouts/delete", fixture(file)));
      assert.equal(event.key, `${SHOP}:${CART_TOKEN}`);
      assert.equal(event.status, "deleted");
      assert.equal(event.contact, undefined);
      assert.deepEqual(event.properties, { hs_external_cart_id: CART_TOKEN, hs_source_store: SHOP });
    }
  });

  void it("orders/create 2026-04 with a checkout_token: keyed by it, presentment amounts, contact", () => {
    const body = fixtureWith(
      "orders-create.shopify-docs-2026-04.json",
      '"checkout_token": null',
      '"checkout_token": "ck-123"',
    );
    const result = map("orders/create", body);
    const event = eventOf(result);
    assert.equal(event.key, `${SHOP}:ck-123`);
    assert.equal(event.status, "completed");
    assert.equal(event.stamp.topicRank, TOPIC_RANK.orders);
    assert.equal(event.stamp.timeMs, DOCS_UPDATED_AT_MS);
    assert.deepEqual(event.properties, {
      hs_external_cart_id: "ck-123",
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
      hs_buyer_accepts_marketing: "true",
    });
    assert.deepEqual(event.contact, {
      email: "jon@example.com",
      firstname: "John",
      lastname: "Smith",
      phone: "555-555-SHIP",
    });
  });

  void it("orders/create: cart_token wins over checkout_token", () => {
    const withCheckout = fixtureWith(
      "orders-create.shopify-docs-2023-07.json",
      '"checkout_token": null',
      '"checkout_token": "ck-1"',
    );
    const body = withCheckout.replace('"cart_token": null', `"cart_token": "${CART_TOKEN}"`);
    const event = eventOf(map("orders/create", body));
    assert.equal(event.key, `${SHOP}:${CART_TOKEN}`);
    assert.equal(event.properties.hs_external_cart_id, CART_TOKEN);
  });
});

void describe("keys and tokens", () => {
  void it("trims and lower-cases the shop domain in key, shopDomain and hs_source_store", () => {
    const event = eventOf(
      map("carts/create", fixture("carts-create.shopify-docs-2023-07.json"), {
        shopDomain: "  Example.MyShopify.COM ",
      }),
    );
    assert.equal(event.key, `example.myshopify.com:${CART_TOKEN}`);
    assert.equal(event.shopDomain, "example.myshopify.com");
    assert.equal(event.properties.hs_source_store, "example.myshopify.com");
  });

  void it("refuses an empty shop domain", () => {
    assert.match(
      reasonOf(map("carts/create", { token: "t" }, { shopDomain: "  " }), "invalid"),
      /shop domain/,
    );
  });

  void it("matches topics case-insensitively", () => {
    assert.equal(eventOf(map(" CARTS/Update ", { token: "t" })).status, "open");
  });

  void it("carts: token, else a string id, never a number", () => {
    assert.equal(eventOf(map("carts/update", { token: "tok", id: "other" })).token, "tok");
    assert.equal(eventOf(map("carts/update", { id: "id-token" })).token, "id-token");
    assert.match(reasonOf(map("carts/update", { id: 123, token: null }), "unkeyed"), /token/);
    assert.match(reasonOf(map("carts/update", { token: "" }), "unkeyed"), /token/);
  });

  void it("checkouts: cart_token, else token when cart_token is empty or null; unkeyed without either", () => {
    assert.equal(eventOf(map("checkouts/update", checkout())).token, "cart-token");
    assert.equal(eventOf(map("checkouts/update", checkout({ cart_token: null }))).token, "checkout-token");
    assert.equal(eventOf(map("checkouts/create", checkout({ cart_token: "" }))).token, "checkout-token");
    assert.equal(
      eventOf(map("checkouts/create", checkout({ cart_token: undefined }))).token,
      "checkout-token",
    );
    assert.match(
      reasonOf(map("checkouts/update", checkout({ cart_token: null, token: null })), "unkeyed"),
      /token/,
    );
  });

  void it("checkouts/delete: cart_token, else token, else unkeyed", () => {
    assert.equal(eventOf(map("checkouts/delete", { id: 1, token: "ck" })).token, "ck");
    assert.equal(eventOf(map("checkouts/delete", { id: 1, token: "ck", cart_token: "ct" })).token, "ct");
    assert.match(reasonOf(map("checkouts/delete", { id: 1, cart_token: null }), "unkeyed"), /cart_token/);
  });

  void it("orders: cart_token, else checkout_token (a number is not a token); all order topics are completed", () => {
    for (const topic of ["orders/create", "orders/updated", "orders/paid"]) {
      const event = eventOf(map(topic, { cart_token: 42, checkout_token: "ck", total_price: "5" }));
      assert.equal(event.token, "ck");
      assert.equal(event.status, "completed");
      assert.equal(event.properties.hs_total_price, "5.00");
    }
    assert.match(
      reasonOf(map("orders/paid", { cart_token: null, checkout_token: null }), "unkeyed"),
      /POS or draft/,
    );
  });
});

void describe("checkout and order details", () => {
  void it("completed_at set → completed", () => {
    const event = eventOf(map("checkouts/update", checkout({ completed_at: "2024-11-05T10:05:00-05:00" })));
    assert.equal(event.status, "completed");
    assert.equal(eventOf(map("checkouts/update", checkout({ completed_at: null }))).status, "checkout");
  });

  void it("survives the real-store quirks: shipping_address [], email null, customer missing, no contact", () => {
    const result = map(
      "checkouts/update",
      checkout({
        email: null,
        shipping_address: [],
        billing_address: [],
        customer: undefined,
        line_items: [],
      }),
    );
    const event = eventOf(result);
    assert.equal(event.contact, undefined);
    assert.equal(event.properties.hs_cart_name, EMPTY_CART_NAME);
    assert.equal(event.properties.hs_total_price, "10.00");
    assert.equal(
      eventOf(map("checkouts/update", checkout({ email: null, customer: null }))).contact,
      undefined,
    );
    assert.equal(
      eventOf(map("checkouts/update", checkout({ email: null, customer: [] }))).contact,
      undefined,
    );
  });

  void it("e-mail: email, else customer.email, else contact_email; trimmed, lower-cased, must contain @", () => {
    const customer = { email: "Cust@Example.com", first_name: "Ann", last_name: "Lee", phone: "+1 555" };
    assert.deepEqual(eventOf(map("checkouts/update", checkout({ email: " Buyer@Example.COM " }))).contact, {
      email: "buyer@example.com",
    });
    assert.deepEqual(eventOf(map("checkouts/update", checkout({ email: null, customer }))).contact, {
      email: "cust@example.com",
      firstname: "Ann",
      lastname: "Lee",
      phone: "+1 555",
    });
    const viaContactEmail = map("orders/create", {
      cart_token: "c",
      email: "not-an-email",
      contact_email: "c@x.io",
    });
    assert.equal(eventOf(viaContactEmail).contact?.email, "c@x.io");
    assert.equal(eventOf(map("orders/create", { cart_token: "c", email: "nobody" })).contact, undefined);
  });

  void it("names fall back to the billing address as a pair; phone: customer, then phone, then billing", () => {
    const billing_address = { first_name: "Bob", last_name: "Biller", phone: "555-BILL" };
    const noNames = { email: null, first_name: null, last_name: "", phone: null };
    const event = eventOf(
      map("checkouts/update", checkout({ customer: noNames, billing_address, phone: "555-TOP" })),
    );
    assert.deepEqual(event.contact, {
      email: "buyer@example.com",
      firstname: "Bob",
      lastname: "Biller",
      phone: "555-TOP",
    });
    const lastOnly = { first_name: null, last_name: "Lee", phone: "555-CUST" };
    const event2 = eventOf(map("checkouts/update", checkout({ customer: lastOnly, billing_address })));
    assert.deepEqual(event2.contact, { email: "buyer@example.com", lastname: "Lee", phone: "555-CUST" });
  });

  void it("checkouts/delete never carries a contact or amounts even when the body has them", () => {
    const event = eventOf(
      map("checkouts/delete", {
        cart_token: "c",
        email: "a@b.c",
        total_price: "1.00",
        presentment_currency: "USD",
      }),
    );
    assert.deepEqual(event.properties, { hs_external_cart_id: "c", hs_source_store: SHOP });
    assert.equal(event.contact, undefined);
  });

  void it("shipping: Σ lines, an empty list is written as zero, an absent one is not written", () => {
    const shipping_lines = [{ price: "4.5" }, { price: "0.99" }];
    assert.equal(
      eventOf(map("checkouts/update", checkout({ shipping_lines }))).properties.hs_shipping_cost,
      "5.49",
    );
    assert.equal(
      eventOf(map("checkouts/update", checkout({ shipping_lines: [] }))).properties.hs_shipping_cost,
      "0.00",
    );
    assert.equal(
      eventOf(map("checkouts/update", checkout({ shipping_lines: undefined }))).properties.hs_shipping_cost,
      undefined,
    );
  });

  void it("discount codes joined with ', '; marketing flag as text; attribution sites", () => {
    const event = eventOf(
      map(
        "checkouts/update",
        checkout({
          discount_codes: [{ code: "SPRING", amount: "1.00" }, { code: null }, { code: "VIP" }],
          buyer_accepts_marketing: true,
          landing_site: "/products/mug?utm_source=x",
          referring_site: "https://www.google.com/",
        }),
      ),
    );
    assert.equal(event.properties.hs_discount_codes, "SPRING, VIP");
    assert.equal(event.properties.hs_buyer_accepts_marketing, "true");
    assert.equal(event.properties.hs_landing_site, "/products/mug?utm_source=x");
    assert.equal(event.properties.hs_referring_site, "https://www.google.com/");
  });

  void it("dates are sent as UTC instants; a malformed one is dropped with a warning", () => {
    const result = map(
      "checkouts/update",
      checkout({ created_at: "2024-11-05T15:00:00+00:00", updated_at: "yesterday" }),
    );
    const event = eventOf(result);
    assert.equal(event.properties.hs_external_created_date, "2024-11-05T15:00:00.000Z");
    assert.equal(event.properties.hs_external_modified_date, undefined);
    assert.deepEqual(warningsOf(result), ['hs_external_modified_date: malformed date "yesterday"']);
  });

  void it("amounts: JSON numbers are exact strings; a malformed amount drops only its property", () => {
    const result = map(
      "checkouts/update",
      checkout({ total_price: 421.88, total_tax: "abc", total_discounts: "0" }),
    );
    const event = eventOf(result);
    assert.equal(event.properties.hs_total_price, "421.88");
    assert.equal(event.properties.hs_cart_discount, "0.00");
    assert.equal(event.properties.hs_tax, undefined);
    assert.deepEqual(warningsOf(result), ['hs_tax: malformed amount "abc"']);
  });

  void it("currency: presentment_currency, else currency", () => {
    assert.equal(
      eventOf(map("checkouts/update", checkout({ presentment_currency: "CAD" }))).properties.hs_currency_code,
      "CAD",
    );
    const fallback = checkout({ presentment_currency: null, currency: "GBP" });
    assert.equal(eventOf(map("checkouts/update", fallback)).properties.hs_currency_code, "GBP");
    const empty = checkout({ presentment_currency: " ", currency: "GBP" });
    assert.equal(eventOf(map("checkouts/update", empty)).properties.hs_currency_code, "GBP");
  });

  void it("currency codes are written in capitals, as HubSpot's enumeration has them", () => {
    const lower = checkout({ presentment_currency: " eur " });
    assert.equal(eventOf(map("checkouts/update", lower)).properties.hs_currency_code, "EUR");
    const line = (currency: string) => ({
      title: "A",
      quantity: 1,
      line_price_set: { presentment_money: { amount: "1.00", currency_code: currency } },
    });
    const cart = { token: "t", line_items: [line("cad")] };
    assert.equal(eventOf(map("carts/update", cart)).properties.hs_currency_code, "CAD");
    const blankFirst = { token: "t", line_items: [line(" "), line("EUR")] };
    assert.equal(eventOf(map("carts/update", blankFirst)).properties.hs_currency_code, "EUR");
  });

  void it("orders: presentment money over shop money, plain strings when no MoneyBag", () => {
    const bag = (shop: string, presentment: string) => ({
      shop_money: { amount: shop, currency_code: "USD" },
      presentment_money: { amount: presentment, currency_code: "EUR" },
    });
    const order = {
      cart_token: "c",
      currency: "USD",
      presentment_currency: "EUR",
      total_price: "110.00",
      total_price_set: bag("110.00", "100.0"),
      total_discounts: "11.00",
      total_discounts_set: bag("11.00", "10.00"),
      total_tax: "2.20",
      subtotal_price: "99.00",
      subtotal_price_set: bag("99.00", "90.00"),
      shipping_lines: [{ price: "5.50", price_set: bag("5.50", "5.00") }, { price: "1.10" }],
    };
    assert.deepEqual(eventOf(map("orders/updated", order)).properties, {
      hs_external_cart_id: "c",
      hs_source_store: SHOP,
      hs_currency_code: "EUR",
      hs_total_price: "100.00",
      hs_cart_discount: "10.00",
      hs_tax: "2.20",
      hs_shipping_cost: "6.10",
      hs_subtotal_price: "90.00",
    });
  });
});

void describe("carts", () => {
  void it('sums one-decimal amounts exactly: "52000.0" + "600.0" → "52600.00"', () => {
    const lines = [
      cartLine("Sofa", 1, "52000.0", "0.0", "JPY"),
      cartLine("Pillow", 2, "600.0", "100.0", "JPY"),
    ];
    const event = eventOf(map("carts/update", { token: "t", line_items: lines }));
    assert.deepEqual(event.properties, {
      hs_external_cart_id: "t",
      hs_source_store: SHOP,
      hs_cart_name: "Sofa + 1 more (3 items)",
      hs_currency_code: "JPY",
      hs_total_price: "52600.00",
      hs_cart_discount: "100.00",
    });
  });

  void it("an empty cart writes zero totals and no currency", () => {
    const event = eventOf(map("carts/update", { token: "t", line_items: [], note: "" }));
    assert.deepEqual(event.properties, {
      hs_external_cart_id: "t",
      hs_source_store: SHOP,
      hs_cart_name: EMPTY_CART_NAME,
      hs_total_price: "0.00",
      hs_cart_discount: "0.00",
    });
  });

  void it("falls back to line_price and total_discount without MoneyBags; properties of any shape are ignored", () => {
    const lines = [
      {
        title: "A",
        quantity: 1,
        line_price: "1.10",
        total_discount: "0.10",
        properties: { gift: true, nested: [[1]] },
      },
      {
        title: "B",
        quantity: 1,
        line_price: 2,
        total_discount: "0",
        properties: [{ name: "x", value: "y" }],
      },
    ];
    const event = eventOf(map("carts/create", { token: "t", line_items: lines }));
    assert.equal(event.properties.hs_total_price, "3.10");
    assert.equal(event.properties.hs_cart_discount, "0.10");
    assert.equal(event.properties.hs_currency_code, undefined);
  });

  void it("a line without a usable price drops the total (never a partial sum) and warns", () => {
    const lines = [
      cartLine("A", 1, "5.00", "0.00"),
      { title: "B", quantity: 1, line_price: "n/a", total_discount: "0.00" },
    ];
    const result = map("carts/update", { token: "t", line_items: lines });
    const event = eventOf(result);
    assert.equal(event.properties.hs_total_price, undefined);
    assert.equal(event.properties.hs_cart_discount, "0.00");
    assert.deepEqual(warningsOf(result), ['hs_total_price: item 1 has malformed amount "n/a"']);
  });

  void it("a cart without line_items writes no name or amounts", () => {
    const event = eventOf(map("carts/update", { token: "t", line_items: null }));
    assert.deepEqual(event.properties, { hs_external_cart_id: "t", hs_source_store: SHOP });
  });
});

void describe("cartName", () => {
  void it("names a cart from its first title and counts", () => {
    assert.equal(cartName([]), EMPTY_CART_NAME);
    assert.equal(cartName([{ title: "Mug", quantity: 1 }]), "Mug");
    assert.equal(cartName([{ title: "Mug", quantity: 3 }]), "Mug (3 items)");
    assert.equal(
      cartName([
        { title: " Mug ", quantity: 1 },
        { title: "Tea", quantity: 2 },
      ]),
      "Mug + 1 more (3 items)",
    );
    assert.equal(cartName([{ title: null, presentment_title: "Tasse", quantity: 1 }]), "Tasse");
    assert.equal(cartName([{ title: "", quantity: null }]), "Untitled item");
    assert.equal(cartName([{ title: "Mug", quantity: 0 }]), EMPTY_CART_NAME);
  });

  void it("cuts a title over 200 characters, by character, not by UTF-16 unit", () => {
    const name = cartName([{ title: "🧁".repeat(70_000), quantity: 2 }]);
    assert.equal(name, `${"🧁".repeat(199)}… (2 items)`);
    assert.equal(cartName([{ title: "x".repeat(200), quantity: 1 }]), "x".repeat(200));
  });
});

void describe("event time", () => {
  const triggeredAt = "2025-07-10T16:15:47.123456Z";
  const triggeredAtMs = Date.UTC(2025, 6, 10, 16, 15, 47, 123);

  void it("payload updated_at first, compared as an instant", () => {
    const event = eventOf(
      map("carts/update", { token: "t", updated_at: "2024-11-05T10:00:00-05:00" }, { triggeredAt }),
    );
    assert.equal(event.stamp.timeMs, Date.UTC(2024, 10, 5, 15));
  });

  void it("X-Shopify-Triggered-At (microseconds) when updated_at is absent or malformed", () => {
    assert.equal(eventOf(map("carts/update", { token: "t" }, { triggeredAt })).stamp.timeMs, triggeredAtMs);
    assert.equal(
      eventOf(map("carts/update", { token: "t", updated_at: "soon" }, { triggeredAt })).stamp.timeMs,
      triggeredAtMs,
    );
  });

  void it("receive time when neither parses", () => {
    const event = eventOf(
      map("carts/update", { token: "t", updated_at: null }, { triggeredAt: "not a date" }),
    );
    assert.equal(event.stamp.timeMs, RECEIVED_AT_MS);
  });

  void it("parseInstantMs accepts ISO instants with any fraction and offset, nothing else", () => {
    assert.equal(parseInstantMs("2025-07-10T16:15:47.000000Z"), Date.UTC(2025, 6, 10, 16, 15, 47));
    assert.equal(parseInstantMs("2023-12-11T04:40:09.792Z"), Date.UTC(2023, 11, 11, 4, 40, 9, 792));
    assert.equal(parseInstantMs("2021-12-31T19:00:00-05:00"), Date.UTC(2022, 0, 1));
    assert.equal(parseInstantMs("2021-12-31T19:00:00-0500"), Date.UTC(2022, 0, 1));
    assert.equal(parseInstantMs("2022-01-01T05:30:00.5+05:30"), Date.UTC(2022, 0, 1, 0, 0, 0, 500));
    assert.equal(parseInstantMs("2021-12-31T19:00:00,25-05:00"), Date.UTC(2022, 0, 1, 0, 0, 0, 250));
    for (const bad of [
      "2021",
      "2021-12-31",
      "2021-12-31T19:00:00",
      "Fri, 31 Dec 2021 19:00:00 GMT",
      "2021-13-01T00:00:00Z",
      "",
      1640995200000,
      null,
    ]) {
      assert.equal(parseInstantMs(bad), undefined, `${String(bad)} should not parse`);
    }
  });
});

void describe("invalid and unhandled deliveries", () => {
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  const invalidBodies: [name: string, body: string, reason: RegExp][] = [
    ["empty body", "", /empty/],
    ["null", "null", /null, not an object/],
    ["an array", "[]", /array, not an object/],
    ["a number", "42", /number, not an object/],
    ["a string", '"cart"', /string, not an object/],
    ["broken JSON", "{not json", /^body is not valid JSON$/],
    ["whitespace", "  \n", /^body is not valid JSON$/],
    ["10,000 nested arrays", deep, /array, not an object/],
    ["a token of impossible type", '{"token":{"a":1},"line_items":[]}', /at token:/],
    [
      "thousands of lines of impossible type (not a store's body with a slip in it)",
      JSON.stringify({ token: "t", line_items: Array.from({ length: 5000 }, () => ({ title: 1 })) }),
      /at line_items\.0\.title:/,
    ],
  ];
  for (const [name, body, reason] of invalidBodies) {
    void it(`${name} → invalid`, () => {
      assert.match(reasonOf(map("carts/update", body), "invalid"), reason);
    });
  }

  void it("a body that starts with a UTF-8 byte order mark is read as its JSON", () => {
    const body = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('{"token":"bom","line_items":[]}'),
    ]);
    assert.equal(eventOf(map("carts/update", body)).key, `${SHOP}:bom`);
  });

  void it("a checkout's cart_token of impossible type is invalid too, not unkeyed (the cart would be lost unseen)", () => {
    assert.match(
      reasonOf(map("checkouts/update", { cart_token: ["x"], token: "c", total_price: "5.00" }), "invalid"),
      /at cart_token:/,
    );
  });

  // A value of a type no store should send costs only that value (SPEC §4: left out, never the cart).
  const leftOut: Array<[string, object, RegExp, Record<string, string | undefined>]> = [
    [
      "line_items that is not an array: no lines, so no name or total",
      { token: "t", line_items: "oops" },
      /^line_items: left out, /,
      { hs_total_price: undefined, hs_cart_name: undefined },
    ],
    [
      "a line that is not an object: the total is unknown, so left out",
      { token: "t", line_items: [null, { title: "B", quantity: 1, line_price: "2.00" }] },
      /^line_items\[\]: left out, /,
      { hs_total_price: undefined },
    ],
    [
      "a title of impossible type: the total stays",
      { token: "t", line_items: [{ title: 42, quantity: 1, line_price: "3.50" }] },
      /^line_items\[\]\.title: left out, /,
      { hs_total_price: "3.50" },
    ],
  ];
  for (const [name, body, warning, expected] of leftOut) {
    void it(`${name}; the cart is kept and the value named in a warning`, () => {
      const result = map("carts/update", body);
      const event = eventOf(result);
      assert.equal(event.key, `${SHOP}:t`);
      for (const [property, value] of Object.entries(expected)) {
        assert.equal(event.properties[property], value, property);
      }
      assert.ok(
        warningsOf(result).some((w) => warning.test(w)),
        `warnings ${JSON.stringify(warningsOf(result))}`,
      );
    });
  }

  // Left out, another field would stand in for these and write a wrong value: the delivery stays invalid.
  const strict: Array<[string, string, object, RegExp]> = [
    [
      "an amount",
      "carts/update",
      { token: "t", line_items: [{ title: "A", line_price: true }] },
      /line_items\.0\.line_price:/,
    ],
    [
      "a presentment amount (shop money would stand in)",
      "orders/create",
      { cart_token: "o", total_price: "10.00", total_price_set: { presentment_money: { amount: {} } } },
      /total_price_set\.presentment_money\.amount:/,
    ],
    [
      "the presentment currency (the shop's currency would stand in)",
      "orders/create",
      { cart_token: "o", currency: "USD", presentment_currency: 978, total_price: "9.20" },
      /presentment_currency:/,
    ],
    [
      "completed_at (the checkout would look unpaid)",
      "checkouts/update",
      { cart_token: "k", completed_at: 1761991200 },
      /completed_at:/,
    ],
  ];
  for (const [name, topic, body, where] of strict) {
    void it(`${name} of impossible type keeps the delivery invalid`, () => {
      assert.match(reasonOf(map(topic, body), "invalid"), where);
    });
  }

  void it("a checkout with odd types in fields beside the cart keeps everything else", () => {
    const result = map(
      "checkouts/update",
      {
        token: "c",
        cart_token: "k",
        total_price: "19.90",
        presentment_currency: "EUR",
        buyer_accepts_marketing: "true",
        landing_site: 5,
        email: 12345,
        customer: { email: "Buyer@Example.com", first_name: 7, last_name: "Payer" },
        shipping_lines: {},
        discount_codes: [{ code: "SAVE" }, "X"],
        updated_at: 1761991200000,
      },
      { triggeredAt: "2026-11-01T10:00:00Z" },
    );
    const event = eventOf(result);
    assert.equal(event.key, `${SHOP}:k`);
    assert.equal(event.properties.hs_total_price, "19.90");
    assert.equal(event.properties.hs_currency_code, "EUR");
    assert.equal(event.properties.hs_shipping_cost, undefined);
    assert.equal(event.properties.hs_discount_codes, "SAVE");
    assert.equal(event.properties.hs_buyer_accepts_marketing, undefined);
    assert.equal(event.properties.hs_landing_site, undefined);
    // Only the mistyped first name goes: the customer's e-mail and last name are still read.
    assert.equal(event.contact?.email, "buyer@example.com");
    assert.equal(event.contact?.lastname, "Payer");
    assert.equal(event.contact?.firstname, undefined);
    // A numeric updated_at is no time: X-Shopify-Triggered-At is the event time.
    assert.equal(event.stamp.timeMs, Date.UTC(2026, 10, 1, 10));
    const where = warningsOf(result).map((w) => w.slice(0, w.indexOf(":")));
    assert.deepEqual(where.sort(), [
      "buyer_accepts_marketing",
      "customer.first_name",
      "discount_codes[]",
      "email",
      "landing_site",
      "shipping_lines",
      "updated_at",
    ]);
    assert.ok(
      warningsOf(result).every((w) => !w.includes("12345") && !w.includes("1761991200000")),
      "warnings never quote the values (they may be personal)",
    );
  });

  void it("invalid for every mapped topic, never a throw", () => {
    for (const topic of MAPPED_TOPICS) {
      for (const body of ["", "null", "[]", "42", "{not json", deep]) {
        assert.equal(map(topic, body).kind, "invalid", `${topic} with ${body.slice(0, 10)}`);
      }
    }
  });

  void it("deep nesting inside a field the mapping does not read is left alone", () => {
    const event = eventOf(
      map(
        "carts/update",
        `{"token":"t","extra":${deep},"line_items":[{"title":"A","quantity":1,"line_price":"1","properties":${deep}}]}`,
      ),
    );
    assert.equal(event.properties.hs_total_price, "1.00");
  });

  void it("unhandled topics are reported before the body is looked at", () => {
    for (const topic of [
      "app/uninstalled",
      "customers/redact",
      "customers/data_request",
      "shop/redact",
      "orders/cancelled",
      "carts",
      "",
    ]) {
      assert.deepEqual(map(topic, "{not json"), { kind: "unhandled" }, topic);
    }
  });
});
