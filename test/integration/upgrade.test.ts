import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import pg from "pg";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite-schema.ts";
import type { Store } from "../../src/store/store.ts";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { startTestBridge } from "../helpers/bridge.ts";
import { bridgeEnv, MAIN } from "../helpers/child.ts";
import { postgresRequired, testDatabaseUrl } from "../helpers/stores.ts";
import { cartBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * Upgrades from what a released version wrote. The fixtures in test/fixtures/upgrade/ were recorded by
 * running that version itself (test/fixtures/upgrade/record.ts): v0.1.0, and for SQLite d92e263 (the last
 * schema before the inbox) and 55bdf63 (schema 6, the inbox's). Shopify's samples plus five carts and five checkouts of its own, sent while
 * HubSpot was unreachable, so all 12 carts are pending, 6 buyers wait to be sent and one unparseable
 * delivery is a dead letter.
 */
const FIXTURES = new URL("../fixtures/upgrade/", import.meta.url);

/** What v0.1.0 was sent, written out by hand: cart i is i × i.50, checkout i totals "i0.25". */
function expectedTotals(): Map<string, string> {
  const totals = new Map<string, string>([
    [`${TEST_SHOP}:upgrade-cart-1`, "1.50"],
    [`${TEST_SHOP}:upgrade-cart-2`, "5.00"],
    [`${TEST_SHOP}:upgrade-cart-3`, "10.50"],
    [`${TEST_SHOP}:upgrade-cart-4`, "18.00"],
    [`${TEST_SHOP}:upgrade-cart-5`, "27.50"],
  ]);
  for (let i = 1; i <= 5; i++) totals.set(`${TEST_SHOP}:upgrade-checkout-${i}`, `${i}0.25`);
  return totals;
}

async function assertPendingCartsLand(hs: FakeHubSpot): Promise<void> {
  const expected = expectedTotals();
  await waitFor(() => [...expected.keys()].every((k) => hs.cartByKey(k) !== undefined), {
    what: "the carts v0.1.0 left pending",
    timeoutMs: 20_000,
  });
  for (const [key, total] of expected) {
    assert.equal(hs.cartByKey(key)?.properties["hs_total_price"], total, key);
  }
  // Shopify's own samples (two more carts) were pending too.
  await waitFor(() => hs.carts().size === 12, { what: "12 carts", timeoutMs: 20_000 });
  // The buyers v0.1.0 had not sent yet.
  await waitFor(() => hs.contacts().has("buyer-upgrade-checkout-3@example.com"), { what: "buyers" });
}

/** Schema 8: the shop's last missed change is kept, the one found last winning. */
async function assertMissedChangesKept(store: Store): Promise<void> {
  const missed = {
    topic: "orders",
    cartKey: `${TEST_SHOP}:m-1`,
    updatedAtMs: 1_000,
    foundAtMs: 5_000,
  } as const;
  await store.reconcile.recordMissed(TEST_SHOP, missed);
  await store.reconcile.recordMissed(TEST_SHOP, {
    ...missed,
    cartKey: `${TEST_SHOP}:older`,
    foundAtMs: 4_000,
  });
  assert.deepEqual(await store.reconcile.lastMissed(), new Map([[TEST_SHOP, missed]]));
}

describe("upgrades from a released version's store", () => {
  // v0.1.0, the first release (no migrations recorded); d92e263, the last version before the inbox of
  // raw deliveries (schema 5); 55bdf63, the last before the covering index of pending carts (schema 6, its
  // inbox applied and gone at SIGTERM); e7a2e65, the last before the stored last missed change (schema 7):
  // each as that version's own code wrote it.
  for (const version of ["v0.1.0", "d92e263", "55bdf63", "e7a2e65"]) {
    it(`SQLite: a ${version} file is migrated in place, its pending carts and buyers are sent, new deliveries go through the inbox`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "cartbridge-upgrade-"));
      copyFileSync(new URL(`sqlite-${version}.db`, FIXTURES), join(dir, "cartbridge.db"));
      const hs = await startFakeHubSpot();
      const bridge = await startTestBridge({ hubspotUrl: hs.url, dir });
      try {
        await assertPendingCartsLand(hs);
        const letters = await bridge.service.store.listDeadLetters({ limit: 10 });
        assert.equal(letters.length, 1);
        assert.equal(letters[0]?.source, "mapping");
        await assertMissedChangesKept(bridge.service.store);
        // A delivery after the upgrade: acknowledged through the inbox, applied, sent.
        const res = await postDelivery(bridge.url, {
          topic: "carts/update",
          body: cartBody("after-upgrade", { price: "7.00" }),
        });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, { outcome: "accepted" });
        await waitFor(() => hs.cartByKey(`${TEST_SHOP}:after-upgrade`), { what: "the new cart in HubSpot" });
      } finally {
        await bridge.stop({ keepDir: true, drainMs: 500 });
        await hs.close();
      }
      const db = new DatabaseSync(join(dir, "cartbridge.db"));
      const versions = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
      const applied = db.prepare("SELECT segment, position FROM inbox_applied").all();
      const pendingIndex = db.prepare("SELECT name FROM pragma_index_info('carts_pending')").all();
      db.close();
      // Schema 7: the sender walks the pending carts from the index alone.
      assert.deepEqual(
        pendingIndex.map((r) => r["name"]),
        ["pending_since", "next_attempt_at", "key"],
      );
      // Every migration this code knows is recorded, the first one included (v0.1.0 had none recorded).
      assert.deepEqual(
        versions.map((r) => Number(r["version"])),
        SQLITE_MIGRATIONS.map((m) => m.version),
      );
      assert.equal(versions[0]?.["version"], 1);
      assert.equal(applied.length, 1, "how far the inbox is applied is recorded");
      assert.ok(Number(applied[0]?.["position"]) > 0);
      rmSync(dir, { recursive: true, force: true });
    });
  }

  it("SQLite: a file from a newer release stops the process with exit 78 and says why", () => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-upgrade-"));
    const path = join(dir, "cartbridge.db");
    copyFileSync(new URL("sqlite-v0.1.0.db", FIXTURES), path);
    const db = new DatabaseSync(path);
    db.exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
      applied_at INTEGER NOT NULL); INSERT INTO schema_migrations VALUES (1, 'initial', 0), (999, 'future', 0)`);
    db.close();
    try {
      const run = spawnSync(process.execPath, [MAIN, "serve"], {
        env: bridgeEnv({ hubspotUrl: "http://127.0.0.1:9", dbPath: path, port: 0 }),
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(run.status, 78, run.stdout + run.stderr);
      assert.match(run.stdout + run.stderr, /schema is version 999, newer than this cartbridge knows/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const version of ["v0.1.0", "e7a2e65"])
    it(`PostgreSQL: a ${version} database is migrated in place and its pending carts are sent`, async (t) => {
      const base = testDatabaseUrl();
      const admin = new pg.Client({ connectionString: base });
      try {
        await admin.connect();
      } catch (error) {
        if (postgresRequired()) throw error;
        t.skip(`no PostgreSQL at ${base} (start one with scripts/start-postgres.sh)`);
        return;
      }
      const schema = `upgrade_${process.pid}_${Date.now()}`;
      const dump = readFileSync(new URL(`postgres-${version}.sql`, FIXTURES), "utf8").replaceAll(
        "__SCHEMA__",
        schema,
      );
      const url = new URL(base);
      url.searchParams.set("options", `-c search_path=${schema}`);
      const hs = await startFakeHubSpot();
      try {
        await admin.query(dump);
        const bridge = await startTestBridge({ hubspotUrl: hs.url, env: { DATABASE_URL: url.toString() } });
        try {
          await assertPendingCartsLand(hs);
          assert.equal((await bridge.service.store.listDeadLetters({ limit: 10 })).length, 1);
          await assertMissedChangesKept(bridge.service.store);
        } finally {
          await bridge.stop({ drainMs: 500 });
        }
        // A newer release's database: refused with exit 78.
        await admin.query(`INSERT INTO ${schema}.schema_migrations (version, name) VALUES (999, 'future')`);
        const run = spawnSync(process.execPath, [MAIN, "serve"], {
          env: {
            ...bridgeEnv({ hubspotUrl: "http://127.0.0.1:9", dbPath: "x", port: 0 }),
            DATABASE_URL: url.toString(),
          },
          encoding: "utf8",
          timeout: 20_000,
        });
        assert.equal(run.status, 78, run.stdout + run.stderr);
        assert.match(run.stdout + run.stderr, /schema is version 999, newer than this cartbridge knows/);
      } finally {
        await hs.close();
        await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await admin.end();
      }
    });
});
