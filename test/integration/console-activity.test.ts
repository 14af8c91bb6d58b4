import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { BUCKET_MS } from "../../src/store/activity.ts";
import type { IngestItem, Store } from "../../src/store/store.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { storeFactories, usable } from "../helpers/stores.ts";

/**
 * The console's reads (store/activity.ts) on every store: per-shop activity counted in the ingest
 * transaction (first commits only), dead-letter search, cart lookup by key or token.
 */

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const A = "alpha.myshopify.com";
const B = "beta.myshopify.com";

function cartItem(
  shop: string,
  token: string,
  webhookId: string,
  receivedAtMs: number,
  extra: object = {},
): IngestItem {
  const topic = "carts/update";
  const body = Buffer.from(
    JSON.stringify({
      token,
      updated_at: new Date(receivedAtMs).toISOString(),
      line_items: [{ title: "Sock", quantity: 1, line_price: "10.00" }],
      ...extra,
    }),
  );
  return {
    webhookId,
    topic,
    shopDomain: shop,
    receivedAtMs,
    headers: { "x-shopify-topic": topic },
    body,
    mapped: mapDelivery({ topic, shopDomain: shop, body, webhookId, triggeredAt: undefined, receivedAtMs }),
  };
}

function unmappable(shop: string, webhookId: string, receivedAtMs: number): IngestItem {
  const topic = "checkouts/update";
  const body = Buffer.from('{"token": ');
  return {
    webhookId,
    topic,
    shopDomain: shop,
    receivedAtMs,
    headers: {},
    body,
    mapped: mapDelivery({ topic, shopDomain: shop, body, webhookId, triggeredAt: undefined, receivedAtMs }),
  };
}

const factories = await storeFactories();
after(async () => {
  for (const f of factories) await f.cleanup();
});

for (const factory of factories) {
  describe(`console activity on ${factory.name}`, () => {
    async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
      const store = await factory.open();
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    }

    it("counts first commits per shop in the last hour and day, and the last delivery per topic", async (t) => {
      if (!usable(t, factory)) return;
      await withStore(async (store) => {
        const activity = store.activity;
        assert.ok(activity, "the store keeps console activity");
        await store.ingestBatch([
          cartItem(A, "a1", "w1", NOW - 5 * 60_000),
          cartItem(A, "a2", "w2", NOW - 2 * 60_000),
          cartItem(A, "a1", "w1", NOW - 60_000), // the same webhook id again: a duplicate, not counted
          cartItem(B, "b1", "w3", NOW - 3 * 3_600_000),
          cartItem(B, "b2", "w4", NOW - 2 * 86_400_000), // older than a day
        ]);
        await store.ingestBatch([{ ...cartItem(A, "a1", "w1", NOW), replay: true }]); // replays do not count
        await store.ingestBatch([unmappable(A, "w5", NOW - 60_000)]);

        const shops = await activity.shops(NOW);
        assert.deepEqual(
          shops.map((s) => s.shopDomain),
          [A, B],
        );
        const [a, b] = shops;
        assert.equal(a?.deliveriesLastHour, 3);
        assert.equal(a?.deliveriesLastDay, 3);
        assert.deepEqual(a?.lastDeliveryByTopic, {
          "carts/update": NOW - 2 * 60_000,
          "checkouts/update": NOW - 60_000,
        });
        assert.equal(a?.pendingCarts, 2);
        assert.equal(a?.oldestPendingSinceMs, NOW - 5 * 60_000);
        assert.equal(a?.deadLetters, 1);
        assert.equal(b?.deliveriesLastHour, 0);
        assert.equal(b?.deliveriesLastDay, 1);
        assert.equal(b?.lastDeliveryByTopic["carts/update"], NOW - 3 * 3_600_000);

        // Purging at the retention cut-off drops old buckets only.
        await store.purgeExpired(NOW - 86_400_000 - BUCKET_MS);
        const later = await activity.shops(NOW);
        assert.equal(later.find((s) => s.shopDomain === B)?.deliveriesLastDay, 1);
      });
    });

    it("finds dead letters by shop and reason, pages newest first, and looks carts up by key or token", async (t) => {
      if (!usable(t, factory)) return;
      await withStore(async (store) => {
        const activity = store.activity;
        assert.ok(activity);
        await store.ingestBatch([
          unmappable(A, "d1", NOW - 3000),
          unmappable(B, "d2", NOW - 2000),
          unmappable(A, "d3", NOW - 1000),
          cartItem(B, "tok-9", "c1", NOW - 500),
        ]);
        const all = await activity.findDeadLetters({ limit: 10 });
        assert.deepEqual(
          all.map((l) => l.webhookId),
          ["d1", "d2", "d3"],
        );
        const ofA = await activity.findDeadLetters({ shopDomain: A, limit: 10, newestFirst: true });
        assert.deepEqual(
          ofA.map((l) => l.webhookId),
          ["d3", "d1"],
        );
        const older = await activity.findDeadLetters({
          shopDomain: A,
          limit: 10,
          newestFirst: true,
          beforeId: ofA[0]?.id,
        });
        assert.deepEqual(
          older.map((l) => l.webhookId),
          ["d1"],
        );
        assert.equal(await activity.countDeadLetters({ shopDomain: B }), 1);
        assert.equal(await activity.countDeadLetters({ reason: "UNMAPPABLE" }), 3);
        // A category is found in any case, but whole: part of it finds no other category's letters.
        assert.equal(await activity.countDeadLetters({ reason: "unmappable" }), 3);
        assert.equal(await activity.countDeadLetters({ reason: "Mappable" }), 0);
        assert.equal((await activity.findDeadLetters({ reason: "unmappable", limit: 10 })).length, 3);
        assert.equal(await activity.countDeadLetters({ reason: "no such words" }), 0);
        assert.deepEqual(await activity.deadLetterIds({ shopDomain: A }), [ofA[1]?.id, ofA[0]?.id]);
        assert.deepEqual(await activity.deadLetterReasons(), [{ reason: "UNMAPPABLE", count: 3 }]);

        const byToken = await activity.findCarts("tok-9");
        assert.equal(byToken.length, 1);
        assert.equal(byToken[0]?.key, `${B}:tok-9`);
        assert.equal(byToken[0]?.pendingSinceMs, NOW - 500);
        assert.equal(byToken[0]?.state.properties["hs_total_price"]?.value, "10.00");
        assert.equal(byToken[0]?.state.properties["hs_total_price"]?.stamp.timeMs, NOW - 500);
        assert.equal((await activity.findCarts(`${B}:tok-9`))[0]?.version, 1);
        assert.deepEqual(await activity.findCarts(`${A}:tok-9`), []);
        assert.deepEqual(await activity.findCarts("nope"), []);

        // When it was last sent: never yet; then the time HubSpot took it (a rejection is no send).
        assert.equal(byToken[0]?.lastSentAtMs, undefined);
        const [claim] = await store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: 30_000, owner: "o" });
        assert.ok(claim);
        const before = Date.now();
        await store.markSent([{ key: claim.key, version: claim.version, hubspotId: "77" }], "o");
        const sent = (await activity.findCarts("tok-9"))[0];
        assert.ok(
          sent?.lastSentAtMs !== undefined && sent.lastSentAtMs >= before - 1000,
          String(sent?.lastSentAtMs),
        );
        assert.equal(sent.pendingSinceMs, undefined);
        assert.equal(sent.lastError, undefined);

        // A version HubSpot rejects is settled (no longer pending, a dead letter) but not sent: the lookup
        // says why, and when HubSpot last took the cart stays as it was.
        const changed = (n: number, price: string) =>
          cartItem(B, "tok-9", `c${n}`, NOW + n, {
            line_items: [{ title: "Sock", quantity: 1, line_price: price }],
          });
        await store.ingestBatch([changed(2, "12.00")]);
        const [refused] = await store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: 30_000, owner: "o" });
        assert.equal(refused?.version, 2);
        await store.markRejected(
          [
            {
              key: refused.key,
              version: 2,
              reason: "Property values were not valid",
              category: "VALIDATION_ERROR",
            },
          ],
          "o",
          Date.now(),
        );
        const rejected = (await activity.findCarts("tok-9"))[0];
        assert.ok(rejected);
        assert.equal(rejected.pendingSinceMs, undefined);
        assert.equal(rejected.lastError, "rejected by HubSpot: Property values were not valid");
        assert.equal(rejected.lastSentAtMs, sent.lastSentAtMs);
        assert.equal(rejected.hubspotId, "77");

        // The next version HubSpot takes clears it.
        await store.ingestBatch([changed(3, "14.00")]);
        const [taken] = await store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: 30_000, owner: "o" });
        assert.equal(taken?.version, 3);
        await store.markSent([{ key: taken.key, version: 3, hubspotId: "77" }], "o");
        assert.equal((await activity.findCarts("tok-9"))[0]?.lastError, undefined);
      });
    });
  });
}
