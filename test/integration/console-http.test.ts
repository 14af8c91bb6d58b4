import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MASK } from "../../src/http/console/mask.ts";
import { withBridge, type TestBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * The console's access rules and JSON over real HTTP: sign-in, the session cookie's attributes, CSRF and
 * cross-site refusals, rate-limited wrong tokens, 404 without ADMIN_TOKEN, the CSP, masking, counts.
 */

const TOKEN = "console-admin-token";
const ENV = { ADMIN_TOKEN: TOKEN };

async function signIn(
  bridge: TestBridge,
  headers: Record<string, string> = {},
): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const res = await fetch(`${bridge.url}/admin/session`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ token: TOKEN }),
  });
  assert.equal(res.status, 200);
  const setCookie = res.headers.get("set-cookie") ?? "";
  const body = (await res.json()) as { csrfToken: string };
  return { cookie: setCookie.split(";")[0] ?? "", csrf: body.csrfToken, setCookie };
}

function replay(
  bridge: TestBridge,
  headers: Record<string, string>,
  body: object = { ids: [] },
): Promise<Response> {
  return fetch(`${bridge.url}/admin/dead-letters/replay`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("console access", () => {
  it("answers 404 for the page, its assets and the session when ADMIN_TOKEN is unset", async () => {
    await withBridge({}, async (_hs, bridge) => {
      for (const path of ["/admin/", "/admin/console.js", "/admin/session", "/admin/overview"]) {
        assert.equal((await fetch(`${bridge.url}${path}`)).status, 404, path);
      }
      const login = await fetch(`${bridge.url}/admin/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: "" }),
      });
      assert.equal(login.status, 404);
    });
  });

  it("serves the page under a strict CSP with no inline script or style, and its data only when signed in", async () => {
    await withBridge({ env: ENV }, async (_hs, bridge) => {
      const page = await fetch(`${bridge.url}/admin/`);
      assert.equal(page.status, 200);
      const csp = page.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      const html = await page.text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)/, "no inline script");
      assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, "no inline style or handler");
      assert.doesNotMatch(html, /https?:\/\//, "no external resource");
      assert.equal((await fetch(`${bridge.url}/admin/overview`)).status, 401);
      assert.equal((await fetch(`${bridge.url}/admin/session`)).status, 401);
    });
  });

  it("signs in with the token: an HttpOnly, SameSite=Strict, expiring cookie, Secure only over HTTPS", async () => {
    await withBridge({ env: ENV }, async (_hs, bridge) => {
      const { cookie, setCookie } = await signIn(bridge);
      assert.match(setCookie, /HttpOnly/);
      assert.match(setCookie, /SameSite=Strict/);
      assert.match(setCookie, /Path=\/admin/);
      assert.match(setCookie, /Max-Age=28800/);
      assert.doesNotMatch(setCookie, /Secure/);
      // X-Forwarded-Proto is not trusted unless ADMIN_TRUST_PROXY says a proxy is in front.
      assert.doesNotMatch((await signIn(bridge, { "x-forwarded-proto": "https" })).setCookie, /Secure/);
      const overview = await fetch(`${bridge.url}/admin/overview`, { headers: { cookie } });
      assert.equal(overview.status, 200);
      // A forged cookie (the mac does not match) is not a session.
      const forged = cookie.replace(/\.[^.]+$/, `.${"A".repeat(43)}`);
      assert.equal(
        (await fetch(`${bridge.url}/admin/overview`, { headers: { cookie: forged } })).status,
        401,
      );
      // The bearer API for scripts keeps working.
      const bearer = await fetch(`${bridge.url}/admin/overview`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(bearer.status, 200);
    });
    await withBridge({ env: { ...ENV, ADMIN_TRUST_PROXY: "true" } }, async (_hs, bridge) => {
      assert.match((await signIn(bridge, { "x-forwarded-proto": "https" })).setCookie, /; Secure/);
      assert.doesNotMatch((await signIn(bridge, { "x-forwarded-proto": "http" })).setCookie, /Secure/);
    });
  });

  it("refuses wrong tokens, then rate-limits the client even for the right one", async () => {
    await withBridge({ env: ENV }, async (_hs, bridge) => {
      const attempt = (token: string) =>
        fetch(`${bridge.url}/admin/session`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token }),
        });
      for (let i = 0; i < 5; i++) {
        const res = await attempt(`wrong-${i}`);
        assert.equal(res.status, 401);
        assert.equal(res.headers.get("set-cookie"), null);
      }
      const limited = await attempt(TOKEN);
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers.get("retry-after")) > 0);
    });
  });

  it("a state-changing request needs the CSRF token and must not come from another site", async () => {
    await withBridge({ env: ENV }, async (_hs, bridge) => {
      const { cookie, csrf } = await signIn(bridge);
      assert.equal((await replay(bridge, { cookie })).status, 403, "no CSRF token");
      assert.equal(
        (await replay(bridge, { cookie, "x-csrf-token": "nope" })).status,
        403,
        "wrong CSRF token",
      );
      assert.equal(
        (await replay(bridge, { cookie, "x-csrf-token": csrf, "sec-fetch-site": "cross-site" })).status,
        403,
        "marked cross-site",
      );
      assert.equal(
        (await replay(bridge, { cookie, "x-csrf-token": csrf, origin: "https://evil.example" })).status,
        403,
        "foreign origin",
      );
      const crossSiteLogin = await fetch(`${bridge.url}/admin/session`, {
        method: "POST",
        headers: { "content-type": "application/json", "sec-fetch-site": "cross-site" },
        body: JSON.stringify({ token: TOKEN }),
      });
      assert.equal(crossSiteLogin.status, 403);
      const ok = await replay(bridge, { cookie, "x-csrf-token": csrf, "sec-fetch-site": "same-origin" });
      assert.equal(ok.status, 200);
      const signOut = await fetch(`${bridge.url}/admin/session`, {
        method: "DELETE",
        headers: { cookie, "x-csrf-token": csrf },
      });
      assert.equal(signOut.status, 200);
      assert.match(signOut.headers.get("set-cookie") ?? "", /Max-Age=0/);
    });
  });
});

describe("console data", () => {
  it("counts deliveries per shop and refusals, masks personal data, filters dead letters, looks carts up", async () => {
    await withBridge({ env: ENV }, async (_hs, bridge) => {
      const auth = { authorization: `Bearer ${TOKEN}` };
      const other = "other-shop.myshopify.com";
      assert.equal(
        (await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("t-1") })).status,
        200,
      );
      assert.equal(
        (await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("t-2") })).status,
        200,
      );
      assert.equal(
        (
          await postDelivery(bridge.url, {
            topic: "checkouts/update",
            body: checkoutBody("t-3"),
            shop: other,
          })
        ).status,
        200,
      );
      // An order without a cart or checkout token (unkeyed) and a topic the bridge does not handle still
      // show that their subscriptions deliver.
      for (const [topic, body] of [
        ["orders/create", JSON.stringify({ id: 820982911946154500, cart_token: null, checkout_token: null })],
        ["products/update", JSON.stringify({ id: 632910392, title: "Sock" })],
      ] as const) {
        assert.equal((await postDelivery(bridge.url, { topic, body, shop: other })).status, 200, topic);
      }
      const personal = JSON.stringify({
        token: "broken",
        email: "jane.doe@example.com",
        billing_address: { first_name: "Jane", address1: "1 Secret Lane", phone: "+15550100" },
        // A cart token of an impossible type: the one field whose fault makes the whole delivery a dead letter.
        cart_token: { not: "a token" },
      });
      assert.equal(
        (await postDelivery(bridge.url, { topic: "checkouts/update", body: personal })).status,
        200,
      );
      assert.equal(
        (
          await postDelivery(bridge.url, {
            topic: "checkouts/update",
            body: checkoutBody("x"),
            secret: "wrong",
          })
        ).status,
        401,
      );

      const overview = (await (await fetch(`${bridge.url}/admin/overview`, { headers: auth })).json()) as {
        shops: Array<{
          shopDomain: string;
          deliveriesLastHour: number;
          lastDeliveryByTopic: Record<string, string>;
        }>;
        refusals: { lastHour: number; lastDay: number };
        sender: { state: string; problems: string[]; budget: { maxPer10s: number; inUse: number } };
      };
      assert.deepEqual(
        overview.shops.map((s) => [s.shopDomain, s.deliveriesLastHour]),
        [
          [TEST_SHOP, 3],
          [other, 3],
        ].sort(),
      );
      assert.ok(overview.shops.every((s) => typeof s.lastDeliveryByTopic["checkouts/update"] === "string"));
      assert.deepEqual(
        Object.keys(overview.shops.find((s) => s.shopDomain === other)?.lastDeliveryByTopic ?? {}).sort(),
        ["checkouts/update", "orders/create", "other"],
      );
      assert.deepEqual(overview.refusals, { ...overview.refusals, lastHour: 1, lastDay: 1 });
      assert.equal(overview.sender.state, "running");
      // Nothing stops part of the sending (once the portal's line item properties are read at start-up).
      await waitFor(
        async () =>
          (
            (await (await fetch(`${bridge.url}/admin/overview`, { headers: auth })).json()) as {
              sender: { problems: string[] };
            }
          ).sender.problems.length === 0,
        { what: "no sending problem" },
      );
      assert.equal(overview.sender.budget.maxPer10s, bridge.config.hubspotMaxRequestsPer10s);

      const list = (await (
        await fetch(`${bridge.url}/admin/dead-letters?shop=${TEST_SHOP}&reason=UNMAPPABLE`, { headers: auth })
      ).json()) as { deadLetters: Array<{ id: number }>; total: number };
      assert.equal(list.total, 1);
      const none = (await (
        await fetch(`${bridge.url}/admin/dead-letters?shop=${other}`, { headers: auth })
      ).json()) as {
        total: number;
      };
      assert.equal(none.total, 0);
      const detail = await fetch(`${bridge.url}/admin/dead-letters/${list.deadLetters[0]?.id}`, {
        headers: auth,
      });
      const text = await detail.text();
      for (const secret of ["jane.doe", "Jane", "Secret Lane", "5550100"])
        assert.ok(!text.includes(secret), secret);
      const shown = JSON.parse(text) as {
        body: { email: string; billing_address: { address1: string } };
        reason: string;
      };
      assert.equal(shown.body.email, MASK);
      assert.equal(shown.body.billing_address.address1, MASK);
      assert.match(shown.reason, /cart_token/);
      assert.equal((await fetch(`${bridge.url}/admin/dead-letters/999999`, { headers: auth })).status, 404);

      const lookup = async (q: string) =>
        (await (
          await fetch(`${bridge.url}/admin/carts?q=${encodeURIComponent(q)}`, { headers: auth })
        ).json()) as {
          carts: Array<{
            key: string;
            pending: boolean;
            properties: Array<{ name: string; value: string; eventTime: string }>;
          }>;
        };
      const byToken = await lookup("t-3");
      assert.deepEqual(
        byToken.carts.map((c) => c.key),
        [`${other}:t-3`],
      );
      const total = byToken.carts[0]?.properties.find((p) => p.name === "hs_total_price");
      assert.deepEqual(total, { ...total, value: "10.00", eventTime: "2026-11-01T10:00:00.000Z" });
      await waitFor(async () => (await lookup(`${TEST_SHOP}:t-1`)).carts[0]?.pending === false, {
        what: "the cart sent and no longer pending",
      });
      assert.equal((await fetch(`${bridge.url}/admin/carts?q=`, { headers: auth })).status, 400);
    });
  });

  it("the sender says when carts flow but line items are refused (a token without their scopes)", async () => {
    await withBridge({ env: ENV, setup: (hs) => hs.setScopes({ lineItems: false }) }, async (hs, bridge) => {
      const auth = { authorization: `Bearer ${TOKEN}` };
      const res = await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("li-403") });
      assert.equal(res.status, 200);
      const sender = async () =>
        (
          (await (await fetch(`${bridge.url}/admin/overview`, { headers: auth })).json()) as {
            sender: { state: string; problems: string[] };
          }
        ).sender;
      const seen = await waitFor(
        async () => {
          const s = await sender();
          return s.problems.some((p) => /403/.test(p)) ? s : undefined;
        },
        { what: "the line items' refusal in the console's sender" },
      );
      assert.equal(seen.state, "running", "carts still go out");
      assert.equal(seen.problems.length, 1);
      assert.match(seen.problems[0] ?? "", /line item.*\(403\).*crm\.objects\.line_items/);
      await waitFor(() => hs.cartByKey(`${TEST_SHOP}:li-403`), { what: "the cart in HubSpot all the same" });
    });
  });
});
