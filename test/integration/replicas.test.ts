import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { maxRequestsInAnyWindow, startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { bridgeEnv, freePort, spawnBridge, type ChildBridge } from "../helpers/child.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { storeFactories, usable } from "../helpers/stores.ts";
import { waitFor } from "../helpers/wait.ts";

const CARTS = 150;
const UPDATES = 4;
const BUDGET = 40;

describe("replicas on one PostgreSQL", () => {
  it("3 replicas, one SIGKILLed mid-flight: every acknowledged change lands, no cart in two batches at once, one budget", async (t) => {
    const pg = (await storeFactories()).find((f) => f.name === "postgres");
    assert.ok(pg);
    if (!usable(t, pg)) return;
    const databaseUrl = await pg.freshUrl();
    const hs = await startFakeHubSpot({ maxRequestsPer10s: BUDGET, latencyMs: 40 });
    const replicas: ChildBridge[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const env = bridgeEnv({
          hubspotUrl: hs.url,
          dbPath: "unused",
          port: await freePort(),
          env: {
            DATABASE_URL: databaseUrl,
            HUBSPOT_MAX_REQUESTS_PER_10S: String(BUDGET),
            FLUSH_INTERVAL_MS: "100",
            CLAIM_LEASE_MS: "3000",
            HUBSPOT_SYNC_CONTACTS: "false",
          },
        });
        replicas.push(await spawnBridge(env));
      }
      // Newest acknowledged update per cart; an update is the total "<seq>.00" at minute <seq>.
      const acked = new Map<string, number>();
      let sent = 0;
      let killedAt = -1;
      for (let seq = 1; seq <= UPDATES; seq++) {
        const wave = Array.from({ length: CARTS }, (_, c) => c);
        await Promise.all(
          wave.map(async (c) => {
            const n = sent++;
            const replica = replicas[n % 3] as ChildBridge;
            const token = `rep-${c}`;
            const body = checkoutBody(token, {
              total: `${seq}.00`,
              updatedAt: `2026-11-01T10:${String(seq).padStart(2, "0")}:00Z`,
            });
            const res = await postDelivery(replica.url, { topic: "checkouts/update", body }).catch(() => ({
              status: 0,
            }));
            if (res.status === 200) acked.set(token, Math.max(acked.get(token) ?? 0, seq));
          }),
        );
        if (seq === 2) {
          // Mid-flight: batches are out (HubSpot answers in 40 ms); replica 2 dies holding claims.
          await waitFor(() => hs.requests.some((r) => r.path.endsWith("/batch/upsert")), {
            what: "a first batch",
          });
          killedAt = Date.now();
          replicas[2]?.proc.kill("SIGKILL");
          await replicas[2]?.exited;
        }
      }
      assert.ok(killedAt > 0);
      const landed = () => {
        for (const [token, seq] of acked) {
          const total = Number(hs.cartByKey(`${TEST_SHOP}:${token}`)?.properties["hs_total_price"] ?? "0");
          if (total < seq) return false;
        }
        return true;
      };
      await waitFor(landed, { what: "every acknowledged change in HubSpot", timeoutMs: 60_000 });
      const upserts = hs.requests.filter((r) => r.path.endsWith("/carts/batch/upsert"));
      console.log(
        `acknowledged ${[...acked.values()].reduce((a, b) => a + b, 0)} changes over ${acked.size} carts; ${upserts.length} upserts; max ${maxRequestsInAnyWindow(hs.requests)} requests in a 10 s window`,
      );
      // No request repeats an id; no cart is in two requests that overlap in time.
      const spans = new Map<string, Array<[number, number]>>();
      for (const r of upserts) {
        const ids = (r.body as { inputs: Array<{ id: string }> }).inputs.map((i) => i.id);
        assert.equal(new Set(ids).size, ids.length, "no repeated id in a request");
        for (const id of ids) {
          const list = spans.get(id) ?? [];
          list.push([r.atMs, r.doneMs ?? Number.POSITIVE_INFINITY]);
          spans.set(id, list);
        }
      }
      for (const [id, list] of spans) {
        list.sort((a, b) => a[0] - b[0]);
        for (let i = 1; i < list.length; i++) {
          const prev = list[i - 1] as [number, number];
          const cur = list[i] as [number, number];
          // A request of the killed replica may still be answered after its death; only live overlaps count.
          if (prev[1] === Number.POSITIVE_INFINITY) continue;
          assert.ok(cur[0] >= prev[1], `${id} sent twice at once`);
        }
      }
      assert.equal(hs.requests.filter((r) => r.status === 429).length, 0, "no 429");
      assert.ok(maxRequestsInAnyWindow(hs.requests) <= BUDGET, "within the one budget");
    } finally {
      for (const r of replicas) {
        if (r.proc.exitCode === null && r.proc.signalCode === null) {
          r.proc.kill("SIGTERM");
          await r.exited;
        }
      }
      await hs.close();
      await pg.cleanup();
    }
  });
});
