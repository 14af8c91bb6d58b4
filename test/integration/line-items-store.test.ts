import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { IngestItem, Store } from "../../src/store/store.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { storeFactories, usable } from "../helpers/stores.ts";

/** The line item part of the store port, on every adapter (SQLite always, PostgreSQL when reachable). */

const SHOP = "lines.myshopify.com";
const T0 = Date.UTC(2030, 0, 1);
const LEASE_MS = 60_000;

function delivery(
  topic: string,
  token: string,
  webhookId: string,
  atMs: number,
  lines: Array<{ variant: number; quantity: number }> | undefined,
): IngestItem {
  const payload: Record<string, unknown> =
    topic === "carts/update"
      ? { token }
      : { token: `chk-${token}`, cart_token: token, presentment_currency: "USD" };
  payload["updated_at"] = new Date(atMs).toISOString();
  if (lines !== undefined)
    payload["line_items"] = lines.map((l) => ({
      variant_id: l.variant,
      title: `V${l.variant}`,
      quantity: l.quantity,
      price: "2.50",
    }));
  const body = Buffer.from(JSON.stringify(payload));
  const mapped = mapDelivery({
    topic,
    shopDomain: SHOP,
    body,
    webhookId,
    triggeredAt: undefined,
    receivedAtMs: atMs,
  });
  return { webhookId, topic, shopDomain: SHOP, receivedAtMs: atMs, headers: {}, body, mapped };
}

const keyOf = (token: string) => `${SHOP}:${token}`;

/** Marks the cart as in HubSpot (its id known), as the cart lane does. */
async function sendCart(store: Store, token: string, hubspotId: string): Promise<void> {
  const claims = await store.claimDue({ limit: 100, nowMs: T0 + 10_000, leaseMs: LEASE_MS, owner: "carts" });
  const claim = claims.find((c) => c.key === keyOf(token));
  assert.ok(claim, `cart ${token} is pending`);
  await store.markSent([{ key: claim.key, version: claim.version, hubspotId }], "carts");
}

const factories = await storeFactories();
for (const factory of factories) {
  describe(`line sets on ${factory.name}`, () => {
    after(() => factory.cleanup());

    it("the newest event's set wins in any order; duplicates and older events change nothing", async (t) => {
      if (!usable(t, factory)) return;
      const events = [
        delivery("carts/update", "a", "w1", T0, [
          { variant: 1, quantity: 1 },
          { variant: 2, quantity: 1 },
        ]),
        delivery("checkouts/update", "a", "w2", T0 + 1000, [{ variant: 1, quantity: 3 }]),
        delivery("checkouts/delete", "a", "w3", T0 + 2000, undefined),
      ];
      for (const order of [
        [0, 1, 2],
        [2, 1, 0],
        [1, 0, 2, 1, 0],
      ]) {
        const store = await factory.open();
        try {
          for (const i of order) await store.ingestBatch([{ ...(events[i] as IngestItem), replay: true }]);
          const set = await store.lineSetOf(keyOf("a"));
          assert.deepEqual(
            set?.lines.map((l) => [l.key, l.properties["quantity"]]),
            [[`${keyOf("a")}:1`, "3"]],
            `order ${order.join(",")}`,
          );
        } finally {
          await store.close();
        }
      }
    });

    it("due only once the cart is in HubSpot; ids learned, leftovers forgotten when sent; replays mark it pending", async (t) => {
      if (!usable(t, factory)) return;
      const store = await factory.open();
      try {
        await store.ingestBatch([
          delivery("carts/update", "b", "w1", T0, [
            { variant: 1, quantity: 1 },
            { variant: 2, quantity: 1 },
          ]),
        ]);
        const claim = { limit: 10, nowMs: T0 + 10_000, leaseMs: LEASE_MS, owner: "lines" };
        assert.deepEqual(await store.claimLineSetsDue(claim), [], "not due before the cart has a HubSpot id");
        await sendCart(store, "b", "301");
        const [first, ...none] = await store.claimLineSetsDue(claim);
        assert.equal(none.length, 0);
        assert.equal(first?.cartId, "301");
        assert.deepEqual(first?.known, []);
        assert.deepEqual(await store.claimLineSetsDue({ ...claim, owner: "other" }), [], "leased");
        await store.recordLineItems([
          { lineKey: `${keyOf("b")}:1`, cartKey: keyOf("b"), hubspotId: "91", associatedCartId: "301" },
          { lineKey: `${keyOf("b")}:2`, cartKey: keyOf("b"), hubspotId: "92", associatedCartId: undefined },
        ]);
        await store.markLineSetsSent(
          [{ cartKey: keyOf("b"), version: first?.version ?? 0, archivedLineKeys: [] }],
          "lines",
        );
        assert.deepEqual(await store.claimLineSetsDue(claim), [], "sent");

        // The buyer removes variant 2: the set changes, its known item 2 is to be archived.
        await store.ingestBatch([
          delivery("carts/update", "b", "w2", T0 + 1000, [{ variant: 1, quantity: 2 }]),
        ]);
        const [second] = await store.claimLineSetsDue(claim);
        assert.deepEqual(second?.known.map((k) => [k.lineKey, k.hubspotId, k.associatedCartId]).sort(), [
          [`${keyOf("b")}:1`, "91", "301"],
          [`${keyOf("b")}:2`, "92", undefined],
        ]);
        await store.markLineSetsSent(
          [{ cartKey: keyOf("b"), version: second?.version ?? 0, archivedLineKeys: [`${keyOf("b")}:2`] }],
          "lines",
        );
        assert.deepEqual(
          (await store.lineSetOf(keyOf("b")))?.known.map((k) => k.lineKey),
          [`${keyOf("b")}:1`],
        );
        await store.markPending(keyOf("b"), T0 + 20_000);
        const again = await store.claimLineSetsDue({ ...claim, nowMs: T0 + 20_000 });
        assert.equal(again.length, 1, "a replay sends the line set again");
        await store.markLineSetsFailed([keyOf("b")], "lines", {
          nextAttemptAtMs: T0 + 60_000,
          error: "HTTP 502",
        });
        assert.deepEqual(await store.claimLineSetsDue({ ...claim, nowMs: T0 + 30_000 }), [], "backing off");
        assert.equal((await store.claimLineSetsDue({ ...claim, nowMs: T0 + 61_000 })).length, 1);
      } finally {
        await store.close();
      }
    });

    it("postgres: a sender whose lease lapsed settles nothing; the set stays pending for the next claim", async (t) => {
      if (factory.name !== "postgres") {
        t.skip("SQLite serves one process: its line set claims change hands only when claimed again");
        return;
      }
      if (!usable(t, factory)) return;
      const store = await factory.open();
      try {
        await store.ingestBatch([delivery("carts/update", "f", "w1", T0, [{ variant: 1, quantity: 1 }])]);
        await sendCart(store, "f", "401");
        const [lapsed] = await store.claimLineSetsDue({
          limit: 10,
          nowMs: Date.now(),
          leaseMs: 1,
          owner: "slow",
        });
        assert.ok(lapsed);
        await new Promise((r) => setTimeout(r, 50)); // past the 1 ms lease, on the database's clock
        await store.markLineSetsSent(
          [{ cartKey: keyOf("f"), version: lapsed.version, archivedLineKeys: [] }],
          "slow",
        );
        const taken = await store.claimLineSetsDue({
          limit: 10,
          nowMs: Date.now(),
          leaseMs: LEASE_MS,
          owner: "next",
        });
        assert.deepEqual(
          taken.map((s) => s.cartKey),
          [keyOf("f")],
          "still pending: the lapsed sender's sent mark did not count",
        );
      } finally {
        await store.close();
      }
    });

    it("a rejected line is a dead letter naming the line; shop/redact erases the shop's line sets", async (t) => {
      if (!usable(t, factory)) return;
      const store = await factory.open();
      try {
        await store.ingestBatch([delivery("carts/update", "c", "w1", T0, [{ variant: 7, quantity: 1 }])]);
        await store.deadLetterLines(
          [
            {
              cartKey: keyOf("c"),
              lineKey: `${keyOf("c")}:7`,
              reason: "bad price",
              category: "VALIDATION_ERROR",
            },
          ],
          T0,
        );
        const [letter] = await store.listDeadLetters({ limit: 10 });
        assert.equal(letter?.reason, `line item ${keyOf("c")}:7: bad price`);
        assert.equal(letter?.source, "hubspot");
        assert.equal(letter?.cartKey, keyOf("c"));
        await store.recordLineItems([
          { lineKey: `${keyOf("c")}:7`, cartKey: keyOf("c"), hubspotId: "77", associatedCartId: undefined },
        ]);
        await store.redact({ shopDomain: "other.myshopify.com" });
        assert.ok(await store.lineSetOf(keyOf("c")), "another shop's redaction leaves it");
        await store.redact({ shopDomain: SHOP, email: "x@example.com" });
        assert.ok(await store.lineSetOf(keyOf("c")), "a customer redaction leaves it (no personal data)");
        await store.redact({ shopDomain: SHOP });
        assert.equal(await store.lineSetOf(keyOf("c")), undefined);
      } finally {
        await store.close();
      }
    });
  });
}
