import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { startTestBridge, type TestBridge } from "../helpers/bridge.ts";
import {
  buildDelivery,
  checkoutBody,
  deliver,
  fixture,
  postDelivery,
  TEST_SECRET,
} from "../helpers/shopify.ts";

describe("POST /webhooks/shopify answers (SPEC §3)", () => {
  let hs: FakeHubSpot;
  let bridge: TestBridge;
  const sample = fixture("checkouts-update.shopify-docs-2026-04.json");
  const stats = () => bridge.service.store.stats(Date.now());

  before(async () => {
    hs = await startFakeHubSpot();
    bridge = await startTestBridge({
      hubspotUrl: hs.url,
      env: {
        MAX_BODY_BYTES: "65536",
        ADMIN_TOKEN: "admin-secret",
        SHOPIFY_WEBHOOK_SECRETS: `old-secret, ${TEST_SECRET}`,
      },
    });
  });
  after(async () => {
    await bridge.stop();
    await hs.close();
  });

  it("401 when the HMAC is missing, malformed or matches no secret, and nothing is stored", async () => {
    const before = await stats();
    const cases = [
      { hmac: null },
      { hmac: "" },
      { hmac: "not-base64!" },
      { hmac: Buffer.alloc(16).toString("base64") },
      { secret: "wrong-secret" },
    ];
    for (const c of cases) {
      const res = await postDelivery(bridge.url, { topic: sample.topic, body: sample.body, ...c });
      assert.equal(res.status, 401, JSON.stringify(c));
    }
    // A genuine signature over a different body.
    const { headers } = buildDelivery({ topic: sample.topic, body: sample.body });
    const tampered = Buffer.from(sample.body.toString("utf8").replace("example@email.com", "evil@email.com"));
    const res = await fetch(`${bridge.url}/webhooks/shopify`, { method: "POST", headers, body: tampered });
    assert.equal(res.status, 401);
    assert.deepEqual(await stats(), before);
  });

  it("a delivery signed with any configured secret is accepted", async () => {
    const res = await postDelivery(bridge.url, {
      topic: "checkouts/create",
      body: checkoutBody("rotated-1"),
      secret: "old-secret",
    });
    assert.equal(res.status, 200);
  });

  it("400 when genuine but without topic or shop domain", async () => {
    const noTopic = await postDelivery(bridge.url, { topic: "", body: sample.body });
    assert.equal(noTopic.status, 400);
    assert.match(JSON.stringify(noTopic.json), /X-Shopify-Topic/);
    const noShop = await postDelivery(bridge.url, { topic: sample.topic, body: sample.body, shop: null });
    assert.equal(noShop.status, 400);
    assert.match(JSON.stringify(noShop.json), /X-Shopify-Shop-Domain/);
  });

  it("413 when the body is over MAX_BODY_BYTES; just under is fine", async () => {
    const big = Buffer.alloc(65_537, 0x20);
    assert.equal((await postDelivery(bridge.url, { topic: "carts/update", body: big })).status, 413);
    const under = Buffer.concat([
      Buffer.from(checkoutBody("size-1")),
      Buffer.alloc(65_536 - Buffer.byteLength(checkoutBody("size-1")), 0x20),
    ]);
    assert.equal(under.length, 65_536);
    assert.equal((await postDelivery(bridge.url, { topic: "checkouts/update", body: under })).status, 200);
  });

  it("200 for a duplicate, an unhandled topic and an unkeyed order", async () => {
    const body = checkoutBody("twice-1");
    const first = await deliver(bridge.url, { topic: "checkouts/update", body, webhookId: "same-id" });
    assert.deepEqual([first.status, first.json, first.outcome], [200, { outcome: "accepted" }, "applied"]);
    const again = await deliver(bridge.url, { topic: "checkouts/update", body, webhookId: "same-id" });
    assert.deepEqual([again.status, again.outcome], [200, "duplicate"]);
    const other = await deliver(bridge.url, { topic: "products/update", body: "{}" });
    assert.deepEqual([other.status, other.outcome], [200, "ignored"]);
    const order = fixture("orders-create.shopify-docs-2026-04.json");
    const unkeyed = await deliver(bridge.url, { topic: order.topic, body: order.body });
    assert.deepEqual([unkeyed.status, unkeyed.outcome], [200, "unkeyed"]);
  });

  it("200 for a genuine body that cannot be mapped, kept as a dead letter with its reason", async () => {
    const before = (await stats()).deadLetters;
    for (const body of ["", "not json", "[]", "42", "null"]) {
      const res = await deliver(bridge.url, { topic: "checkouts/update", body });
      assert.equal(res.status, 200, body);
      assert.equal(res.outcome, "dead_lettered");
    }
    assert.equal((await stats()).deadLetters, before + 5);
    const list = (await (
      await fetch(`${bridge.url}/admin/dead-letters`, { headers: { authorization: "Bearer admin-secret" } })
    ).json()) as { deadLetters: Array<{ reason: string; source: string; topic: string }> };
    assert.ok(list.deadLetters.length >= 5);
    for (const l of list.deadLetters) {
      assert.equal(l.source, "mapping");
      assert.ok(l.reason.length > 0);
    }
    const stored = await bridge.service.store.listDeadLetters({ limit: 100 });
    const raw = stored.find((l) => l.body?.toString("utf8") === "not json");
    assert.ok(raw, "the raw body is kept");
    assert.equal(raw.headers["x-shopify-hmac-sha256"], undefined, "the HMAC is not kept");
    assert.equal(raw.headers["x-shopify-topic"], "checkouts/update");
  });

  it("health and readiness", async () => {
    assert.equal((await fetch(`${bridge.url}/healthz`)).status, 200);
    const ready = await fetch(`${bridge.url}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
  });

  it("admin routes need the bearer token", async () => {
    assert.equal((await fetch(`${bridge.url}/admin/status`)).status, 401);
    assert.equal(
      (await fetch(`${bridge.url}/admin/status`, { headers: { authorization: "Bearer nope" } })).status,
      401,
    );
    const ok = await fetch(`${bridge.url}/admin/status`, {
      headers: { authorization: "Bearer admin-secret" },
    });
    assert.equal(ok.status, 200);
    assert.equal(typeof ((await ok.json()) as { pendingCarts: unknown }).pendingCarts, "number");
  });

  it("503 when the store cannot commit, never 200", async () => {
    await bridge.service.store.close();
    const res = await postDelivery(bridge.url, {
      topic: "checkouts/update",
      body: checkoutBody("after-close"),
    });
    assert.equal(res.status, 503);
    const ready = await fetch(`${bridge.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /store/);
  });
});

describe("admin routes without ADMIN_TOKEN", () => {
  it("answer 404", async () => {
    const hs = await startFakeHubSpot();
    const bridge = await startTestBridge({ hubspotUrl: hs.url });
    try {
      assert.equal(
        (await fetch(`${bridge.url}/admin/status`, { headers: { authorization: "Bearer x" } })).status,
        404,
      );
      assert.equal((await fetch(`${bridge.url}/admin/dead-letters`)).status, 404);
    } finally {
      await bridge.stop();
      await hs.close();
    }
  });
});

describe("shutdown", () => {
  it("answers 503 to deliveries once shutting down", async () => {
    const hs = await startFakeHubSpot();
    const bridge = await startTestBridge({ hubspotUrl: hs.url });
    const stopping = bridge.stop({ keepDir: false });
    // The listener closes at once; a new connection is refused or answered 503.
    const res = await postDelivery(bridge.url, {
      topic: "checkouts/update",
      body: checkoutBody("late"),
    }).catch(() => ({ status: 0 }));
    assert.ok(res.status === 503 || res.status === 0, `got ${res.status}`);
    await stopping;
    await hs.close();
  });
});
