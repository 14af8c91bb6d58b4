import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withBridge, type TestBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * HUBSPOT_API_VERSION end to end: the bridge speaks only the configured version's paths (the sandbox serves
 * one version and answers 404 to the other), and the 2026-09 required-property rule ends in dead letters and
 * a readiness reason, never in retries.
 */

const REQUIRED = "store_region";

async function readyz(bridge: TestBridge): Promise<{ status: number; reason: string; degraded: string }> {
  const res = await fetch(`${bridge.url}/readyz`);
  const body = (await res.json()) as { reason?: string; degraded?: unknown };
  return { status: res.status, reason: body.reason ?? "", degraded: JSON.stringify(body.degraded ?? []) };
}

describe("HubSpot API versions", () => {
  it("2026-09: every request uses the date-versioned paths; carts, contacts and associations land", async () => {
    await withBridge(
      { fake: { apiVersion: "2026-09" }, env: { HUBSPOT_API_VERSION: "2026-09" }, ready: true },
      async (hs, bridge) => {
        await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("dated-1") });
        await waitFor(
          () => {
            const cart = hs.cartByKey(`${TEST_SHOP}:dated-1`);
            return (
              hs.associations().length === 1 && cart !== undefined && hs.lineItemsOfCart(cart.id).length === 1
            );
          },
          {
            what: "cart, contact, line item and associations",
          },
        );
        assert.equal(hs.cartByKey(`${TEST_SHOP}:dated-1`)?.properties["hs_total_price"], "10.00");
        const paths = new Set(hs.requests.map((r) => r.path.split("?")[0]));
        assert.deepEqual([...paths].sort(), [
          "/crm/associations/2026-09/carts/contacts/batch/create",
          "/crm/associations/2026-09/line_items/carts/batch/associate/default",
          "/crm/objects/2026-09/carts/batch/upsert",
          "/crm/objects/2026-09/contacts/batch/upsert",
          "/crm/objects/2026-09/line_items/batch/upsert",
          "/crm/properties/2026-09/carts",
          "/crm/properties/2026-09/line_items",
        ]);
        assert.ok(hs.requests.every((r) => r.status >= 200 && r.status < 300));
      },
    );
  });

  it("2026-09 with a required cart property: dead letters with HubSpot's message, /readyz and the log say which, replay after the fix", async () => {
    await withBridge(
      {
        fake: { apiVersion: "2026-09", requiredCartProperties: [REQUIRED] },
        env: { HUBSPOT_API_VERSION: "2026-09", ADMIN_TOKEN: "adm", HUBSPOT_SYNC_CONTACTS: "false" },
        setup: (hs) => hs.addCartProperty({ name: REQUIRED, type: "string", label: "Store region" }),
        ready: true,
      },
      async (hs, bridge) => {
        for (const t of ["req-1", "req-2"])
          await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) });
        const letters = await waitFor(async () => {
          const l = await bridge.service.store.listDeadLetters({ limit: 10 });
          return l.length === 2 ? l : undefined;
        });
        for (const l of letters) {
          assert.equal(l.source, "hubspot");
          assert.match(l.reason ?? "", new RegExp(`${REQUIRED} is required`));
        }
        assert.equal(hs.carts().size, 0);
        // Nothing is left to retry: the carts are settled as dead letters, not pending.
        assert.equal((await bridge.service.store.stats(Date.now())).pendingCarts, 0);
        const r = await readyz(bridge);
        // Only carts without the property are refused: degraded, still ready for webhooks (SPEC §3).
        assert.equal(r.status, 200);
        assert.match(r.degraded, new RegExp(`HubSpot requires carts property ${REQUIRED} on every write`));
        const logged = bridge.logs.filter((l) => String(l["msg"]).startsWith("HubSpot requires properties"));
        assert.equal(logged.length, 1, "logged once");
        assert.deepEqual(logged[0]?.["properties"], [REQUIRED]);

        hs.requireCartProperty(REQUIRED, false);
        const res = await fetch(`${bridge.url}/admin/dead-letters/replay`, {
          method: "POST",
          headers: { authorization: "Bearer adm", "content-type": "application/json" },
          body: JSON.stringify({ all: true }),
        });
        assert.equal(res.status, 200);
        await waitFor(() => hs.carts().size === 2, { what: "replayed carts" });
        await waitFor(async () => !(await readyz(bridge)).degraded.includes(REQUIRED), {
          what: "not degraded",
        });
      },
    );
  });

  it("v3: the same portal's required property is not enforced on the v3 paths, and only v3 paths are used", async () => {
    await withBridge(
      {
        fake: { apiVersion: "v3", requiredCartProperties: [REQUIRED] },
        env: { HUBSPOT_API_VERSION: "v3", HUBSPOT_SYNC_CONTACTS: "false" },
        setup: (hs) => hs.addCartProperty({ name: REQUIRED, type: "string" }),
        ready: true,
      },
      async (hs, bridge) => {
        await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("legacy-1") });
        await waitFor(() => hs.cartByKey(`${TEST_SHOP}:legacy-1`), { what: "cart" });
        assert.ok(hs.requests.every((r) => r.path.startsWith("/crm/v3/")));
        assert.equal((await bridge.service.store.stats(Date.now())).deadLetters, 0);
      },
    );
  });
});
