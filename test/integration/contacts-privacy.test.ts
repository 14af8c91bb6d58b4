import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { dailyLimitFault, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { withBridge as withTestBridge, type TestBridge } from "../helpers/bridge.ts";
import { checkoutBody, loadFixtures, postDelivery, TEST_SECRET, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const key = (token: string) => `${TEST_SHOP}:${token}`;
const contactRequests = (hs: FakeHubSpot) =>
  hs.requests.filter((r) => r.path.includes("/contacts/batch/upsert"));

const withBridge = (
  opts: { env?: Record<string, string>; setup?: (hs: FakeHubSpot) => void },
  body: (hs: FakeHubSpot, bridge: TestBridge) => Promise<void>,
): Promise<void> => withTestBridge({ ...opts, ready: true }, body);

/** Reads the bridge's SQLite file directly: what is really kept. */
function query(bridge: TestBridge, sql: string, ...args: string[]): Array<Record<string, unknown>> {
  const db = new DatabaseSync(join(bridge.dir, "cartbridge.db"), { readOnly: true });
  try {
    return db.prepare(sql).all(...args);
  } finally {
    db.close();
  }
}

const OTHER_SHOP = "other.myshopify.com";

/** Carts the bridge's file holds for `shop`. */
const cartsOf = (bridge: TestBridge, shop: string): number =>
  query(bridge, "SELECT 1 FROM carts WHERE shop = ?", shop).length;

/** One checkout for TEST_SHOP (`mine`) and one for OTHER_SHOP (`theirs`): what an erasure may or may not touch. */
async function cartInEachShop(bridge: TestBridge, mine: string, theirs: string): Promise<void> {
  await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(mine) });
  await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(theirs), shop: OTHER_SHOP });
}

describe("contacts", () => {
  it("upserts each buyer once per e-mail, associates cart → contact (586), then erases the personal data", async () => {
    // One flush for the three checkouts even on a loaded machine: "once per e-mail" needs them in one batch.
    await withBridge({ env: { FLUSH_INTERVAL_MS: "1000" } }, async (hs, bridge) => {
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("c-1", { email: "Ann@Example.com" }),
      });
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("c-2", { email: "ann@example.com" }),
      });
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("c-3", { email: "bob@example.com" }),
      });
      await waitFor(() => hs.associations().length === 3, { what: "three associations" });
      assert.deepEqual([...hs.contacts().keys()].sort(), ["ann@example.com", "bob@example.com"]);
      const emailsSent = contactRequests(hs).flatMap((r) =>
        (r.body as { inputs: Array<{ id: string }> }).inputs.map((i) => i.id),
      );
      assert.deepEqual(emailsSent.sort(), ["ann@example.com", "bob@example.com"], "one input per e-mail");
      const ann = hs.contacts().get("ann@example.com");
      for (const token of ["c-1", "c-2"]) {
        const cart = hs.cartByKey(key(token));
        assert.ok(
          hs.associations().some((a) => a.cartId === cart?.id && a.contactId === ann?.id && a.typeId === 586),
        );
      }
      await waitFor(() => query(bridge, "SELECT 1 FROM contact_links WHERE email IS NOT NULL").length === 0, {
        what: "e-mails erased",
      });
      assert.equal(
        query(bridge, "SELECT 1 FROM cart_deliveries").length,
        0,
        "raw deliveries erased once sent",
      );
    });
  });

  it("a token without contacts scopes: logged once, carts keep flowing, /readyz reports contacts degraded", async () => {
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }) }, async (hs, bridge) => {
      for (const t of ["s-1", "s-2"])
        await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) });
      await waitFor(() => hs.cartByKey(key("s-1")) && hs.cartByKey(key("s-2")), {
        what: "carts despite 403 on contacts",
      });
      const body = await waitFor(
        async () => {
          const res = await fetch(`${bridge.url}/readyz`);
          const json = (await res.json()) as { degraded?: string[] };
          return res.status === 200 && json.degraded !== undefined ? json : undefined;
        },
        { what: "degraded readiness" },
      );
      assert.match(body.degraded?.join() ?? "", /contacts/);
      assert.equal(
        bridge.logs.filter((l) => typeof l["msg"] === "string" && l["msg"].startsWith("contacts not linked"))
          .length,
        1,
      );
      await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("s-3") });
      await waitFor(() => hs.cartByKey(key("s-3")), { what: "later carts too" });
    });
  });

  it("429 DAILY on the contacts: /readyz says contacts are stopped by the daily limit, carts flow, contacts land after", async () => {
    await withBridge({}, async (hs, bridge) => {
      hs.failNext(dailyLimitFault(), { path: "/contacts/batch/upsert" });
      await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("d-1") });
      const body = await waitFor(
        async () => {
          const res = await fetch(`${bridge.url}/readyz`);
          const json = (await res.json()) as { status: string; degraded?: string[] };
          return json.degraded?.some((d) => /daily/.test(d)) === true ? json : undefined;
        },
        { what: "the daily limit in readiness", intervalMs: 20 },
      );
      assert.equal(body.status, "ready", "carts are not stopped by the contacts' pause");
      assert.deepEqual(body.degraded, ["contacts not linked: HubSpot daily API limit reached"]);
      await waitFor(() => hs.cartByKey(key("d-1")), { what: "the cart" });
      // The pause ends (500 ms in tests); the contact is linked and readiness is clean again.
      await waitFor(() => hs.contacts().has("buyer-d-1@example.com"), { what: "the contact upserted" });
      await waitFor(
        async () =>
          ((await (await fetch(`${bridge.url}/readyz`)).json()) as { degraded?: string[] }).degraded ===
          undefined,
        { what: "no longer degraded" },
      );
    });
  });

  it("an e-mail HubSpot rejects never blocks other contacts: narrowed to a dead letter", async () => {
    await withBridge({ setup: (hs) => hs.rejectContactEmail("bad@example.com") }, async (hs, bridge) => {
      const good = ["g-1", "g-2", "g-3"];
      await Promise.all([
        ...good.map((t) => postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) })),
        postDelivery(bridge.url, {
          topic: "checkouts/update",
          body: checkoutBody("g-bad", { email: "bad@example.com" }),
        }),
      ]);
      await waitFor(() => good.every((t) => hs.contacts().has(`buyer-${t}@example.com`)), {
        what: "good contacts",
      });
      await waitFor(() => hs.cartByKey(key("g-bad")), { what: "the bad buyer's cart still lands" });
      const letters = await waitFor(async () => {
        const l = await bridge.service.store.listDeadLetters({ limit: 10 });
        return l.length > 0 ? l : undefined;
      });
      assert.equal(letters[0]?.cartKey, key("g-bad"));
      assert.match(letters[0]?.reason ?? "", /^contact: /);
    });
  });

  it("HUBSPOT_SYNC_CONTACTS=false: no contact requests and no buyer kept", async () => {
    await withBridge({ env: { HUBSPOT_SYNC_CONTACTS: "false" } }, async (hs, bridge) => {
      await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("off-1") });
      await waitFor(() => hs.cartByKey(key("off-1")));
      assert.equal(contactRequests(hs).length, 0);
      assert.equal(query(bridge, "SELECT 1 FROM contact_links").length, 0);
    });
  });
});

describe("privacy topics", () => {
  it("customers/redact right after a delivery still on its way from the inbox erases what that delivery kept", async () => {
    const hold = { service: { intake: { applyDelayMs: 2000 } } };
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }), ...hold }, async (_hs, bridge) => {
      // Answered once durable in the inbox; applied behind the answer — here held back 2 s.
      const sent = await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("r-late", { email: "late@example.com" }),
      });
      assert.equal(sent.status, 200);
      const redact = JSON.stringify({
        shop_id: 1,
        shop_domain: TEST_SHOP,
        customer: { id: 8, email: "late@example.com", phone: null },
        orders_to_redact: [],
      });
      const res = await postDelivery(bridge.url, { topic: "customers/redact", body: redact });
      assert.deepEqual(res.json, { outcome: "redacted" });
      // The checkout is in the store (it went in before the erasure), its buyer is not.
      await waitFor(
        () => query(bridge, `SELECT 1 FROM carts WHERE key = '${TEST_SHOP}:r-late'`).length === 1,
        {
          what: "the checkout applied",
        },
      );
      assert.equal(query(bridge, "SELECT 1 FROM contact_links WHERE email IS NOT NULL").length, 0);
      assert.equal(
        query(bridge, "SELECT 1 FROM cart_deliveries WHERE instr(CAST(body AS TEXT), 'late@example.com') > 0")
          .length,
        0,
      );
      // Nor in the inbox of raw deliveries.
      const inbox = `${join(bridge.dir, "cartbridge.db")}-inbox`;
      for (const name of readdirSync(inbox)) {
        assert.ok(!readFileSync(join(inbox, name)).includes("late@example.com"), `${name} still has it`);
      }
    });
  });

  it("customers/redact erases that customer's pending buyer, dead letters and kept deliveries", async () => {
    // Contacts cannot be sent (no scope), so the buyer stays pending in the store.
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }) }, async (_hs, bridge) => {
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("r-1", { email: "gone@example.com" }),
      });
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("r-2", { email: "stay@example.com" }),
      });
      const broken = checkoutBody("r-3", { email: "gone@example.com" }).replace("{", "{{");
      await postDelivery(bridge.url, { topic: "checkouts/update", body: broken });
      // All three applied (the answers only said they are durable): two buyers, one dead letter.
      await waitFor(
        () =>
          query(bridge, "SELECT 1 FROM contact_links WHERE email IS NOT NULL").length === 2 &&
          query(bridge, "SELECT 1 FROM dead_letters").length === 1,
        { what: "the three deliveries applied" },
      );

      const redact = JSON.stringify({
        shop_id: 1,
        shop_domain: TEST_SHOP,
        customer: { id: 7, email: "Gone@example.com", phone: null },
        orders_to_redact: [],
      });
      const bad = await postDelivery(bridge.url, {
        topic: "customers/redact",
        body: redact,
        secret: "wrong",
      });
      assert.equal(bad.status, 401);
      const res = await postDelivery(bridge.url, { topic: "customers/redact", body: redact });
      assert.deepEqual(res.json, { outcome: "redacted" });
      assert.deepEqual(
        query(bridge, "SELECT email FROM contact_links WHERE email IS NOT NULL").map((r) => r["email"]),
        ["stay@example.com"],
      );
      assert.equal(query(bridge, "SELECT 1 FROM dead_letters").length, 0);
      assert.equal(
        query(bridge, "SELECT 1 FROM cart_deliveries WHERE instr(CAST(body AS TEXT), 'gone@example.com') > 0")
          .length,
        0,
      );

      const request = JSON.stringify({
        shop_domain: TEST_SHOP,
        customer: { email: "stay@example.com" },
        data_request: { id: 9 },
      });
      assert.deepEqual(
        (await postDelivery(bridge.url, { topic: "customers/data_request", body: request })).json,
        { outcome: "acknowledged" },
      );
      const line = bridge.logs.find((l) => l["msg"] === "customer data request received");
      assert.deepEqual((line?.["holds"] as { contacts: number }).contacts, 1);
      assert.doesNotMatch(JSON.stringify(line), /stay@example\.com/);
    });
  });

  it("an erased customer's bytes are gone from the database file and its WAL, not only from its tables", async () => {
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }) }, async (_hs, bridge) => {
      const email = "wipe-me-7f3a@example.com";
      await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("w-1", { email }) });
      await waitFor(() => query(bridge, "SELECT 1 FROM contact_links WHERE email = ?", email).length === 1, {
        what: "the buyer kept",
      });
      const redact = JSON.stringify({
        shop_id: 1,
        shop_domain: TEST_SHOP,
        customer: { email },
        orders_to_redact: [],
      });
      assert.deepEqual((await postDelivery(bridge.url, { topic: "customers/redact", body: redact })).json, {
        outcome: "redacted",
      });
      // Neither the file (rows zeroed, secure_delete) nor the WAL (truncated by the checkpoint thread after
      // the erasure, not only overwritten some day) holds the e-mail any more.
      const holds = (suffix: string): boolean => {
        try {
          return readFileSync(join(bridge.dir, `cartbridge.db${suffix}`)).includes(email);
        } catch {
          return false; // no WAL file at all
        }
      };
      await waitFor(() => !holds("") && !holds("-wal"), {
        what: "the e-mail gone from the file and its WAL",
      });
    });
  });

  it("shop/redact erases everything held for the shop", async () => {
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }) }, async (_hs, bridge) => {
      await cartInEachShop(bridge, "sr-1", "other-1");
      const res = await postDelivery(bridge.url, {
        topic: "shop/redact",
        body: JSON.stringify({ shop_id: 1, shop_domain: TEST_SHOP }),
      });
      assert.deepEqual(res.json, { outcome: "redacted" });
      assert.equal(cartsOf(bridge, TEST_SHOP), 0);
      assert.equal(query(bridge, "SELECT 1 FROM contact_links WHERE shop = ?", TEST_SHOP).length, 0);
      assert.equal(cartsOf(bridge, OTHER_SHOP), 1);
    });
  });
});

describe("an erasure whose signed body does not fit its unsigned headers erases nothing", () => {
  it("a shop/redact for one shop sent under another shop's header, or a customer's request sent as shop/redact, is a dead letter", async () => {
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }) }, async (_hs, bridge) => {
      await cartInEachShop(bridge, "mine-1", "theirs-1");
      // The header (not covered by the HMAC) says `other`; the signed body says TEST_SHOP.
      const swappedShop = await postDelivery(bridge.url, {
        topic: "shop/redact",
        body: JSON.stringify({ shop_id: 1, shop_domain: TEST_SHOP }),
        shop: OTHER_SHOP,
      });
      assert.equal(swappedShop.status, 200);
      // A customers/redact body (signed) sent with the topic header of shop/redact.
      const swappedTopic = await postDelivery(bridge.url, {
        topic: "shop/redact",
        body: JSON.stringify({
          shop_id: 1,
          shop_domain: TEST_SHOP,
          customer: { id: 8, email: "ann@example.com" },
          orders_to_redact: [],
        }),
      });
      assert.equal(swappedTopic.status, 200);
      assert.equal(cartsOf(bridge, TEST_SHOP), 1);
      assert.equal(cartsOf(bridge, OTHER_SHOP), 1);
      const reasons = query(bridge, "SELECT reason FROM dead_letters ORDER BY id").map((r) =>
        String(r["reason"]),
      );
      assert.equal(reasons.length, 2);
      assert.match(
        reasons[0] ?? "",
        /shop\/redact body is for example-shop\.myshopify\.com, its header for other/,
      );
      assert.match(
        reasons[1] ?? "",
        /shop\/redact body has customer, orders_to_redact: it is another topic's/,
      );
    });
  });

  it("Shopify's shop/redact sample, whose body names the {shop} placeholder, erases the header's shop", async () => {
    await withBridge({ setup: (hs) => hs.setScopes({ contacts: false }) }, async (_hs, bridge) => {
      await cartInEachShop(bridge, "mine-2", "theirs-2");
      const sample = loadFixtures().find((f) => f.topic === "shop/redact");
      assert.ok(sample);
      const res = await postDelivery(bridge.url, { topic: "shop/redact", body: sample.body });
      assert.deepEqual(res.json, { outcome: "redacted" });
      assert.equal(cartsOf(bridge, TEST_SHOP), 0);
      assert.equal(cartsOf(bridge, OTHER_SHOP), 1);
    });
  });
});

describe("app/uninstalled", () => {
  it("erases nothing: the shop's pending carts are still sent (SPEC §6)", async () => {
    await withBridge({}, async (hs, bridge) => {
      hs.setScopes({ carts: false }); // HubSpot refuses carts for now: what is posted stays pending
      for (const t of ["u-1", "u-2"])
        await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) });
      const res = await postDelivery(bridge.url, {
        topic: "app/uninstalled",
        body: JSON.stringify({ id: 1, domain: TEST_SHOP, myshopify_domain: TEST_SHOP }),
      });
      assert.equal(res.status, 200);
      assert.equal(
        query(bridge, "SELECT 1 FROM carts WHERE shop = ? AND pending_since IS NOT NULL", TEST_SHOP).length,
        2,
        "both carts still pending after the uninstall",
      );
      assert.equal(hs.carts().size, 0);
      hs.setScopes({ carts: true });
      await waitFor(() => hs.cartByKey(key("u-1")) && hs.cartByKey(key("u-2")), {
        what: "the acknowledged carts in HubSpot",
      });
      assert.ok(bridge.logs.some((l) => l["msg"] === "app uninstalled; pending carts are still sent"));
    });
  });
});

describe("logs", () => {
  it("a full run over every fixture logs no e-mail, name, phone, token or secret above debug", async () => {
    const fixtures = loadFixtures();
    const secrets = new Set<string>([TEST_SECRET, "test-token"]);
    const collect = (value: unknown, keyName = ""): void => {
      if (typeof value === "string") {
        if (/email|phone|first_name|last_name|token|address1|^name$/.test(keyName) && value.length >= 4)
          secrets.add(value);
        return;
      }
      if (Array.isArray(value)) value.forEach((v) => collect(v, keyName));
      else if (value !== null && typeof value === "object")
        for (const [k, v] of Object.entries(value)) collect(v, k);
    };
    for (const f of fixtures) collect(JSON.parse(f.body.toString("utf8")));
    await withBridge({ env: { LOG_LEVEL: "info", ADMIN_TOKEN: "admin-token-xyz" } }, async (hs, bridge) => {
      hs.rejectContactEmail("example@email.com");
      // shop/redact erases the shop: it goes last, after the sync (with app/uninstalled).
      const erasing = (t: string) => t === "shop/redact" || t === "app/uninstalled";
      for (const f of fixtures.filter((x) => !erasing(x.topic)))
        await postDelivery(bridge.url, { topic: f.topic, body: f.body });
      await postDelivery(bridge.url, { topic: "checkouts/update", body: "not json at all" });
      await postDelivery(bridge.url, {
        topic: "checkouts/update",
        body: checkoutBody("x", { email: "leak@example.com" }),
        secret: "bad",
      });
      await waitFor(() => hs.carts().size > 0 && hs.requests.some((r) => r.path.includes("contacts")), {
        what: "a full sync",
      });
      for (const f of fixtures.filter((x) => erasing(x.topic)))
        await postDelivery(bridge.url, { topic: f.topic, body: f.body });
      await waitFor(() => bridge.logs.some((l) => l["msg"] === "shop data erased"), {
        what: "erasure logged",
      });
      secrets.add("admin-token-xyz");
      secrets.add("leak@example.com");
      const text = bridge.logs
        .filter((l) => Number(l["level"]) > 20)
        .map((l) => JSON.stringify(l))
        .join("\n");
      assert.ok(text.length > 0);
      for (const s of secrets) assert.ok(!text.includes(s), `log carries ${s}`);
      assert.doesNotMatch(text, /[\w.+-]+@[\w-]+\.[\w.]+/, "no e-mail address at all");
    });
  });
});
