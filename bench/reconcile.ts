/**
 * SPEC §8's two reconciliation rows (§9), in process, against the Shopify Admin sandbox and the HubSpot sandbox.
 *
 * - missed change → HubSpot: a bridge reconciling one shop every `intervalMs`; orders appear in Shopify at
 *   random instants and their webhooks never come. Measured from the order's `updatedAt` (its insertion)
 *   to the HubSpot upsert that marks its cart `completed`. Target: p95 ≤ interval + flush interval + 2 s.
 * - backfill: N abandoned checkouts + N orders, one pass against a sandbox enforcing a 1,000-point bucket
 *   restoring 100 points/s. The time that bucket needs for the queries' actual cost is
 *   (actual cost − 1,000 points already in the bucket) / 100 per second; target: the pass within 1.25 × that,
 *   with zero failed passes. Quick mode backfills 300 + 300 (about a minute of bucket time), full mode the
 *   SPEC's 5,000 + 5,000 (about 23 minutes).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { startService } from "../src/service.ts";
import { createShopifyAdmin } from "../src/shopify/admin-client.ts";
import { openSqliteStore } from "../src/store/sqlite.ts";
import { createReconciler } from "../src/sync/reconcile/reconciler.ts";
import { startFakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { startShopifyAdminSandbox } from "../test/fakes/shopify-admin.ts";
import { orderBody, orderNode, reconcileEnv, seedCarts } from "../test/helpers/reconcile.ts";
import type { BenchContext } from "./context.ts";
import type { Row } from "./report.ts";
import { int, ms, percentiles } from "./stats.ts";

const SHOP = "bench-shop.myshopify.com";

export async function measureReconcile(ctx: BenchContext): Promise<Row[]> {
  const full = ctx.settings.mode === "full";
  return [await missedChange(ctx, full ? 40 : 15), await backfill(ctx, full ? 5000 : 300)];
}

async function missedChange(ctx: BenchContext, orders: number): Promise<Row> {
  const intervalMs = 2000;
  const flushMs = 1000;
  const sandbox = await startShopifyAdminSandbox();
  const hs = await startFakeHubSpot({ recordRequests: true });
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-bench-reconcile-"));
  const config = loadConfig({
    SHOPIFY_WEBHOOK_SECRETS: "bench-secret",
    HUBSPOT_ACCESS_TOKEN: "test-token",
    HUBSPOT_BASE_URL: hs.url,
    DATABASE_URL: `sqlite:${join(dir, "c.db")}`,
    PORT: "0",
    FLUSH_INTERVAL_MS: String(flushMs),
    HUBSPOT_SYNC_CONTACTS: "false",
    ...reconcileEnv(sandbox, [SHOP], intervalMs),
  });
  const service = await startService(
    config,
    createLogger("silent", new Writable({ write: (_c, _e, d) => d() })),
    {
      host: "127.0.0.1",
    },
  );
  const latencies: number[] = [];
  try {
    const landed = new Map<string, number>();
    const watch = setInterval(() => {
      for (const r of hs.requests) {
        if (!r.path.includes("/carts/batch/upsert") || r.status !== 200 || r.doneMs === undefined) continue;
        const inputs =
          (r.body as { inputs?: { id: string; properties: Record<string, string> }[] }).inputs ?? [];
        for (const input of inputs) {
          if (input.properties["hs_external_status"] === "completed" && !landed.has(input.id))
            landed.set(input.id, r.atMs);
        }
      }
    }, 50);
    const inserted = new Map<string, number>();
    for (let i = 0; i < orders; i++) {
      await new Promise((r) => setTimeout(r, Math.random() * intervalMs));
      const at = Date.now();
      sandbox.putOrders(SHOP, [orderNode(i, orderBody(i, at))]);
      inserted.set(`${SHOP}:cart-${i}`, at);
    }
    const deadline = Date.now() + intervalMs * 3 + flushMs + 10_000;
    while (landed.size < orders && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    clearInterval(watch);
    for (const [key, at] of inserted) {
      const l = landed.get(key);
      if (l !== undefined) latencies.push(l - at);
    }
  } finally {
    await service.stop({ drainMs: 500 });
    await hs.close();
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const targetMs = intervalMs + flushMs + 2000;
  const [p50 = NaN, p95 = NaN, max = NaN] = percentiles(latencies, [50, 95, 100]);
  ctx.log(
    `reconcile missed change: ${latencies.length}/${orders} landed, p50 ${ms(p50)}, p95 ${ms(p95)}, max ${ms(max)}`,
  );
  return {
    measure: `missed change → HubSpot through reconciliation (RECONCILE_INTERVAL_MS=${intervalMs}, FLUSH_INTERVAL_MS=${flushMs}; ${orders} orders without webhooks), p50 / p95`,
    bridge: `${ms(p50)} / ${ms(p95)}${latencies.length < orders ? ` (${orders - latencies.length} never landed)` : ""}`,
    baseline: "–",
    ratio: "–",
    target: `p95 ≤ ${ms(targetMs)}`,
    met: latencies.length === orders && p95 <= targetMs,
  };
}

async function backfill(ctx: BenchContext, each: number): Promise<Row> {
  const bucketSize = 1000;
  const restoreRate = 100;
  const sandbox = await startShopifyAdminSandbox({ bucketSize, restoreRatePerS: restoreRate });
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-bench-backfill-"));
  const store = openSqliteStore(join(dir, "c.db"));
  try {
    // `each` checkouts, and orders for every second one plus as many carts with an order only.
    seedCarts(sandbox, SHOP, each, (i) => Date.now() - 86_400_000 + i * 1000);
    const extra = [];
    for (let i = each; i < each + each / 2; i++)
      extra.push(orderNode(i, orderBody(i, Date.now() - 3_600_000 + i)));
    sandbox.putOrders(SHOP, extra);
    const admin = createShopifyAdmin({
      apiVersion: "2026-10",
      adminApiUrl: sandbox.adminApiUrl,
      shops: [SHOP],
      adminTokens: new Map(),
      clientId: "sandbox-client-id",
      clientSecret: "sandbox-client-secret",
    });
    const reconciler = createReconciler({
      admin,
      store,
      intervalMs: 0,
      lookbackDays: 30,
      syncContacts: true,
      owner: "bench",
      log: { info: () => {}, warn: () => {} },
    });
    const started = performance.now();
    let pages = 0;
    const result = await reconciler.runOnce(SHOP, { onPage: () => void pages++ });
    const elapsedS = (performance.now() - started) / 1000;
    const actual = sandbox.actualCost(SHOP);
    const bucketS = Math.max(0, actual - bucketSize) / restoreRate;
    const throttled = sandbox.requests.filter((r) => r.code === "THROTTLED").length;
    const ratio = elapsedS / bucketS;
    ctx.log(
      `reconcile backfill: ${result.outcome}, read ${result.summary.read} in ${pages} pages, ${elapsedS.toFixed(1)} s; actual cost ${int(actual)} points → bucket time ${bucketS.toFixed(1)} s; ${throttled} THROTTLED answers`,
    );
    return {
      measure: `backfill of ${int(each)} abandoned checkouts + ${int(each)} orders, 1,000-point bucket restoring 100/s (${pages} pages, ${throttled} THROTTLED)`,
      bridge: `${elapsedS.toFixed(1)} s, pass ${result.outcome}`,
      baseline: `${bucketS.toFixed(1)} s (bucket time for ${int(actual)} points actual cost)`,
      ratio: `${ratio.toFixed(2)} × bucket time`,
      target: "≤ 1.25 × bucket time, zero failed passes",
      met: result.outcome === "completed" && ratio <= 1.25,
    };
  } finally {
    await store.close();
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
