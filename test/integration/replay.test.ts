import assert from "node:assert/strict";
import { after, describe, it, type TestContext } from "node:test";
import type { IngestItem, Store } from "../../src/store/store.ts";
import { bodyDigest, mapVerifiedDelivery } from "../../src/sync/delivery-mapping.ts";
import { currentValues } from "../../src/sync/merge.ts";
import { replayDeadLetters } from "../../src/sync/replay.ts";
import { checkoutBody, TEST_SHOP } from "../helpers/shopify.ts";
import { storeFactories, usable } from "../helpers/stores.ts";

const T0 = Date.UTC(2030, 0, 1);
const TOPIC = "checkouts/update";

/** A delivery the way live ingest stores it (mapped with `syncContacts`), without a webhook id. */
function live(body: string, syncContacts = true): IngestItem {
  const raw = Buffer.from(body);
  return {
    webhookId: undefined,
    topic: TOPIC,
    shopDomain: TEST_SHOP,
    receivedAtMs: T0,
    headers: { "x-shopify-topic": TOPIC, "x-shopify-shop-domain": TEST_SHOP },
    body: raw,
    mapped: mapVerifiedDelivery({
      topic: TOPIC,
      shopDomain: TEST_SHOP,
      body: raw,
      webhookId: undefined,
      triggeredAt: undefined,
      receivedAtMs: T0,
      syncContacts,
    }),
  };
}

/** The same delivery kept as a mapping dead letter (as an older release that could not map it would). */
function deadLettered(body: string): IngestItem {
  return { ...live(body), mapped: { kind: "invalid", reason: "could not be mapped by an older release" } };
}

async function deadLetterIds(store: Store): Promise<number[]> {
  return (await store.listDeadLetters({ limit: 10 })).map((l) => l.id);
}

const factories = await storeFactories();
after(() => Promise.all(factories.map((f) => f.cleanup())));

for (const factory of factories) {
  describe(`dead-letter replay: ${factory.name}`, () => {
    async function open(t: TestContext): Promise<Store | undefined> {
      if (!usable(t, factory)) return undefined;
      const store = await factory.open();
      t.after(() => store.close());
      return store;
    }

    it("breaks ties as live ingest does: without a webhook id, the body's digest, not an empty id", async (t) => {
      const store = await open(t);
      if (!store) return;
      // Two checkouts for one cart at the same instant, neither with a webhook id: the greater body digest
      // wins (SPEC §4 tie rule, with the digest standing in for the id), in every delivery order.
      const bodies = ["10.00", "20.00"].map((total) =>
        checkoutBody("tie", { total, updatedAt: "2030-01-01T00:00:00Z" }),
      );
      const [winner, loser] = [...bodies].sort((a, b) =>
        bodyDigest(Buffer.from(b)).localeCompare(bodyDigest(Buffer.from(a))),
      ) as [string, string];
      const winnerTotal = (JSON.parse(winner) as { total_price: string }).total_price;

      // The winner arrived first but was dead-lettered; the loser arrived live.
      await store.ingestBatch([deadLettered(winner)]);
      await store.ingestBatch([live(loser)]);
      const results = await replayDeadLetters(store, await deadLetterIds(store), {
        nowMs: T0 + 1000,
        syncContacts: true,
      });
      assert.deepEqual(
        results.map((r) => r.outcome),
        ["replayed"],
      );
      const [cart] = await store.claimDue({ limit: 10, nowMs: T0 + 2000, leaseMs: 60_000, owner: "t" });
      assert.equal(cart?.key, `${TEST_SHOP}:tie`);
      assert.equal(currentValues(cart.state)["hs_total_price"], winnerTotal);
    });

    it("honours HUBSPOT_SYNC_CONTACTS=false: a replayed checkout keeps no buyer", async (t) => {
      const store = await open(t);
      if (!store) return;
      await store.ingestBatch([deadLettered(checkoutBody("nosync", { email: "nosync@example.com" }))]);
      await replayDeadLetters(store, await deadLetterIds(store), { nowMs: T0 + 1000, syncContacts: false });
      const held = await store.describeSubject({ shopDomain: TEST_SHOP, email: "nosync@example.com" });
      assert.equal(held.contacts, 0, "no contact link kept for a buyer that is never sent");
      const [cart] = await store.claimDue({ limit: 10, nowMs: T0 + 2000, leaseMs: 60_000, owner: "t" });
      assert.equal(cart?.key, `${TEST_SHOP}:nosync`, "the cart itself is replayed");
      await store.markSent([{ key: cart.key, version: cart.version, hubspotId: "301" }], "t");
      assert.deepEqual(
        await store.claimContactsDue({ limit: 10, nowMs: T0 + 3000, leaseMs: 60_000, owner: "c" }),
        [],
      );
    });
  });
}
