import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createHubSpotClient, type HubSpotClient } from "../../src/hubspot/client.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { PendingSummary, Store } from "../../src/store/store.ts";
import { createFlusher } from "../../src/sync/flusher.ts";
import { createPortalProperties } from "../../src/sync/portal-properties.ts";
import { createRateBudget } from "../../src/sync/rate-budget.ts";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";
import { checkoutItem } from "../helpers/items.ts";
import { TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const ID_PROPERTY = "shopify_cart_key";
const FLUSH_INTERVAL_MS = 100;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** A fresh SQLite store and a fake HubSpot with a client for it; `close()` undoes all of it. */
async function senderParts(): Promise<{
  store: Store;
  hs: FakeHubSpot;
  client: HubSpotClient;
  close: () => Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-wake-"));
  const store = openSqliteStore(join(dir, "store.db"));
  const hs = await startFakeHubSpot();
  const client = createHubSpotClient({
    baseUrl: hs.url,
    accessToken: "test-token",
    apiVersion: testHubSpotApiVersion(),
  });
  return {
    store,
    hs,
    client,
    async close() {
      await client.close();
      await store.close();
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `open()` is called. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe("flusher wake-ups", () => {
  it("a wake() during the pendingSummary round trip is not dropped: the cart lands within about FLUSH_INTERVAL_MS, not 30 s", async () => {
    const parts = await senderParts();
    const { store: real, hs, client } = parts;

    // The first summary is read before the cart is committed, then held until the wake has been given:
    // a slow database round trip that a delivery overtakes.
    const summaryRead = gate();
    const release = gate();
    let calls = 0;
    const slowSummary = async (nowMs: number, cap: number): Promise<PendingSummary> => {
      calls++;
      const summary = await real.pendingSummary(nowMs, cap);
      if (calls === 1) {
        summaryRead.open();
        await release.wait;
      }
      return summary;
    };
    const store = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === "pendingSummary") return slowSummary;
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });

    const portal = createPortalProperties(await client.listCartProperties(), ID_PROPERTY);
    const flusher = createFlusher({
      store,
      client,
      budget: createRateBudget({ maxRequests: 100 }),
      idProperty: ID_PROPERTY,
      flushIntervalMs: FLUSH_INTERVAL_MS,
      portal: () => portal,
      log: quiet,
    });
    try {
      flusher.start();
      await summaryRead.wait;
      assert.deepEqual(await store.ingestBatch([checkoutItem("wake-1", Date.now())]), ["applied"]);
      flusher.wake();
      release.open();
      // Old code: the stale summary says nothing is due, the wake was lost, and the flusher sleeps 30 s.
      await waitFor(() => hs.cartByKey(`${TEST_SHOP}:wake-1`)?.properties["hs_total_price"] === "10.00", {
        what: "the cart woken during the summary",
        timeoutMs: 10_000,
      });
    } finally {
      await flusher.stop({ deadlineMs: 500 });
      await parts.close();
    }
  });

  it("a rate-limit wait cut short by wake-ups is counted once, with its own length", async () => {
    const parts = await senderParts();
    const { store, hs, client } = parts;
    const budget = createRateBudget({ maxRequests: 100 });
    // As after a 429 with Retry-After: 1 s.
    budget.pauseUntil(Date.now() + 1_000);
    const waits: number[] = [];
    const flusher = createFlusher({
      store,
      client,
      budget,
      idProperty: ID_PROPERTY,
      flushIntervalMs: 0,
      portal: () => portal,
      log: quiet,
      observer: { rateLimitWait: (ms) => waits.push(ms) },
    });
    const portal = createPortalProperties(await client.listCartProperties(), ID_PROPERTY);
    try {
      await store.ingestBatch([checkoutItem("paused-1", Date.now())]);
      flusher.start();
      // Each resume cuts the sender's sleep short; the step finds the same pause again.
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 100));
        flusher.resume();
      }
      await waitFor(() => hs.cartByKey(`${TEST_SHOP}:paused-1`) !== undefined, {
        what: "the cart after the pause",
      });
      assert.equal(waits.length, 1, `one pause counted as ${waits.length} waits (${waits.join(", ")} ms)`);
      assert.ok(waits[0]! > 500 && waits[0]! <= 1_000, `the wait counted ${waits[0]} ms`);
    } finally {
      await flusher.stop({ deadlineMs: 500 });
      await parts.close();
    }
  });
});
