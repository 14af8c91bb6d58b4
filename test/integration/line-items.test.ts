import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { startTestBridge, withBridge, type TestBridge } from "../helpers/bridge.ts";
import { postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";
import { replayDeadLetters } from "../../src/sync/replay.ts";

const key = (token: string) => `${TEST_SHOP}:${token}`;

interface Line {
  variant: number;
  title: string;
  quantity: number;
  price: string;
}

const SHIRT: Line = { variant: 101, title: "Shirt", quantity: 1, price: "20.00" };
const MUG: Line = { variant: 102, title: "Mug", quantity: 2, price: "7.50" };
const CAP: Line = { variant: 103, title: "Cap", quantity: 1, price: "12.00" };

function money(amount: string) {
  return {
    shop_money: { amount, currency_code: "USD" },
    presentment_money: { amount, currency_code: "USD" },
  };
}

function cart(token: string, at: string, lines: Line[]): string {
  return JSON.stringify({
    id: token,
    token,
    updated_at: at,
    line_items: lines.map((l) => ({
      id: l.variant,
      variant_id: l.variant,
      product_id: 9,
      title: l.title,
      quantity: l.quantity,
      price: l.price,
      price_set: money(l.price),
      line_price: l.price,
      total_discount: "0.00",
      total_discount_set: money("0.00"),
      sku: `SKU-${l.variant}`,
    })),
  });
}

function checkout(token: string, at: string, lines: Line[]): string {
  return JSON.stringify({
    token: `chk-${token}`,
    cart_token: token,
    presentment_currency: "USD",
    total_price: "1.00",
    updated_at: at,
    line_items: lines.map((l) => ({
      variant_id: l.variant,
      product_id: 9,
      title: l.title,
      quantity: l.quantity,
      price: l.price,
      sku: `SKU-${l.variant}`,
      discount_allocations: [],
    })),
  });
}

function order(token: string, at: string, lines: Line[]): string {
  return JSON.stringify({
    id: 555,
    cart_token: token,
    presentment_currency: "USD",
    total_price: "1.00",
    updated_at: at,
    line_items: lines.map((l) => ({
      id: 9000 + l.variant,
      variant_id: l.variant,
      product_id: 9,
      title: l.title,
      quantity: l.quantity,
      price: l.price,
      price_set: money(l.price),
      sku: `SKU-${l.variant}`,
      total_discount: "0.00",
      discount_allocations: [],
    })),
  });
}

/** The journey: cart (shirt, mug, cap) → checkout (3 shirts, mug; cap removed) → order (same as checkout). */
function journey(token: string): Array<{ topic: string; body: string; webhookId: string }> {
  const shirts = { ...SHIRT, quantity: 3 };
  return [
    {
      topic: "carts/update",
      body: cart(token, "2026-11-01T10:00:00Z", [SHIRT, MUG, CAP]),
      webhookId: `${token}-1`,
    },
    {
      topic: "checkouts/update",
      body: checkout(token, "2026-11-01T10:05:00Z", [shirts, MUG]),
      webhookId: `${token}-2`,
    },
    {
      topic: "orders/create",
      body: order(token, "2026-11-01T10:09:00Z", [shirts, MUG]),
      webhookId: `${token}-3`,
    },
  ];
}

/** What HubSpot should end with for a journey's cart, written by hand. */
function expectedLines(token: string): Record<string, Record<string, string>> {
  return {
    [`${key(token)}:101`]: {
      name: "Shirt",
      quantity: "3",
      price: "20.00",
      hs_sku: "SKU-101",
      discount: "0.00",
      hs_line_item_currency_code: "USD",
    },
    [`${key(token)}:102`]: {
      name: "Mug",
      quantity: "2",
      price: "7.50",
      hs_sku: "SKU-102",
      discount: "0.00",
      hs_line_item_currency_code: "USD",
    },
  };
}

const WRITTEN = ["name", "quantity", "price", "hs_sku", "discount", "hs_line_item_currency_code"];

/** The cart's live, associated line items in HubSpot: key → the properties cartbridge writes. */
function linesInHubSpot(hs: FakeHubSpot, token: string): Record<string, Record<string, string>> | undefined {
  const cartId = hs.cartByKey(key(token))?.id;
  if (cartId === undefined) return undefined;
  return Object.fromEntries(
    hs
      .lineItemsOfCart(cartId)
      .map((i) => [
        i.key,
        Object.fromEntries(
          WRITTEN.flatMap((p) => (i.properties[p] === undefined ? [] : [[p, i.properties[p]]])),
        ),
      ]),
  );
}

async function settled(hs: FakeHubSpot, bridge: TestBridge, token: string): Promise<void> {
  await waitFor(
    async () => {
      const lines = linesInHubSpot(hs, token);
      if (lines === undefined) return false;
      try {
        assert.deepEqual(lines, expectedLines(token));
      } catch {
        return false;
      }
      const claims = await bridge.service.store.claimLineSetsDue({
        limit: 10,
        nowMs: Date.now(),
        leaseMs: 1,
        owner: "probe",
      });
      return claims.length === 0;
    },
    { what: `line items of ${token}`, timeoutMs: 15_000 },
  );
}

describe("line items", () => {
  it("follow the buyer from cart to checkout to order: one line item per variant, quantities in place, the removed line archived", async () => {
    await withBridge({ ready: true }, async (hs, bridge) => {
      const [cartStep, checkoutStep, orderStep] = journey("j1");
      await postDelivery(bridge.url, cartStep as { topic: string; body: string; webhookId: string });
      await waitFor(
        () => (linesInHubSpot(hs, "j1") ? Object.keys(linesInHubSpot(hs, "j1") ?? {}).length === 3 : false),
        {
          what: "the cart's three lines",
        },
      );
      const shirtId = hs.lineItems().get(`${key("j1")}:101`)?.id;
      const capId = hs.lineItems().get(`${key("j1")}:103`)?.id;
      assert.ok(shirtId && capId);
      await postDelivery(bridge.url, checkoutStep as { topic: string; body: string; webhookId: string });
      await settled(hs, bridge, "j1");
      await postDelivery(bridge.url, orderStep as { topic: string; body: string; webhookId: string });
      await waitFor(() => hs.cartByKey(key("j1"))?.properties["hs_external_status"] === "completed", {
        what: "completed",
      });
      await settled(hs, bridge, "j1");
      assert.equal(
        hs.lineItems().get(`${key("j1")}:101`)?.id,
        shirtId,
        "the shirt kept its HubSpot line item",
      );
      const all = hs.allLineItems();
      assert.equal(all.length, 3, "no line item was created twice");
      assert.deepEqual(
        all.filter((i) => i.archived).map((i) => i.id),
        [capId],
        "the cap was archived",
      );
      const associations = hs.requests.filter((r) => r.path.includes("/batch/associate/default"));
      const associated = associations.flatMap((r) =>
        (r.body as { inputs: Array<{ from: { id: string } }> }).inputs.map((i) => i.from.id),
      );
      assert.equal(new Set(associated).size, associated.length, "each line item associated once");
    });
  });

  it("any delivery order, with duplicates, ends in the same lines", async () => {
    await withBridge({ ready: true }, async (hs, bridge) => {
      const orders = [
        [2, 1, 0],
        [1, 2, 0, 1],
        [0, 2, 2, 1, 0],
      ];
      for (const [n, sequence] of orders.entries()) {
        const token = `p${n}`;
        const steps = journey(token);
        for (const i of sequence)
          await postDelivery(bridge.url, steps[i] as { topic: string; body: string; webhookId: string });
      }
      for (const n of orders.keys()) await settled(hs, bridge, `p${n}`);
      for (const n of orders.keys()) {
        const created = hs.allLineItems().filter((i) => i.key.startsWith(`${key(`p${n}`)}:`) && !i.archived);
        assert.equal(created.length, 2, `p${n}: nothing left over`);
      }
    });
  });

  it("a rejected line is dead-lettered while its cart and the other lines land", async () => {
    await withBridge(
      { ready: true, setup: (hs) => hs.rejectLineItemKey(`${key("r1")}:102`, "Mug is not sellable") },
      async (hs, bridge) => {
        await postDelivery(bridge.url, {
          topic: "checkouts/update",
          body: checkout("r1", "2026-11-01T10:05:00Z", [SHIRT, MUG, CAP]),
        });
        await waitFor(() => Object.keys(linesInHubSpot(hs, "r1") ?? {}).length === 2, {
          what: "the two good lines",
        });
        assert.deepEqual(Object.keys(linesInHubSpot(hs, "r1") ?? {}).sort(), [
          `${key("r1")}:101`,
          `${key("r1")}:103`,
        ]);
        const letters = await waitFor(
          async () => {
            const all = await bridge.service.store.listDeadLetters({ limit: 10 });
            return all.length > 0 ? all : undefined;
          },
          { what: "a dead letter" },
        );
        assert.equal(letters.length, 1);
        assert.match(
          letters[0]?.reason ?? "",
          new RegExp(`^line item ${key("r1")}:102: .*Mug is not sellable`),
        );
        assert.equal(letters[0]?.cartKey, key("r1"));
        assert.ok(hs.cartByKey(key("r1")), "the cart landed");

        assert.equal(letters[0]?.body, undefined, "the cart was sent: its delivery is no longer kept");
        // Once HubSpot accepts it, replaying the dead letter sends the line from the stored line set.
        hs.acceptLineItemKey(`${key("r1")}:102`);
        const [result] = await replayDeadLetters(bridge.service.store, [letters[0]?.id ?? 0], {
          nowMs: Date.now(),
          syncContacts: true,
        });
        assert.equal(result?.outcome, "replayed");
        await waitFor(() => Object.keys(linesInHubSpot(hs, "r1") ?? {}).length === 3, {
          what: "the replayed line",
        });
        assert.equal((await bridge.service.store.listDeadLetters({ limit: 10 })).length, 0);
      },
    );
  });

  it("a crash between the cart upsert and the line upserts loses nothing and duplicates nothing; 403 degrades only line items", async () => {
    const hs = await startFakeHubSpot();
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-lines-"));
    try {
      hs.setScopes({ lineItems: false });
      const first = await startTestBridge({ hubspotUrl: hs.url, dir });
      try {
        await postDelivery(first.url, {
          topic: "checkouts/update",
          body: checkout("k1", "2026-11-01T10:05:00Z", [SHIRT, MUG]),
        });
        await waitFor(() => hs.cartByKey(key("k1")), { what: "the cart despite 403 on line items" });
        const health = await waitFor(
          async () => {
            const res = await fetch(`${first.url}/readyz`);
            const json = (await res.json()) as { degraded?: string[] };
            return res.status === 200 && (json.degraded ?? []).some((d) => d.includes("line item"))
              ? json
              : undefined;
          },
          { what: "/readyz ready but degraded" },
        );
        assert.ok(health.degraded?.some((d) => /line item/.test(d)));
        assert.equal(hs.allLineItems().length, 0);
      } finally {
        await first.stop({ keepDir: true, drainMs: 200 });
      }
      hs.setScopes({ lineItems: true });
      // The association of the first attempt fails once after the upsert: the retry must reuse the line items.
      hs.failNext({ status: 502 }, { path: "/batch/associate/default" });
      const second = await startTestBridge({ hubspotUrl: hs.url, dir });
      try {
        await waitFor(() => Object.keys(linesInHubSpot(hs, "k1") ?? {}).length === 2, {
          what: "lines after restart",
        });
        assert.equal(hs.allLineItems().length, 2, "each line created once");
        assert.equal(hs.carts().size, 1);
        const upserts = hs.requests.filter(
          (r) => r.path.endsWith("/line_items/batch/upsert") && r.status === 200,
        );
        assert.ok(upserts.length >= 2, "the line upsert was repeated after the failed association");
      } finally {
        await second.stop({ drainMs: 200 });
      }
    } finally {
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a value the portal does not offer is left out (logged once), the line still lands; without the key property, /readyz says degraded and carts flow", async () => {
    await withBridge({ ready: true }, async (hs, bridge) => {
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkout("x1", "2026-11-01T10:05:00Z", [SHIRT]).replace(
          '"presentment_currency":"USD"',
          '"presentment_currency":"XTS"',
        ),
      });
      await waitFor(() => Object.keys(linesInHubSpot(hs, "x1") ?? {}).length === 1, { what: "the line" });
      const { hs_line_item_currency_code: currency, ...rest } =
        linesInHubSpot(hs, "x1")?.[`${key("x1")}:101`] ?? {};
      assert.equal(currency, undefined);
      assert.equal(rest["price"], "20.00");
      const dropped = bridge.logs.filter((l) => l["msg"] === "line item property value left out");
      assert.deepEqual(
        dropped.map((l) => [l["property"], l["reason"]]),
        [["hs_line_item_currency_code", "option_not_offered"]],
      );
    });
    await withBridge({ ready: true, fake: { withLineItemKeyProperty: false } }, async (hs, bridge) => {
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkout("x2", "2026-11-01T10:05:00Z", [SHIRT]),
      });
      await waitFor(() => hs.cartByKey(key("x2")), { what: "the cart" });
      const readiness = await bridge.service.readiness();
      assert.equal(readiness.ready, true);
      assert.ok(
        (readiness.degraded ?? []).some((d) =>
          /line item property shopify_line_item_key does not exist/.test(d),
        ),
      );
      assert.equal(hs.allLineItems().length, 0);
    });
  });
});
