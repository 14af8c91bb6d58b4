/**
 * npm run demo: the whole bridge on this machine with no accounts. A local HubSpot sandbox (the stateful
 * fake the tests use) and the bridge on the embedded SQLite store; every cart, checkout and order sample
 * from Shopify's docs is signed and sent as Shopify would; the resulting HubSpot carts are printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { startService } from "../src/service.ts";
import { startFakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { loadFixtures, postDelivery, TEST_SECRET } from "../test/helpers/shopify.ts";
import { waitFor } from "../test/helpers/wait.ts";
import { demoReconciliation } from "./demo-reconcile.ts";

const dir = mkdtempSync(join(tmpdir(), "cartbridge-demo-"));
const sandbox = await startFakeHubSpot({ accessToken: "demo-token" });
const config = loadConfig({
  SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
  HUBSPOT_ACCESS_TOKEN: "demo-token",
  HUBSPOT_BASE_URL: sandbox.url,
  DATABASE_URL: `sqlite:${join(dir, "cartbridge.db")}`,
  PORT: "0",
  FLUSH_INTERVAL_MS: "500",
  LOG_LEVEL: process.env["LOG_LEVEL"] ?? "warn",
});
const service = await startService(config, createLogger(config.logLevel), { host: "127.0.0.1" });
let exitCode = 0;
try {
  await waitFor(async () => (await service.readiness()).ready, { what: "the bridge to be ready" });
  console.log(`cartbridge ${service.url} → HubSpot sandbox ${sandbox.url}, store ${config.databaseUrl}\n`);

  const samples = loadFixtures().filter((f) => /^(carts|checkouts|orders)\//.test(f.topic));
  const sent: Array<{ file: string; shop: string; outcome: string }> = [];
  for (const f of samples) {
    // One demo shop per sample, so each becomes its own cart (the docs reuse the same tokens).
    const shop = `${f.file.replace(/\.shopify-docs-/, "-").replace(/\.json$/, "")}.myshopify.com`;
    const res = await postDelivery(service.url, { topic: f.topic, body: f.body, shop });
    sent.push({
      file: f.file,
      shop,
      outcome: (res.json as { outcome?: string }).outcome ?? `HTTP ${res.status}`,
    });
    if (f.topic === "orders/create") {
      // The docs' orders carry no cart_token (like POS orders): the bridge counts and ignores them.
      // A storefront order names its cart; send the same order linked to one to show it completing.
      const linked = {
        ...(JSON.parse(f.body.toString("utf8")) as object),
        cart_token: `demo-cart-${sent.length}`,
      };
      const again = await postDelivery(service.url, { topic: f.topic, body: JSON.stringify(linked), shop });
      sent.push({
        file: `${f.file} (+cart_token)`,
        shop,
        outcome: (again.json as { outcome?: string }).outcome ?? "",
      });
    }
  }
  console.log("Deliveries (signed with the demo secret, byte-exact samples):");
  for (const s of sent) console.log(`  ${s.outcome.padEnd(10)} ${s.file}`);

  const expected = sent
    .filter((s) => s.outcome === "applied" || s.outcome === "unchanged")
    .map((s) => s.shop);
  await waitFor(
    () => expected.every((shop) => [...sandbox.carts().keys()].some((k) => k.startsWith(`${shop}:`))),
    {
      what: "every cart in the HubSpot sandbox",
      timeoutMs: 15_000,
    },
  );

  const rows = [...sandbox.carts().values()].map((c) => ({
    key: c.key.length > 58 ? `${c.key.slice(0, 55)}...` : c.key,
    status: c.properties["hs_external_status"] ?? "",
    total: c.properties["hs_total_price"] ?? "",
    currency: c.properties["hs_currency_code"] ?? "",
    name: (c.properties["hs_cart_name"] ?? "").slice(0, 34),
    url: (c.properties["hs_cart_url"] ?? "").slice(0, 60),
  }));
  const upserts = sandbox.requests.filter((r) => r.path.endsWith("/batch/upsert"));
  console.log(`\nHubSpot carts (${rows.length}, written with ${upserts.length} batch upsert request(s)):`);
  console.table(rows);
  await demoReconciliation((line) => console.log(line));
} catch (error) {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  await service.stop({ drainMs: 2000 });
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(exitCode);
