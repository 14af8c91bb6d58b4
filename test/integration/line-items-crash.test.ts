import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { bridgeEnv, freePort, spawnBridge } from "../helpers/child.ts";
import { postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const KEY = `${TEST_SHOP}:crash-1`;

function checkout(): string {
  return JSON.stringify({
    token: "chk-crash-1",
    cart_token: "crash-1",
    presentment_currency: "USD",
    total_price: "47.50",
    updated_at: "2026-11-01T10:05:00Z",
    line_items: [
      { variant_id: 101, title: "Shirt", quantity: 1, price: "20.00", sku: "SKU-101" },
      { variant_id: 102, title: "Mug", quantity: 2, price: "7.50", sku: "SKU-102" },
      { variant_id: 103, title: "Cap", quantity: 1, price: "12.50", sku: "SKU-103" },
    ],
  });
}

describe("line items across a crash (SIGKILL)", () => {
  it("killed after the line upsert, before the association: the restart reuses the line items and associates them", async () => {
    const hs = await startFakeHubSpot();
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-lines-crash-"));
    const env = bridgeEnv({ hubspotUrl: hs.url, dbPath: join(dir, "c.db"), port: await freePort() });
    try {
      // The association never answers: the process dies with the line items written but not associated.
      hs.failNext({ status: 0, hang: true }, { path: "/line_items/carts/batch/associate/default" });
      const first = await spawnBridge(env);
      assert.equal(
        (await postDelivery(first.url, { topic: "checkouts/update", body: checkout() })).status,
        200,
      );
      await waitFor(() => hs.requests.some((r) => r.path.includes("/batch/associate/default")), {
        what: "the association request",
      });
      assert.equal(hs.lineItems().size, 3, "line items written before the crash");
      assert.ok(hs.cartByKey(KEY));
      first.proc.kill("SIGKILL");
      await first.exited;

      const second = await spawnBridge({ ...env, PORT: String(await freePort()) });
      try {
        const cartId = hs.cartByKey(KEY)?.id ?? "";
        await waitFor(() => hs.lineItemsOfCart(cartId).length === 3, {
          what: "lines associated after restart",
        });
        assert.equal(hs.allLineItems().length, 3, "no line item duplicated");
        assert.equal(hs.carts().size, 1, "no cart duplicated");
        assert.deepEqual(
          hs
            .lineItemsOfCart(cartId)
            .map((i) => [i.key, i.properties["quantity"]])
            .sort(),
          [
            [`${KEY}:101`, "1"],
            [`${KEY}:102`, "2"],
            [`${KEY}:103`, "1"],
          ],
        );
      } finally {
        second.proc.kill("SIGTERM");
        await second.exited;
      }
    } finally {
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
