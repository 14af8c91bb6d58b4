import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { replayDeadLetters } from "../../src/sync/replay.ts";
import { withBridge } from "../helpers/bridge.ts";
import { postDelivery, TEST_SHOP } from "../helpers/shopify.ts";

describe("privacy requests the bridge cannot read", () => {
  for (const body of [
    '{"shop_domain": "example-shop.myshopify.com", "customer": {"email": "ann@',
    '["not", "an", "object"]',
  ]) {
    it(`customers/redact with body ${JSON.stringify(body.slice(0, 20))}…: 200, kept as a dead letter, redelivery is a duplicate`, async () => {
      await withBridge({}, async (_hs, bridge) => {
        const webhookId = `redact-${body.length}`;
        const res = await postDelivery(bridge.url, { topic: "customers/redact", body, webhookId });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, { outcome: "dead_lettered" });
        const letters = await bridge.service.store.listDeadLetters({ limit: 10 });
        assert.equal(letters.length, 1);
        assert.equal(letters[0]?.topic, "customers/redact");
        assert.equal(letters[0]?.source, "mapping");
        assert.equal(letters[0]?.shopDomain, TEST_SHOP);
        assert.equal(letters[0]?.webhookId, webhookId);
        assert.match(
          letters[0]?.reason ?? "",
          /customers\/redact body is not a JSON object; nothing was erased/,
        );
        assert.equal(letters[0]?.body?.toString("utf8"), body, "the request is kept byte for byte");
        assert.equal(letters[0]?.headers["x-shopify-hmac-sha256"], undefined, "never the HMAC");
        const logged = bridge.logs.find(
          (l) => l["msg"] === "privacy request unreadable; kept as a dead letter",
        );
        assert.equal(logged?.["topic"], "customers/redact");
        assert.doesNotMatch(JSON.stringify(bridge.logs), /ann@/);
        assert.match(
          await (await fetch(`${bridge.url}/metrics`)).text(),
          /webhooks_received_total\{topic="customers\/redact",outcome="dead_lettered"\} 1/,
        );
        // Replaying it erases nothing and does not delete it: it reports why.
        const [replay] = await bridge.service.store.listDeadLetters({ limit: 1 }).then((l) =>
          replayDeadLetters(bridge.service.store, [l[0]?.id ?? 0], {
            nowMs: Date.now(),
            syncContacts: true,
          }),
        );
        assert.equal(replay?.outcome, "still_failing");
        assert.match(replay?.reason ?? "", /act on it by hand/);
        const again = await postDelivery(bridge.url, { topic: "customers/redact", body, webhookId });
        assert.deepEqual(again.json, { outcome: "duplicate" });
        assert.equal((await bridge.service.store.listDeadLetters({ limit: 10 })).length, 1);
      });
    });
  }
});
