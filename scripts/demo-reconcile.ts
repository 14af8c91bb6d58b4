/**
 * The demo's reconciliation step (SPEC §9): a missed order put right, with no accounts. Self-contained so
 * scripts/demo.ts can call it as one step: its own HubSpot sandbox, Shopify Admin sandbox and bridge.
 *
 * 1. A checkout webhook arrives: the HubSpot cart is at `checkout`.
 * 2. The buyer pays 15 minutes later, while the bridge cannot take webhooks; Shopify gives up on
 *    `orders/create`. The order exists only in Shopify's Admin API.
 * 3. The next reconciliation pass finds it: the cart becomes `completed` (no abandoned-cart e-mail), and the
 *    change is counted as missed (`reconcile_missed_total`, the shop's last missed change in /admin/status).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { startService } from "../src/service.ts";
import { startFakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { startShopifyAdminSandbox } from "../test/fakes/shopify-admin.ts";
import { checkoutBody, orderBody, orderNode, reconcileEnv } from "../test/helpers/reconcile.ts";
import { postDelivery, TEST_SECRET } from "../test/helpers/shopify.ts";
import { waitFor } from "../test/helpers/wait.ts";
import { storyLine } from "./demo-story.ts";

const SHOP = "recon-shop.myshopify.com";

/** Tells the reconciliation part of the story as steps `firstStep`, `firstStep + 1`, …; returns the next step. */
export async function demoReconciliation(print: (line: string) => void, firstStep: number): Promise<number> {
  let step = firstStep;
  const line = (topic: string, what: string, result: string): void =>
    print(storyLine(step++, topic, what, result));
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-demo-reconcile-"));
  const hubspot = await startFakeHubSpot({ accessToken: "demo-token", apiVersion: "any" });
  const shopify = await startShopifyAdminSandbox();
  const start = (intervalMs: number) => {
    const config = loadConfig({
      SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
      HUBSPOT_ACCESS_TOKEN: "demo-token",
      HUBSPOT_BASE_URL: hubspot.url,
      HUBSPOT_API_VERSION: process.env["HUBSPOT_API_VERSION"] ?? "v3",
      DATABASE_URL: `sqlite:${join(dir, "cartbridge.db")}`,
      PORT: "0",
      FLUSH_INTERVAL_MS: "500",
      LOG_LEVEL: process.env["LOG_LEVEL"] ?? "warn",
      ...reconcileEnv(shopify, [SHOP], intervalMs),
    });
    return startService(config, createLogger(config.logLevel), { host: "127.0.0.1" });
  };
  const key = `${SHOP}:cart-1`;
  const status = () => hubspot.cartByKey(key)?.properties["hs_external_status"];
  let service = await start(0);
  try {
    print(`\nAnother shop, ${SHOP}, reconciled through a local Shopify Admin sandbox:`);
    const checkoutAt = Date.now() - 30 * 60_000;
    await postDelivery(service.url, {
      topic: "checkouts/update",
      body: JSON.stringify(checkoutBody(1, checkoutAt)),
      shop: SHOP,
    });
    await waitFor(() => status() === "checkout", { what: "the checkout in HubSpot" });
    line("checkouts/update", "Cy checks out, then leaves", `HubSpot cart ${status() ?? "?"}`);
    // The bridge goes down; its last completed reconciliation pass was an hour ago.
    for (const source of ["checkouts", "orders"] as const) {
      await service.store.reconcile.setWatermark(SHOP, source, Date.now() - 3_600_000);
    }
    await service.stop({ drainMs: 1000 });
    const paidAt = Date.now() - 15 * 60_000;
    shopify.putOrders(SHOP, [orderNode(1, orderBody(1, paidAt))]);
    line("(bridge down)", "Cy pays; orders/create never comes", `HubSpot still says ${status() ?? "?"}`);

    service = await start(1000);
    const reconciler = service.reconciler;
    if (reconciler === undefined) throw new Error("reconciliation is not configured");
    await waitFor(() => status() === "completed", {
      what: "the cart completed by reconciliation",
      timeoutMs: 15_000,
    });
    const shop = reconciler.status()[0];
    const total = hubspot.cartByKey(key)?.properties["hs_total_price"] ?? "?";
    line("(reconciliation)", "the next pass reads its orders", `${status() ?? "?"}, ${total} USD`);
    const missed = shop?.lastMissed;
    line(
      "(console)",
      "the missed change is counted",
      missed === undefined ? "none?" : `${shop?.lastPassSummary?.missed ?? 0} missed ${missed.topic} change`,
    );
    return step;
  } finally {
    await service.stop({ drainMs: 1000 });
    await hubspot.close();
    await shopify.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
