import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import pg from "pg";
import { createHubSpotClient } from "../../src/hubspot/client.ts";
import { openPostgresStore } from "../../src/store/postgres.ts";
import type { Store } from "../../src/store/store.ts";
import { createFlusher, type Flusher, type LogSink } from "../../src/sync/flusher.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { createPortalProperties } from "../../src/sync/portal-properties.ts";
import { createRateBudget } from "../../src/sync/rate-budget.ts";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { checkoutBody, TEST_SHOP } from "../helpers/shopify.ts";
import { storeFactories, usable } from "../helpers/stores.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * Two replicas' senders on one PostgreSQL (each its own store, pool and flusher) and the fake HubSpot on a
 * real port. The late replica's lease runs out while its upsert is in flight (the database's view of time
 * moves past it, as when its renewals stop reaching the database); the other replica sends a newer
 * version; the late upsert lands in HubSpot last. The late replica must mark nothing sent, and the store
 * must get the newest state to HubSpot again.
 */

const ID_PROPERTY = "shopify_cart_key";
const KEY = `${TEST_SHOP}:fence`;

const factories = await storeFactories();
after(() => Promise.all(factories.map((f) => f.cleanup())));

function checkout(total: string, minute: number, receivedAtMs: number) {
  const body = Buffer.from(
    checkoutBody("fence", { total, updatedAt: `2026-11-01T10:0${minute}:00Z`, email: null }),
  );
  const webhookId = `fence-${minute}`;
  const input = { topic: "checkouts/update", shopDomain: TEST_SHOP, body, webhookId };
  return {
    ...input,
    receivedAtMs,
    headers: {},
    mapped: mapDelivery({ ...input, triggeredAt: undefined, receivedAtMs }),
  };
}

function collectingLog(lines: string[]): LogSink {
  const push = (_obj: object, msg: string): void => void lines.push(msg);
  return { debug: push, info: push, warn: push, error: push };
}

describe("fenced claims on PostgreSQL", () => {
  it("a replica whose lease ran out mid-send marks nothing; the newer version is what the store records and HubSpot ends with", async (t) => {
    const factory = factories.find((f) => f.name === "postgres");
    assert.ok(factory);
    if (!usable(t, factory)) return;
    const url = await factory.freshUrl();
    const hs = await startFakeHubSpot();
    const client = createHubSpotClient({ baseUrl: hs.url, accessToken: "test-token" });
    const stores: Store[] = [];
    const flushers: Flusher[] = [];
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const portal = createPortalProperties(await client.listCartProperties(), ID_PROPERTY);
      const lateLog: string[] = [];
      const openSender = async (owner: string, flushIntervalMs: number, log: LogSink) => {
        const store = await openPostgresStore(url, { maxConnections: 2 });
        stores.push(store);
        const flusher = createFlusher({
          store,
          client,
          budget: createRateBudget({ maxRequests: 100 }),
          idProperty: ID_PROPERTY,
          flushIntervalMs,
          portal: () => portal,
          log,
          owner,
          leaseMs: 600, // renewed every 200 ms while the batch is out
        });
        flushers.push(flusher);
        return { store, flusher };
      };

      // The late replica's upsert takes 3 s; it sends the first version (due at once: it arrived long ago),
      // then sleeps (nothing else due, and nothing wakes it) until that batch ends.
      hs.failNext({ status: 200, delayMs: 3000, slowOnly: true }, { path: "/batch/upsert" });
      const late = await openSender("late", 100, collectingLog(lateLog));
      await late.store.ingestBatch([checkout("1.00", 1, Date.now() - 120_000)]);
      late.flusher.start();
      const slow = await waitFor(() => hs.requests.find((r) => r.path.endsWith("/batch/upsert")), {
        what: "the late replica's upsert in flight",
      });

      // A newer version arrives; the database's clock passes the late replica's lease.
      await late.store.ingestBatch([checkout("2.00", 2, Date.now())]);
      await admin.query("UPDATE carts SET lease_until = lease_until - 3600000 WHERE lease_owner = 'late'");
      (await openSender("fresh", 100, collectingLog([]))).flusher.start();

      await waitFor(() => slow.doneMs !== undefined, { what: "the late upsert answered", timeoutMs: 15_000 });
      const upserts = () =>
        hs.requests
          .filter((r) => r.path.endsWith("/batch/upsert"))
          .map((r) => ({
            r,
            total: (r.body as { inputs: Array<{ properties: Record<string, string> }> }).inputs[0]
              ?.properties["hs_total_price"],
          }));
      const newer = upserts().find((u) => u.total === "2.00");
      assert.ok(
        newer?.r.doneMs !== undefined && newer.r.doneMs < slow.doneMs!,
        "the newer version landed first",
      );
      assert.ok(
        lateLog.includes("claims lost while sending; those carts will be sent again"),
        lateLog.join("\n"),
      );

      const row = async () =>
        (
          await admin.query<{
            version: string;
            synced_version: string;
            pending_since: string | null;
            state: string;
          }>("SELECT version, synced_version, pending_since, state FROM carts WHERE key = $1", [KEY])
        ).rows[0];
      await waitFor(
        async () =>
          (await row())?.pending_since === null && hs.cartByKey(KEY)?.properties["hs_total_price"] === "2.00",
        {
          what: "the newest state sent again and recorded",
          timeoutMs: 15_000,
        },
      );
      const final = await row();
      assert.ok(final);
      assert.equal(final.synced_version, final.version);
      assert.ok(Number(final.version) > 2, "the late answer made the cart pending under a new version");
      assert.match(final.state, /"2\.00"/);
      const last = upserts().at(-1);
      assert.equal(last?.total, "2.00", "HubSpot's last write is the newest state");
    } finally {
      await Promise.all(flushers.map((f) => f.stop({ deadlineMs: 500 })));
      await Promise.all(stores.map((s) => s.close()));
      await admin.end();
      await client.close();
      await hs.close();
    }
  });
});
