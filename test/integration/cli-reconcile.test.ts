import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { startShopifyAdminSandbox } from "../fakes/shopify-admin.ts";
import { bridgeEnv, MAIN } from "../helpers/child.ts";
import { reconcileEnv, seedCarts } from "../helpers/reconcile.ts";

const SHOP = "cli-shop.myshopify.com";

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    proc.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
    proc.on("close", (code) => resolve({ code, out }));
  });
}

describe("cartbridge reconcile", () => {
  it("runs one pass now, printing a line per page and a summary; refuses bad arguments", async () => {
    const sandbox = await startShopifyAdminSandbox({ restoreRatePerS: 50_000 });
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-reconcile-cli-"));
    try {
      seedCarts(sandbox, SHOP, 100, (i) => Date.now() - 40 * 86_400_000 + i * 1000);
      const env = {
        ...bridgeEnv({ hubspotUrl: "http://127.0.0.1:9", dbPath: join(dir, "c.db"), port: 0 }),
        ...reconcileEnv(sandbox, [SHOP], 0),
      };
      // 40 days back: outside the default 30-day lookback, so only --since finds them.
      const plain = await run(["reconcile"], env);
      assert.equal(plain.code, 0, plain.out);
      assert.match(plain.out, /cli-shop\.myshopify\.com: pass completed: read 0, changed 0/);

      const backfill = await run(["reconcile", "--shop", SHOP, "--since", "45d"], env);
      assert.equal(backfill.code, 0, backfill.out);
      // Pages of 14 checkouts (with up to 10 lines each, 14 × 63 points requested: under 90 % of Shopify's
      // 1,000-point single-query limit).
      assert.match(backfill.out, /cli-shop\.myshopify\.com checkouts page 1: read 14,/);
      // Each page line counts that page: the 50 orders, all changes no webhook brought (40 days old).
      assert.match(backfill.out, /orders page 1: read 50, changed 50, missed 50, skipped 0 \(last page\)/);
      assert.match(
        backfill.out,
        /pass completed: read 150, changed 150, missed 150, skipped without a key 0/,
      );
      assert.doesNotMatch(backfill.out, /shpat_|sandbox-client-secret/);

      const store = openSqliteStore(join(dir, "c.db"));
      assert.equal((await store.stats(Date.now())).carts, 100);
      assert.equal((await store.stats(Date.now())).pendingCarts, 100);
      await store.close();

      const bad = await run(["reconcile", "--since", "yesterday"], env);
      assert.equal(bad.code, 64);
      assert.match(bad.out, /--since must be an ISO date or a number of days/);

      // A shop the configuration does not name is said to be so (no token is asked for it).
      const asked = sandbox.requests.length;
      const unknown = await run(["reconcile", "--shop", "nope.myshopify.com"], env);
      assert.equal(sandbox.requests.length, asked, "Shopify was not asked for a token or data");
      assert.equal(unknown.code, 64);
      assert.match(unknown.out, /nope\.myshopify\.com is not a shop this bridge reconciles/);
      assert.match(unknown.out, /configured: cli-shop\.myshopify\.com/);
    } finally {
      await sandbox.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
