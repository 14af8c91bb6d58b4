import assert from "node:assert/strict";
import { hubspotPaths } from "../../src/hubspot/paths.ts";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";
import { describe, it } from "node:test";
import type { FakeHubSpot } from "../fakes/hubspot-server.ts";
import { withBridge, type TestBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * HubSpot's batch upsert answers name their inputs in several ways (hubspot.md §2): results may or may not
 * echo `objectWriteTraceId` or the id property, and 207 errors name an input by `context.objectWriteTraceId`
 * or by `context.ids`. Whatever the answer names, every input must be settled: written once, or dead-lettered.
 */
const key = (token: string) => `${TEST_SHOP}:${token}`;
const upserts = (hs: FakeHubSpot) => hs.requests.filter((r) => r.path.endsWith("/carts/batch/upsert"));
type Results = { results: Array<Record<string, unknown> & { properties: Record<string, string> }> };

async function checkouts(bridge: TestBridge, tokens: readonly string[]): Promise<void> {
  // Together, within one flush interval, so they share one batch.
  const answers = await Promise.all(
    tokens.map((t) => postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) })),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    tokens.map(() => 200),
  );
}

async function settled(bridge: TestBridge): Promise<void> {
  await waitFor(async () => (await bridge.service.store.stats(Date.now())).pendingCarts === 0, {
    what: "nothing pending",
  });
}

const slowFlush = { FLUSH_INTERVAL_MS: "400" };

describe("batch answers that name inputs differently", () => {
  it("a 200 whose results echo neither trace ids nor the id property: every cart is settled, written once", async () => {
    await withBridge(
      {
        ready: true,
        env: slowFlush,
        setup: (hs) => hs.setUpsertEcho({ traceIds: false, idProperty: false }),
      },
      async (hs, bridge) => {
        const tokens = ["echo-none-1", "echo-none-2", "echo-none-3"];
        await checkouts(bridge, tokens);
        await waitFor(() => tokens.every((t) => hs.cartByKey(key(t))), { what: "carts" });
        await settled(bridge);
        // The fake really answers so: no trace id and no cart key in a result.
        const probe = (await (
          await fetch(`${hs.url}${hubspotPaths(testHubSpotApiVersion()).batchUpsert("carts")}`, {
            method: "POST",
            headers: { authorization: "Bearer test-token", "content-type": "application/json" },
            body: JSON.stringify({
              inputs: [
                {
                  id: key("probe"),
                  idProperty: "shopify_cart_key",
                  objectWriteTraceId: "t-1",
                  properties: {},
                },
              ],
            }),
          })
        ).json()) as Results;
        assert.equal(probe.results[0]?.["objectWriteTraceId"], undefined);
        assert.equal(probe.results[0]?.properties["shopify_cart_key"], undefined);
        assert.match(String(probe.results[0]?.["id"]), /^\d+$/);
        assert.deepEqual(
          tokens.map((t) => hs.cartByKey(key(t))?.writes),
          [1, 1, 1],
          "no input sent twice",
        );
        assert.equal(upserts(hs).length, 2, "one request from the bridge, one probe");
        assert.equal(
          bridge.logs.filter((l) => l["msg"] === "batch answer did not cover every input").length,
          0,
        );
      },
    );
  });

  it("results without objectWriteTraceId but with the id property: settled by key, and the buyer is linked to the cart", async () => {
    await withBridge(
      { ready: true, env: slowFlush, setup: (hs) => hs.setUpsertEcho({ traceIds: false }) },
      async (hs, bridge) => {
        await checkouts(bridge, ["echo-key-1", "echo-key-2"]);
        await settled(bridge);
        // The record id was learned from the key, so the contact lane can associate the cart.
        await waitFor(() => hs.associations().length === 2, { what: "two associations" });
        const cartIds = new Set(["echo-key-1", "echo-key-2"].map((t) => hs.cartByKey(key(t))?.id));
        assert.ok(hs.associations().every((a) => cartIds.has(a.cartId)));
      },
    );
  });

  for (const echo of [
    { name: "results echo trace ids", traceIds: true, idProperty: true },
    { name: "results echo nothing", traceIds: false, idProperty: false },
  ]) {
    it(`a 207 whose errors name inputs by context.ids (${echo.name}): the bad cart is dead-lettered, the others written once`, async () => {
      await withBridge(
        {
          ready: true,
          env: slowFlush,
          setup: (hs) => {
            hs.setUpsertEcho({ traceIds: echo.traceIds, idProperty: echo.idProperty, errorsKeyedBy: "ids" });
            hs.rejectCartId(key("ids-bad"), "Property values were not valid: ids-bad");
          },
        },
        async (hs, bridge) => {
          const good = ["ids-good-1", "ids-good-2", "ids-good-3"];
          await checkouts(bridge, [...good, "ids-bad"]);
          const letters = await waitFor(async () => {
            const l = await bridge.service.store.listDeadLetters({ limit: 10 });
            return l.length > 0 ? l : undefined;
          });
          await settled(bridge);
          const [answer] = upserts(hs);
          assert.equal(answer?.status, 207, "HubSpot answered with a per-input error");
          assert.deepEqual(
            letters.map((l) => [l.cartKey, l.category]),
            [[key("ids-bad"), "VALIDATION_ERROR"]],
          );
          assert.match(letters[0]?.reason ?? "", /ids-bad/);
          assert.deepEqual(
            good.map((t) => hs.cartByKey(key(t))?.writes),
            [1, 1, 1],
            "good carts written once, not sent again",
          );
          assert.equal(upserts(hs).length, 1, "one request settled all four");
        },
      );
    });
  }
});
