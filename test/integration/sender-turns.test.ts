import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createHubSpotClient, type HubSpotClient } from "../../src/hubspot/client.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { IngestItem, Store } from "../../src/store/store.ts";
import { createFlusher } from "../../src/sync/flusher.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { createPortalProperties } from "../../src/sync/portal-properties.ts";
import { createRateBudget } from "../../src/sync/rate-budget.ts";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";
import { checkoutBody, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const ID_PROPERTY = "shopify_cart_key";
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** A verified, mapped checkouts/update delivery for cart `token`, as the intake hands it to the store. */
function checkoutItem(token: string, receivedAtMs: number): IngestItem {
  const body = Buffer.from(checkoutBody(token));
  const mapped = mapDelivery({
    topic: "checkouts/update",
    shopDomain: TEST_SHOP,
    body,
    webhookId: token,
    triggeredAt: undefined,
    receivedAtMs,
  });
  return {
    webhookId: token,
    topic: "checkouts/update",
    shopDomain: TEST_SHOP,
    receivedAtMs,
    headers: {},
    body,
    mapped,
  };
}

/**
 * On the embedded store every ledger call holds the event loop (node:sqlite is synchronous), so the cart
 * sender must not chain them in one task: webhook answers waiting for their fsync would wait behind the
 * whole chain. These tests mark the loop's next check phase right after one step and look, at the next
 * store call, whether that phase has come (a turn of the loop, with its I/O, ran in between).
 */
describe("the cart sender gives the event loop a turn between its store calls", () => {
  it("between the pending summary and the claim, and between HubSpot's answer and the sent marks", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-turns-"));
    const real = openSqliteStore(join(dir, "store.db"));
    const hs = await startFakeHubSpot();
    const realClient = createHubSpotClient({
      baseUrl: hs.url,
      accessToken: "test-token",
      apiVersion: testHubSpotApiVersion(),
    });

    /** Set after a step; cleared by the loop's next check phase (setImmediate). */
    let pending: string | undefined;
    const mark = (after: string): void => {
      pending = after;
      setImmediate(() => {
        if (pending === after) pending = undefined;
      });
    };
    /** For each store call that followed a marked step: whether a turn ran in between. */
    const turns: Array<{ call: string; after: string; turn: boolean }> = [];
    const observe = (call: string, after: string): void => {
      turns.push({ call, after, turn: pending !== after });
    };

    const store: Store = new Proxy(real, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        const fn = (value as (...a: unknown[]) => Promise<unknown>).bind(target);
        if (prop === "pendingSummary") {
          return async (...args: unknown[]) => {
            const out = await fn(...args);
            mark("summary");
            return out;
          };
        }
        if (prop === "claimDue") {
          return (...args: unknown[]) => {
            observe("claimDue", "summary");
            return fn(...args);
          };
        }
        if (prop === "markSent") {
          return (...args: unknown[]) => {
            observe("markSent", "answer");
            return fn(...args);
          };
        }
        return fn;
      },
    });
    const client: HubSpotClient = {
      ...realClient,
      upsertCarts: async (inputs) => {
        const answer = await realClient.upsertCarts(inputs);
        mark("answer");
        return answer;
      },
    };

    const portal = createPortalProperties(await realClient.listCartProperties(), ID_PROPERTY);
    const flusher = createFlusher({
      store,
      client,
      budget: createRateBudget({ maxRequests: 100 }),
      idProperty: ID_PROPERTY,
      flushIntervalMs: 10,
      portal: () => portal,
      log: quiet,
    });
    try {
      const items = ["turn-1", "turn-2", "turn-3"].map((token) => checkoutItem(token, Date.now()));
      assert.deepEqual(await store.ingestBatch(items), ["applied", "applied", "applied"]);
      flusher.start();
      await waitFor(() => turns.some((t) => t.call === "markSent"), {
        what: "the sent marks",
        timeoutMs: 10_000,
      });
      assert.equal(hs.cartByKey(`${TEST_SHOP}:turn-3`)?.properties[ID_PROPERTY], `${TEST_SHOP}:turn-3`);

      const claim = turns.find((t) => t.call === "claimDue");
      const marks = turns.find((t) => t.call === "markSent");
      assert.deepEqual(claim, { call: "claimDue", after: "summary", turn: true });
      assert.deepEqual(marks, { call: "markSent", after: "answer", turn: true });
    } finally {
      await flusher.stop({ deadlineMs: 500 });
      await realClient.close();
      await real.close();
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the embedded store marks a batch of 100 sent in several transactions, a turn of the loop between", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-turns-"));
    const store = openSqliteStore(join(dir, "store.db"), { server: true });
    try {
      const now = Date.now();
      const items = Array.from({ length: 100 }, (_, i) => checkoutItem(`mark-${i}`, now));
      await store.ingestBatch(items);
      const claims = await store.claimDue({ limit: 100, nowMs: Date.now(), leaseMs: 60_000, owner: "r1" });
      assert.equal(claims.length, 100);

      let turns = 0;
      let marking = true;
      const tick = (): void => {
        if (!marking) return;
        turns++;
        setImmediate(tick);
      };
      setImmediate(tick);
      const marked = await store.markSent(
        claims.map((c) => ({ key: c.key, version: c.version, hubspotId: undefined })),
        "r1",
      );
      marking = false;
      assert.equal(marked.length, 100);
      assert.ok(turns >= 3, `the loop turned ${turns} times while 100 carts were marked sent (4 chunks)`);
      assert.equal((await store.stats(Date.now())).pendingCarts, 0);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
