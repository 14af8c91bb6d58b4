import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { startTestBridge, type TestBridge } from "../helpers/bridge.ts";
import {
  buildDelivery,
  cartBody,
  checkoutBody,
  fixture,
  TEST_SHOP,
  withOutcome,
  type DeliveryOptions,
} from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * SPEC §4: every `X-Shopify-*` header is also accepted without its `X-` (`Shopify-Hmac-Sha256`,
 * `Shopify-Topic`, …), as Shopify's newer Events deliveries send them. Each route and answer, with only
 * the unprefixed headers on the wire.
 */

/** The delivery Shopify would send, with every `X-Shopify-*` header renamed to `Shopify-*`. */
async function postUnprefixed(
  baseUrl: string,
  opts: DeliveryOptions,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const built = buildDelivery(opts);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(built.headers)) {
    // Title case as Shopify writes them (Node lower-cases on arrival either way).
    const renamed = name.startsWith("x-shopify-")
      ? name.slice(2).replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase())
      : name;
    headers[renamed] = value;
  }
  assert.ok(Object.keys(headers).every((h) => !h.toLowerCase().startsWith("x-")));
  const res = await fetch(`${baseUrl}/webhooks/shopify`, { method: "POST", headers, body: built.body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("Shopify headers without X- (SPEC §4)", () => {
  let hs: FakeHubSpot;
  let bridge: TestBridge;
  const stats = () => bridge.service.store.stats(Date.now());

  before(async () => {
    hs = await startFakeHubSpot();
    bridge = await startTestBridge({ hubspotUrl: hs.url, env: { HUBSPOT_SYNC_CONTACTS: "false" } });
  });
  after(async () => {
    await bridge.stop();
    await hs.close();
  });

  it("cart, checkout, checkout delete and order deliveries are verified, keyed by Shopify-Shop-Domain, and land", async () => {
    const shop = "Unprefixed-Shop.myshopify.com";
    const cases = [
      { topic: "carts/update", body: cartBody("np-cart") },
      { topic: "checkouts/update", body: checkoutBody("np-checkout") },
      fixture("checkouts-delete.shopify-docs-2026-04.json"),
      fixture("orders-create.shopify-docs-2026-01.json"),
    ];
    for (const c of cases) {
      const res = await withOutcome(bridge.url, () =>
        postUnprefixed(bridge.url, { topic: c.topic, body: c.body, shop }),
      );
      assert.equal(res.status, 200, c.topic);
      assert.ok(["applied", "unkeyed"].includes(String(res.outcome)), `${c.topic}: ${res.outcome}`);
    }
    const lower = shop.toLowerCase();
    await waitFor(() => hs.cartByKey(`${lower}:np-cart`) && hs.cartByKey(`${lower}:np-checkout`), {
      what: "carts from unprefixed deliveries",
    });
    assert.equal(hs.cartByKey(`${lower}:np-checkout`)?.properties["hs_external_status"], "checkout");
    await waitFor(
      () =>
        hs.cartByKey(`${lower}:eeafa272cebfd4b22385bc4b645e762c`)?.properties["hs_external_status"] ===
        "deleted",
      {
        what: "the deleted checkout",
      },
    );
  });

  it("Shopify-Triggered-At orders events that carry no updated_at: an older one arriving late changes nothing", async () => {
    const body = (price: string): string => {
      const cart = JSON.parse(cartBody("np-late", { price })) as Record<string, unknown>;
      delete cart["updated_at"];
      return JSON.stringify(cart);
    };
    const newer = await postUnprefixed(bridge.url, {
      topic: "carts/update",
      body: body("9.00"),
      triggeredAt: "2026-11-20T10:00:05.000000Z",
    });
    assert.equal(newer.status, 200);
    await waitFor(() => hs.cartByKey(`${TEST_SHOP}:np-late`)?.properties["hs_total_price"] === "9.00", {
      what: "the newer cart",
    });
    const older = await postUnprefixed(bridge.url, {
      topic: "carts/update",
      body: body("5.00"),
      triggeredAt: "2026-11-20T10:00:01.000000Z",
    });
    assert.equal(older.status, 200);
    await waitFor(async () => (await stats()).pendingCarts === 0, { what: "nothing pending" });
    assert.equal(hs.cartByKey(`${TEST_SHOP}:np-late`)?.properties["hs_total_price"], "9.00");
  });

  it("a repeated Shopify-Webhook-Id is a duplicate", async () => {
    const body = checkoutBody("np-twice");
    const send = () =>
      withOutcome(bridge.url, () =>
        postUnprefixed(bridge.url, { topic: "checkouts/update", body, webhookId: "np-same-id" }),
      );
    const first = await send();
    const second = await send();
    assert.deepEqual([first.outcome, second.outcome], ["applied", "duplicate"]);
  });

  it("privacy topics are answered, and shop/redact erases the shop", async () => {
    const shop = "np-privacy.myshopify.com";
    assert.equal(
      (await postUnprefixed(bridge.url, { topic: "checkouts/update", body: checkoutBody("np-p"), shop }))
        .status,
      200,
    );
    for (const name of [
      "customers-data-request.shopify-docs-2026-04.json",
      "customers-redact.shopify-docs-2026-04.json",
    ]) {
      const f = fixture(name);
      const res = await postUnprefixed(bridge.url, { topic: f.topic, body: f.body, shop });
      assert.equal(res.status, 200, name);
      assert.ok(["acknowledged", "redacted"].includes(String(res.json["outcome"])), JSON.stringify(res.json));
    }
    const redact = fixture("shop-redact.shopify-docs-2026-04.json");
    const res = await postUnprefixed(bridge.url, { topic: redact.topic, body: redact.body, shop });
    assert.deepEqual(res, { status: 200, json: { outcome: "redacted" } });
  });

  it("401 for a missing or wrong Shopify-Hmac-Sha256; nothing stored", async () => {
    // What a refused delivery could have stored (the sender may still be settling earlier carts meanwhile).
    const stored = async () => {
      const s = await stats();
      return { carts: s.carts, deadLetters: s.deadLetters };
    };
    const before = await stored();
    const body = checkoutBody("np-forged");
    assert.equal(
      (await postUnprefixed(bridge.url, { topic: "checkouts/update", body, hmac: null })).status,
      401,
    );
    assert.equal(
      (await postUnprefixed(bridge.url, { topic: "checkouts/update", body, secret: "wrong-secret" })).status,
      401,
    );
    assert.deepEqual(await stored(), before);
  });

  it("400 without Shopify-Topic or Shopify-Shop-Domain", async () => {
    const body = checkoutBody("np-400");
    assert.equal((await postUnprefixed(bridge.url, { topic: "", body })).status, 400);
    assert.equal(
      (await postUnprefixed(bridge.url, { topic: "checkouts/update", body, shop: null })).status,
      400,
    );
  });

  it("a dead letter keeps the unprefixed headers but never the HMAC", async () => {
    const res = await withOutcome(bridge.url, () =>
      postUnprefixed(bridge.url, { topic: "checkouts/update", body: "np not json" }),
    );
    assert.equal(res.outcome, "dead_lettered");
    const letters = await bridge.service.store.listDeadLetters({ limit: 100 });
    const letter = letters.find((l) => l.body?.toString("utf8") === "np not json");
    assert.ok(letter);
    assert.equal(letter.headers["shopify-topic"], "checkouts/update");
    assert.equal(letter.headers["shopify-hmac-sha256"], undefined);
  });
});
