import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { startShopifyAdminSandbox, type ShopifyAdminSandbox } from "../fakes/shopify-admin.ts";
import { startTestBridge, type TestBridge } from "../helpers/bridge.ts";
import {
  checkoutBody,
  checkoutNode,
  iso,
  orderBody,
  orderNode,
  reconcileEnv,
  seedCarts,
} from "../helpers/reconcile.ts";
import { deliver, postDelivery } from "../helpers/shopify.ts";
import { storeFactories, usable, type StoreFactory } from "../helpers/stores.ts";
import { waitFor } from "../helpers/wait.ts";
import { createShopifyAdmin, type ShopifyAdmin } from "../../src/shopify/admin-client.ts";
import type { Reconciler } from "../../src/sync/reconcile/reconciler.ts";

const SHOP = "recon-shop.myshopify.com";
const OTHER = "other-shop.myshopify.com";
const factories = await storeFactories();

function reconcilerOf(bridge: TestBridge): Reconciler {
  const r = bridge.service.reconciler;
  assert.ok(r !== undefined, "reconciliation is configured");
  return r;
}

async function withReconcilingBridge(
  opts: {
    factory?: StoreFactory;
    intervalMs?: number;
    shops?: string[];
    sandbox?: Parameters<typeof startShopifyAdminSandbox>[0];
    env?: Record<string, string>;
  },
  body: (ctx: { sandbox: ShopifyAdminSandbox; hs: FakeHubSpot; bridge: TestBridge }) => Promise<void>,
): Promise<void> {
  const sandbox = await startShopifyAdminSandbox(opts.sandbox);
  const hs = await startFakeHubSpot();
  const env = {
    ...reconcileEnv(sandbox, opts.shops ?? [SHOP], opts.intervalMs ?? 0),
    ...(opts.factory === undefined ? {} : { DATABASE_URL: await opts.factory.freshUrl() }),
    ...opts.env,
  };
  const bridge = await startTestBridge({ hubspotUrl: hs.url, env });
  try {
    await waitFor(async () => (await bridge.service.readiness()).ready, { what: "ready" });
    await body({ sandbox, hs, bridge });
  } finally {
    await bridge.stop({ drainMs: 500 });
    await hs.close();
    await sandbox.close();
  }
}

describe("reconciliation through the Shopify Admin sandbox", () => {
  after(async () => {
    for (const f of factories) await f.cleanup();
  });

  it("an order whose webhook never came completes its cart within one interval", async () => {
    await withReconcilingBridge({ intervalMs: 300 }, async ({ sandbox, hs, bridge }) => {
      const now = Date.now();
      const sent = await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: JSON.stringify(checkoutBody(1, now - 5000)),
        shop: SHOP,
      });
      assert.equal(sent.status, 200);
      const key = `${SHOP}:cart-1`;
      await waitFor(() => hs.cartByKey(key)?.properties["hs_external_status"] === "checkout", {
        what: "checkout in HubSpot",
      });
      // The order exists in Shopify; its orders/create webhook never reaches the bridge.
      sandbox.putOrders(SHOP, [orderNode(1, orderBody(1, Date.now()))]);
      await waitFor(() => hs.cartByKey(key)?.properties["hs_external_status"] === "completed", {
        what: "completed in HubSpot",
      });
      assert.equal(hs.cartByKey(key)?.properties["hs_total_price"], "404.95");
      assert.equal(hs.carts().size, 1);
    });
  });

  for (const factory of factories) {
    it(`${factory.name}: a backfill over many pages lands every cart as its webhook would; the webhook afterwards makes no second cart and changes nothing reconciliation wrote; a second pass sends nothing`, async (t) => {
      if (!usable(t, factory)) return;
      const count = 1_400; // with every second one ordered: 2,100 nodes, "thousands", over ~45 pages
      const base = Date.now() - 3 * 86_400_000;
      await withReconcilingBridge(
        { factory, sandbox: { restoreRatePerS: 50_000 } },
        async ({ sandbox, hs, bridge }) => {
          const { checkouts, orders } = seedCarts(sandbox, SHOP, count, (i) => base + i * 1000);
          const first = await reconcilerOf(bridge).runOnce(SHOP);
          assert.equal(first.outcome, "completed");
          // Three days old, and never delivered: every change the first pass makes was missed (SPEC §9).
          assert.deepEqual(first.summary, {
            read: count + orders.length,
            changed: count + orders.length,
            missed: count + orders.length,
            skipped: 0,
          });
          const pages = sandbox.requests.filter(
            (r) => r.kind === "graphql" && r.status === 200 && r.code === undefined,
          );
          assert.ok(pages.length >= 10, `several pages (${pages.length})`);
          await waitFor(
            async () =>
              (await bridge.service.store.stats(Date.now())).pendingCarts === 0 && hs.carts().size === count,
            { what: "carts sent", timeoutMs: 60_000 },
          );
          const reconciled = new Map([...hs.carts()].map(([k, c]) => [k, { ...c.properties }]));
          assert.equal(reconciled.get(`${SHOP}:cart-0`)?.["hs_external_status"], "completed");
          assert.equal(reconciled.get(`${SHOP}:cart-1`)?.["hs_external_status"], "checkout");

          // A second pass over the same data (everything read again) changes nothing and leaves nothing to send.
          const cartUpserts = () => hs.requests.filter((r) => r.path.includes("/carts/batch/upsert")).length;
          const upsertsBefore = cartUpserts();
          const second = await reconcilerOf(bridge).runOnce(SHOP, { sinceMs: 0 });
          assert.deepEqual(second.summary, {
            read: count + orders.length,
            changed: 0,
            missed: 0,
            skipped: 0,
          });
          assert.equal((await bridge.service.store.stats(Date.now())).pendingCarts, 0);
          await new Promise((r) => setTimeout(r, 300)); // three flush intervals: a pending cart would be sent
          assert.equal(cartUpserts(), upsertsBefore);

          // Then the webhooks of the same checkouts and orders arrive, through the real endpoint.
          for (const [topic, bodies] of [
            ["checkouts/update", checkouts],
            ["orders/create", orders],
          ] as const) {
            for (const b of bodies) {
              const res = await postDelivery(bridge.url, { topic, body: JSON.stringify(b), shop: SHOP });
              assert.equal(res.status, 200);
            }
          }
          await waitFor(async () => (await bridge.service.store.stats(Date.now())).pendingCarts === 0, {
            what: "webhook changes sent",
            timeoutMs: 60_000,
          });
          assert.equal(hs.carts().size, count, "no second cart");
          // Only what the Admin API cannot carry is added (shipping of checkouts, marketing consent of orders).
          const addedOnly = new Set([
            "hs_shipping_cost",
            "hs_buyer_accepts_marketing",
            "hs_landing_site",
            "hs_referring_site",
          ]);
          for (const [key, before] of reconciled) {
            const now = hs.cartByKey(key)?.properties ?? {};
            for (const [name, value] of Object.entries(before)) {
              if (name === "hs_lastmodifieddate" || name === "hs_object_id" || name === "hs_createdate")
                continue;
              assert.equal(now[name], value, `${key} ${name}`);
            }
            for (const name of Object.keys(now)) {
              if (!(name in before)) assert.ok(addedOnly.has(name), `${key}: webhook added ${name}`);
            }
          }
        },
      );
    });
  }

  it("older reconciliation data never overwrites a newer webhook, and at an equal time the webhook wins", async () => {
    await withReconcilingBridge({}, async ({ sandbox, hs, bridge }) => {
      const t = Date.now() - 3_600_000;
      for (const i of [1, 2]) {
        // Applied before the pass reads the store (deliver waits for that, not only for the answer).
        const res = await deliver(bridge.url, {
          topic: "checkouts/update",
          body: JSON.stringify(checkoutBody(i, t, "100.00")),
          shop: SHOP,
        });
        assert.deepEqual([res.status, res.outcome], [200, "applied"]);
      }
      // Shopify's view: cart 1 older than the webhook, cart 2 at the same instant; both with another total.
      sandbox.putCheckouts(SHOP, [
        checkoutNode(SHOP, 1, checkoutBody(1, t - 60_000, "999.00")),
        checkoutNode(SHOP, 2, checkoutBody(2, t, "999.00")),
      ]);
      const result = await reconcilerOf(bridge).runOnce(SHOP);
      assert.equal(result.outcome, "completed");
      assert.equal(result.summary.changed, 0);
      await waitFor(
        async () =>
          (await bridge.service.store.stats(Date.now())).pendingCarts === 0 && hs.carts().size === 2,
        { what: "sent" },
      );
      assert.equal(hs.cartByKey(`${SHOP}:cart-1`)?.properties["hs_total_price"], "100.00");
      assert.equal(hs.cartByKey(`${SHOP}:cart-2`)?.properties["hs_total_price"], "100.00");
    });
  });

  it("a backfilled abandoned checkout brings its line items, keyed as its webhook keys them: the webhook afterwards adds none", async () => {
    await withReconcilingBridge({}, async ({ sandbox, hs, bridge }) => {
      const t = Date.now() - 3_600_000;
      const body = checkoutBody(5, t);
      sandbox.putCheckouts(SHOP, [checkoutNode(SHOP, 5, body)]);
      const result = await reconcilerOf(bridge).runOnce(SHOP);
      assert.equal(result.outcome, "completed");
      const key = `${SHOP}:cart-5`;
      const lines = () => {
        const cartId = hs.cartByKey(key)?.id;
        return cartId === undefined ? [] : hs.lineItemsOfCart(cartId);
      };
      await waitFor(() => lines().length === 2, { what: "the checkout's two lines in HubSpot" });
      assert.deepEqual(
        lines()
          .map((l) => l.key)
          .sort(),
        [`${key}:808950810`, `${key}:808950810:2`],
      );
      const first = lines().find((l) => l.key === `${key}:808950810`);
      assert.deepEqual(
        [first?.properties["name"], first?.properties["price"], first?.properties["hs_sku"]],
        ["IPod Nano - 8GB - Pink", "199.00", "IPOD2008PINK"],
      );
      const ids = new Set(hs.allLineItems().map((l) => l.id));

      // The same checkout's webhook, newer: the same lines, the same HubSpot line items, none archived.
      const res = await deliver(bridge.url, {
        topic: "checkouts/update",
        body: JSON.stringify(checkoutBody(5, t + 60_000)),
        shop: SHOP,
      });
      assert.deepEqual([res.status, res.outcome], [200, "applied"]);
      await waitFor(async () => (await bridge.service.store.stats(Date.now())).pendingCarts === 0, {
        what: "the webhook's change sent",
      });
      await waitFor(async () => (await bridge.service.store.lineSetOf(key))?.known.length === 2, {
        what: "the line set settled",
      });
      assert.deepEqual(new Set(hs.allLineItems().map((l) => l.id)), ids, "no new HubSpot line item");
      assert.equal(hs.allLineItems().filter((l) => l.archived).length, 0, "none archived");
    });
  });

  it("without read_products (the lines' variant and product refused) checkouts are read all the same, the webhook's line items kept", async () => {
    await withReconcilingBridge(
      { sandbox: { deniedFields: ["variant", "product"] } },
      async ({ sandbox, hs, bridge }) => {
        const t = Date.now() - 3_600_000;
        const key = `${SHOP}:cart-6`;
        // The webhook brought the lines, keyed by variant.
        const res = await deliver(bridge.url, {
          topic: "checkouts/update",
          body: JSON.stringify(checkoutBody(6, t)),
          shop: SHOP,
        });
        assert.deepEqual([res.status, res.outcome], [200, "applied"]);
        const lines = () => {
          const cartId = hs.cartByKey(key)?.id;
          return cartId === undefined ? [] : hs.lineItemsOfCart(cartId);
        };
        await waitFor(() => lines().length === 2, { what: "the webhook's two lines" });
        const before = hs.allLineItems().map((l) => `${l.id} ${l.key} ${String(l.archived)}`);

        // Shopify has a newer version of the checkout, another total.
        sandbox.putCheckouts(SHOP, [checkoutNode(SHOP, 6, checkoutBody(6, t + 60_000, "500.00"))]);
        const result = await reconcilerOf(bridge).runOnce(SHOP);
        assert.equal(result.outcome, "completed");
        assert.equal(result.summary.changed, 1);
        assert.ok(
          sandbox.requests.some((r) => r.code === "ACCESS_DENIED"),
          "the first query asked for what the scopes do not reach",
        );
        await waitFor(() => hs.cartByKey(key)?.properties["hs_total_price"] === "500.00", {
          what: "the newer total in HubSpot",
        });
        assert.equal(hs.cartByKey(key)?.properties["hs_cart_name"], "IPod Nano - 8GB + 1 more (2 items)");
        await waitFor(async () => (await bridge.service.store.stats(Date.now())).pendingCarts === 0, {
          what: "sent",
        });
        assert.deepEqual(
          hs.allLineItems().map((l) => `${l.id} ${l.key} ${String(l.archived)}`),
          before,
          "the line items as the webhook left them",
        );
      },
    );
  });

  it("an abandoned checkout with the older /checkouts/<token>/recover URL joins its cart through the link a checkout webhook taught", async () => {
    await withReconcilingBridge({}, async ({ sandbox, hs, bridge }) => {
      const t = Date.now() - 3_600_000;
      const older = `https://checkout.local/548380009/checkouts/chk-7/recover?key=k`;
      const webhook = { ...checkoutBody(7, t, "100.00"), abandoned_checkout_url: older };
      assert.equal(
        (
          await postDelivery(bridge.url, {
            topic: "checkouts/update",
            body: JSON.stringify(webhook),
            shop: SHOP,
          })
        ).status,
        200,
      );
      await waitFor(
        async () =>
          (await bridge.service.store.reconcile.cartTokensOf(SHOP, ["chk-7"])).get("chk-7") === "cart-7",
        { what: "link learned" },
      );
      const newer = checkoutNode(SHOP, 7, {
        ...checkoutBody(7, t + 60_000, "150.00"),
        abandoned_checkout_url: older,
      });
      sandbox.putCheckouts(SHOP, [{ ...newer, abandonedCheckoutUrl: older }]);
      const result = await reconcilerOf(bridge).runOnce(SHOP);
      assert.equal(result.summary.changed, 1);
      await waitFor(() => hs.cartByKey(`${SHOP}:cart-7`)?.properties["hs_total_price"] === "150.00", {
        what: "newer total sent",
      });
      assert.equal(hs.carts().size, 1, "no cart keyed by the checkout token");
    });
  });

  it("a --since backfill that starts after the watermark leaves the watermark, so the gap is read later", async () => {
    await withReconcilingBridge({}, async ({ sandbox, hs, bridge }) => {
      const threeDaysAgo = Date.now() - 3 * 86_400_000;
      for (const source of ["checkouts", "orders"] as const) {
        await bridge.service.store.reconcile.setWatermark(SHOP, source, threeDaysAgo);
      }
      // An order of two days ago: outside `--since 1d`, inside what the next regular pass must read.
      sandbox.putOrders(SHOP, [orderNode(8, orderBody(8, Date.now() - 2 * 86_400_000))]);
      const backfill = await reconcilerOf(bridge).runOnce(SHOP, { sinceMs: Date.now() - 86_400_000 });
      assert.equal(backfill.outcome, "completed");
      assert.equal(backfill.summary.read, 0);
      for (const source of ["checkouts", "orders"] as const) {
        assert.equal(await bridge.service.store.reconcile.watermark(SHOP, source), threeDaysAgo);
      }
      const regular = await reconcilerOf(bridge).runOnce(SHOP);
      assert.equal(regular.summary.read, 1);
      await waitFor(() => hs.cartByKey(`${SHOP}:cart-8`)?.properties["hs_external_status"] === "completed", {
        what: "the order of two days ago",
      });
    });
  });

  it("THROTTLED and MAX_COST_EXCEEDED never fail a pass", async () => {
    await withReconcilingBridge(
      { sandbox: { maxQueryCost: 400, restoreRatePerS: 500 } },
      async ({ sandbox, bridge }) => {
        seedCarts(sandbox, SHOP, 40, (i) => Date.now() - 86_400_000 + i);
        sandbox.spend(SHOP, 1000);
        const result = await reconcilerOf(bridge).runOnce(SHOP);
        assert.equal(result.outcome, "completed");
        assert.equal(result.summary.read, 60);
        const codes = sandbox.requests.map((r) => r.code);
        assert.ok(codes.includes("THROTTLED"), "was throttled");
        assert.ok(codes.includes("MAX_COST_EXCEEDED"), "hit the single-query limit");
        for (const r of sandbox.requests.filter((x) => x.code === undefined && x.kind === "graphql")) {
          assert.ok((r.requestedCost ?? 0) <= 400);
        }
      },
    );
  });

  it("the first pass counts as missed a change webhooks never brought (over 10 minutes old), not a newer one; its reads are no deliveries in the console", async () => {
    await withReconcilingBridge({ env: { ADMIN_TOKEN: "admin-secret" } }, async ({ sandbox, bridge }) => {
      // The checkout came by webhook; the order that completed it 15 minutes ago did not. Another order,
      // 2 minutes old, may still be on its way: changed, not missed.
      const sent = await deliver(bridge.url, {
        topic: "checkouts/update",
        body: JSON.stringify(checkoutBody(7, Date.now() - 30 * 60_000)),
        shop: SHOP,
      });
      assert.equal(sent.status, 200);
      const missedAt = Date.now() - 15 * 60_000;
      sandbox.putOrders(SHOP, [
        orderNode(7, orderBody(7, missedAt)),
        orderNode(8, orderBody(8, Date.now() - 120_000)),
      ]);
      const r = reconcilerOf(bridge);
      const result = await r.runOnce(SHOP);
      assert.equal(result.outcome, "completed");
      assert.equal(result.summary.changed, 2);
      assert.equal(result.summary.missed, 1);
      const status = r.status().find((s) => s.shopDomain === SHOP);
      assert.equal(status?.lastMissed?.cartKey, `${SHOP}:cart-7`);
      assert.equal(status?.lastMissed?.updatedAtMs, Date.parse(iso(missedAt)));
      const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
      assert.match(metrics, /reconcile_missed_total\{topic="orders"\} 1/);

      // The console counts the one delivery, under its topic; the Admin API's reads are not deliveries.
      const overview = (await (
        await fetch(`${bridge.url}/admin/overview`, { headers: { authorization: "Bearer admin-secret" } })
      ).json()) as {
        shops: Array<{
          shopDomain: string;
          deliveriesLastHour: number;
          lastDeliveryByTopic: Record<string, number>;
        }>;
      };
      const row = overview.shops.find((s) => s.shopDomain === SHOP);
      assert.equal(row?.deliveriesLastHour, 1, JSON.stringify(overview.shops));
      assert.deepEqual(Object.keys(row.lastDeliveryByTopic), ["checkouts/update"]);
    });
  });

  it("a missed change is counted per topic and shown as the shop's last missed change", async () => {
    await withReconcilingBridge({ env: { ADMIN_TOKEN: "admin-secret" } }, async ({ sandbox, bridge }) => {
      const r = reconcilerOf(bridge);
      assert.equal((await r.runOnce(SHOP)).outcome, "completed");
      // The watermark as if the last pass ran an hour ago; then an order updated 20 minutes ago shows up.
      for (const source of ["checkouts", "orders"] as const) {
        await bridge.service.store.reconcile.setWatermark(SHOP, source, Date.now() - 3_600_000);
      }
      const updatedAt = Date.now() - 20 * 60_000;
      sandbox.putOrders(SHOP, [orderNode(5, orderBody(5, updatedAt))]);
      const result = await r.runOnce(SHOP);
      assert.equal(result.summary.missed, 1);
      const status = r.status().find((s) => s.shopDomain === SHOP);
      assert.equal(status?.lastMissed?.topic, "orders");
      assert.equal(status?.lastMissed?.cartKey, `${SHOP}:cart-5`);
      assert.equal(status?.lastMissed?.updatedAtMs, Date.parse(iso(updatedAt)));
      const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
      assert.match(metrics, /reconcile_missed_total\{topic="orders"\} 1/);
      assert.match(metrics, /reconcile_missed_total\{topic="checkouts"\} 0/);
      // The console's overview names it on the shop's row, though no webhook of that shop ever arrived.
      const overview = (await (
        await fetch(`${bridge.url}/admin/overview`, { headers: { authorization: "Bearer admin-secret" } })
      ).json()) as { shops: Array<{ shopDomain: string; reconciliation: Record<string, unknown> | null }> };
      const row = overview.shops.find((s) => s.shopDomain === SHOP);
      assert.ok(row?.reconciliation, JSON.stringify(overview.shops));
      assert.match(JSON.stringify(row.reconciliation), new RegExp(`${SHOP}:cart-5`));
      // The cart reconciliation made is found by its token alone, though the shop never delivered.
      const lookup = (await (
        await fetch(`${bridge.url}/admin/carts?q=cart-5`, {
          headers: { authorization: "Bearer admin-secret" },
        })
      ).json()) as { carts: Array<{ key: string }> };
      assert.deepEqual(
        lookup.carts.map((c) => c.key),
        [`${SHOP}:cart-5`],
      );
    });
  });

  it("401/403 and a refused grant pause only that shop, named in /readyz degraded and /admin/status; a renewed token resumes", async () => {
    await withReconcilingBridge(
      { shops: [SHOP, OTHER], sandbox: { permittedShops: [SHOP] }, env: { ADMIN_TOKEN: "admin-secret" } },
      async ({ sandbox, bridge }) => {
        const r = reconcilerOf(bridge);
        assert.equal((await r.runOnce(SHOP)).outcome, "completed");
        const refused = await r.runOnce(OTHER);
        assert.equal(refused.outcome, "paused");
        sandbox.forbid(SHOP, 403);
        assert.equal((await r.runOnce(SHOP)).outcome, "paused");
        const ready = await fetch(`${bridge.url}/readyz`);
        assert.equal(ready.status, 200, "webhooks keep flowing");
        const readyJson = (await ready.json()) as { degraded: string[] };
        assert.ok(
          readyJson.degraded.some((d) => d.includes(OTHER) && d.includes("shop_not_permitted")),
          JSON.stringify(readyJson),
        );
        assert.ok(
          readyJson.degraded.some((d) => d.includes(SHOP) && d.includes("403")),
          JSON.stringify(readyJson),
        );
        const status = (await (
          await fetch(`${bridge.url}/admin/status`, { headers: { authorization: "Bearer admin-secret" } })
        ).json()) as {
          reconciliation: { shopDomain: string; state: string; pausedReason?: string }[];
        };
        assert.deepEqual(status.reconciliation.map((s) => [s.shopDomain, s.state]).sort(), [
          [OTHER, "paused"],
          [SHOP, "paused"],
        ]);
        // No secret in any log line.
        const logged = JSON.stringify(bridge.logs);
        assert.doesNotMatch(logged, /shpat_/);
        assert.doesNotMatch(logged, /sandbox-client-secret/);

        // An expired token is renewed after the 401 and the shop resumes.
        sandbox.forbid(SHOP, undefined);
        sandbox.expireTokens();
        const grantsBefore = sandbox.requests.filter((x) => x.kind === "grant" && x.shop === SHOP).length;
        assert.equal((await r.runOnce(SHOP)).outcome, "completed");
        assert.equal(
          sandbox.requests.filter((x) => x.kind === "grant" && x.shop === SHOP).length,
          grantsBefore + 1,
        );
        assert.equal(r.status().find((s) => s.shopDomain === SHOP)?.state, "idle");
      },
    );
  });
});

describe("reconciliation across restarts and replicas", () => {
  let sandbox: ShopifyAdminSandbox;
  before(async () => {
    sandbox = await startShopifyAdminSandbox({ restoreRatePerS: 50_000 });
  });
  after(async () => {
    await sandbox.close();
    for (const f of factories) await f.cleanup();
  });

  it("a store that cannot record the last missed change fails nothing: the pass completes, counts it and logs why", async () => {
    const factory = factories.find((f) => f.name === "sqlite");
    assert.ok(factory !== undefined);
    const { createReconciler } = await import("../../src/sync/reconcile/reconciler.ts");
    const { StoreError } = await import("../../src/errors.ts");
    const shop = "record-fails.myshopify.com";
    sandbox.putOrders(shop, [orderNode(9, orderBody(9, Date.now() - 20 * 60_000))]);
    const store = await factory.open();
    const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
    try {
      const refusing = {
        ...store,
        reconcile: {
          ...store.reconcile,
          recordMissed: () => Promise.reject(new StoreError("the disk is full", { retryable: true })),
        },
      };
      const reconciler = createReconciler({
        admin: sandboxAdmin(sandbox.adminApiUrl, shop),
        store: refusing,
        intervalMs: 0,
        lookbackDays: 30,
        syncContacts: false,
        owner: "record-fails",
        log: { info: () => {}, warn: (fields, message) => warnings.push({ fields: { ...fields }, message }) },
      });
      const result = await reconciler.runOnce(shop);
      assert.equal(result.outcome, "completed");
      assert.equal(result.summary.missed, 1);
      assert.equal((await store.stats(Date.now())).carts, 1, "the page is ingested");
      const status = reconciler.status().find((s) => s.shopDomain === shop);
      assert.equal(status?.lastMissed?.cartKey, `${shop}:cart-9`, "shown from memory meanwhile");
      assert.deepEqual(
        warnings.map((w) => [w.message, w.fields["shop"], (w.fields["err"] as Error | undefined)?.message]),
        [["recording reconciliation's last missed change failed", shop, "the disk is full"]],
      );
      assert.equal((await store.reconcile.lastMissed()).get(shop), undefined, "nothing was recorded");
    } finally {
      await store.close();
    }
  });

  for (const factory of factories) {
    it(`${factory.name}: the shop's last missed change outlives a restart, and one another process found shows once read`, async (t) => {
      if (!usable(t, factory)) return;
      const { openStore } = await import("../../src/store/open.ts");
      const { createReconciler } = await import("../../src/sync/reconcile/reconciler.ts");
      const shop = `missed-${factory.name}.myshopify.com`;
      const url = await factory.freshUrl();
      const updatedAt = Date.now() - 20 * 60_000;
      sandbox.putOrders(shop, [orderNode(7, orderBody(7, updatedAt))]);
      const reconcilerOn = (store: Awaited<ReturnType<typeof openStore>>) =>
        createReconciler({
          admin: sandboxAdmin(sandbox.adminApiUrl, shop),
          store,
          intervalMs: 0,
          lookbackDays: 30,
          syncContacts: false,
          owner: "missed-test",
          log: { info: () => {}, warn: () => {} },
        });
      const lastMissedOf = (r: Reconciler) => r.status().find((s) => s.shopDomain === shop)?.lastMissed;

      const store1 = await openStore(url);
      const first = reconcilerOn(store1);
      assert.equal((await first.runOnce(shop)).summary.missed, 1);
      const found = lastMissedOf(first);
      assert.deepEqual(found, {
        ...found,
        topic: "orders",
        cartKey: `${shop}:cart-7`,
        updatedAtMs: Date.parse(iso(updatedAt)),
      });
      await first.stop();
      await store1.close();

      // After a restart: shown before any pass.
      const store2 = await openStore(url);
      const second = reconcilerOn(store2);
      try {
        assert.equal(lastMissedOf(second), undefined);
        second.start();
        await waitFor(() => lastMissedOf(second) !== undefined, { what: "the stored last missed change" });
        assert.deepEqual(lastMissedOf(second), found);
        // Another process (`cartbridge reconcile`, a replica) found a later one: shown once read, an older
        // one never replaces it.
        const later = {
          topic: "checkouts",
          cartKey: `${shop}:cart-8`,
          updatedAtMs: 1,
          foundAtMs: Date.now() + 1,
        } as const;
        await store2.reconcile.recordMissed(shop, later);
        await store2.reconcile.recordMissed(shop, { ...later, cartKey: `${shop}:stale`, foundAtMs: 1 });
        await second.loadMissed();
        assert.deepEqual(lastMissedOf(second), later);
      } finally {
        await second.stop();
        await store2.close();
      }
    });

    it(`${factory.name}: a restart mid-pass resumes from the last watermark without losing a page`, async (t) => {
      if (!usable(t, factory)) return;
      const { openStore } = await import("../../src/store/open.ts");
      const { runPass } = await import("../../src/sync/reconcile/pass.ts");
      const shop = `restart-${factory.name}.myshopify.com`;
      seedCarts(sandbox, shop, 200, (i) => Date.now() - 86_400_000 + i * 1000);
      const url = await factory.freshUrl();
      const admin = sandboxAdmin(sandbox.adminApiUrl, shop);
      const deps = {
        admin,
        now: Date.now,
        sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
        syncContacts: true,
      };

      const store1 = await openStore(url);
      const crash = new AbortController();
      const interrupted = await runPass(
        { ...deps, store: store1, signal: crash.signal, onPage: (p) => p.page === 2 && crash.abort() },
        { shopDomain: shop, lookbackDays: 30 },
      );
      assert.equal(interrupted.outcome, "stopped");
      assert.ok(interrupted.summary.read > 0 && interrupted.summary.read < 300);
      assert.equal(
        await store1.reconcile.watermark(shop, "checkouts"),
        undefined,
        "the watermark did not move",
      );
      await store1.close();

      const store2 = await openStore(url);
      const resumed = await runPass({ ...deps, store: store2 }, { shopDomain: shop, lookbackDays: 30 });
      assert.equal(resumed.outcome, "completed");
      assert.equal(resumed.summary.read, 300);
      assert.equal((await store2.stats(Date.now())).carts, 200);
      assert.ok((await store2.reconcile.watermark(shop, "orders")) !== undefined);
      await store2.close();
    });

    it(`${factory.name}: the reconcile lease admits one owner at a time and expires`, async (t) => {
      if (!usable(t, factory)) return;
      const [a, b] = await factory.openReplicas(2);
      assert.ok(a !== undefined && b !== undefined);
      try {
        const now = Date.now();
        assert.equal(await a.reconcile.acquireReconcileLease(SHOP, "A", now, now + 1000), true);
        assert.equal(await b.reconcile.acquireReconcileLease(SHOP, "B", now, now + 1000), false);
        assert.equal(
          await a.reconcile.acquireReconcileLease(SHOP, "A", now + 10, now + 2000),
          true,
          "renewed by its owner",
        );
        assert.equal(
          await b.reconcile.acquireReconcileLease(SHOP, "B", now + 2001, now + 3000),
          true,
          "taken once expired",
        );
        await b.reconcile.releaseReconcileLease(SHOP, "B");
        assert.equal(
          await a.reconcile.acquireReconcileLease(SHOP, "A", now + 2002, now + 3000),
          true,
          "free after release",
        );
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  it("postgres: two replicas never reconcile one shop at once", async (t) => {
    const factory = factories.find((f) => f.name === "postgres");
    assert.ok(factory !== undefined);
    if (!usable(t, factory)) return;
    const { createReconciler } = await import("../../src/sync/reconcile/reconciler.ts");
    const shop = "replicas.myshopify.com";
    seedCarts(sandbox, shop, 400, (i) => Date.now() - 86_400_000 + i * 1000);
    const stores = await factory.openReplicas(2);
    const quiet = { info: () => {}, warn: () => {} };
    const runs: { owner: string; outcome: string; startMs: number; endMs: number }[] = [];
    try {
      const reconcilers = stores.map((store, n) =>
        createReconciler({
          admin: sandboxAdmin(sandbox.adminApiUrl, shop),
          store,
          intervalMs: 0,
          lookbackDays: 30,
          syncContacts: true,
          owner: `replica-${n}`,
          log: quiet,
        }),
      );
      await Promise.all(
        reconcilers.flatMap((r, n) =>
          [0, 1, 2].map(async () => {
            const startMs = performance.now();
            const result = await r.runOnce(shop, { sinceMs: 0 });
            runs.push({ owner: `replica-${n}`, outcome: result.outcome, startMs, endMs: performance.now() });
          }),
        ),
      );
    } finally {
      for (const s of stores) await s.close();
    }
    const completed = runs.filter((r) => r.outcome === "completed");
    assert.ok(completed.length >= 1);
    assert.ok(
      runs.some((r) => r.outcome === "leased"),
      JSON.stringify(runs),
    );
    // Passes of different replicas that completed never overlapped in time.
    for (const x of completed) {
      for (const y of completed) {
        if (x.owner !== y.owner)
          assert.ok(x.endMs <= y.startMs || y.endMs <= x.startMs, JSON.stringify(runs));
      }
    }
  });
});

/** An Admin client of one shop against the sandbox, authenticating by client credentials. */
function sandboxAdmin(adminApiUrl: string, shop: string): ShopifyAdmin {
  return createShopifyAdmin({
    apiVersion: "2026-10",
    adminApiUrl,
    shops: [shop],
    adminTokens: new Map(),
    clientId: "sandbox-client-id",
    clientSecret: "sandbox-client-secret",
  });
}
