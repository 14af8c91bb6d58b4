import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { setupHubSpot } from "../../src/cli.ts";
import {
  dailyLimitFault,
  defaultCartProperties,
  maxRequestsInAnyWindow,
  startFakeHubSpot,
  type FakeHubSpot,
} from "../fakes/hubspot-server.ts";
import { startTestBridge, withBridge, type TestBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const key = (token: string) => `${TEST_SHOP}:${token}`;
const upserts = (hs: FakeHubSpot) => hs.requests.filter((r) => r.path.endsWith("/carts/batch/upsert"));
type Inputs = { inputs: Array<{ id: string }> };

async function sendCheckouts(
  bridge: TestBridge,
  prefix: string,
  count: number,
  total = "10.00",
): Promise<string[]> {
  const tokens = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  for (const t of tokens) {
    const res = await postDelivery(bridge.url, {
      topic: "checkouts/update",
      body: checkoutBody(t, { total }),
    });
    assert.equal(res.status, 200);
  }
  return tokens;
}

const allLanded =
  (hs: FakeHubSpot, tokens: string[], total = "10.00") =>
  () =>
    tokens.every((t) => hs.cartByKey(key(t))?.properties["hs_total_price"] === total);

function assertCleanRequests(hs: FakeHubSpot): void {
  for (const r of upserts(hs)) {
    const inputs = (r.body as Inputs | undefined)?.inputs ?? [];
    assert.ok(inputs.length <= 100, "≤ 100 inputs");
    assert.equal(new Set(inputs.map((i) => i.id)).size, inputs.length, "no repeated id");
  }
}

/** The bridge's SQLite rows for these carts: what the store really keeps about their attempts. */
function cartRows(bridge: TestBridge, tokens: readonly string[]): Array<Record<string, unknown>> {
  const db = new DatabaseSync(join(bridge.dir, "cartbridge.db"), { readOnly: true });
  try {
    const select = db.prepare(
      "SELECT attempts, next_attempt_at, last_error, pending_since FROM carts WHERE key = ?",
    );
    return tokens.flatMap((t) => {
      const row = select.get(key(t));
      return row === undefined ? [] : [row];
    });
  } finally {
    db.close();
  }
}

async function readyz(bridge: TestBridge): Promise<{ status: number; body: { reason?: string } }> {
  const res = await fetch(`${bridge.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { reason?: string } };
}

describe("sender failure classes (fake HubSpot on a real port)", () => {
  it("429 TEN_SECONDLY_ROLLING: pauses for Retry-After, then every cart lands", async () => {
    // Carts alone: the one wait the metrics count is the cart sender's.
    const env = { HUBSPOT_SYNC_CONTACTS: "false", HUBSPOT_SYNC_LINE_ITEMS: "false" };
    await withBridge({ env }, async (hs, bridge) => {
      hs.failNext(
        {
          status: 429,
          headers: { "retry-after": "1" },
          body: {
            status: "error",
            message: "You have reached your ten_secondly_rolling limit.",
            errorType: "RATE_LIMIT",
            policyName: "TEN_SECONDLY_ROLLING",
          },
        },
        { path: "/batch/upsert" },
      );
      const tokens = await sendCheckouts(bridge, "rl", 5);
      await waitFor(allLanded(hs, tokens), { what: "carts after a 429" });
      const [limited, next] = upserts(hs);
      assert.equal(limited?.status, 429);
      assert.ok(
        next && next.atMs - limited.atMs >= 950,
        `retried ${next ? next.atMs - limited.atMs : "?"} ms after the 429`,
      );
      assertCleanRequests(hs);
      const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
      assert.match(metrics, /hubspot_requests_total\{operation="carts_upsert",status="429"\} 1/);
      // One 429 is one wait of about its Retry-After, counted once.
      assert.match(metrics, /hubspot_rate_limit_waits_total 1\n/);
      const seconds = Number(/hubspot_rate_limit_wait_seconds_total ([\d.]+)/.exec(metrics)?.[1]);
      assert.ok(seconds > 0 && seconds <= 1.05, `waited ${seconds} s in all`);
    });
  });

  it("429 DAILY: sending pauses, /readyz and metrics say so, and it resumes when the budget returns", async () => {
    await withBridge({}, async (hs, bridge) => {
      hs.failNext(dailyLimitFault(), { path: "/batch/upsert" });
      const tokens = await sendCheckouts(bridge, "daily", 3);
      const paused = await waitFor(async () => {
        const r = await readyz(bridge);
        return r.status === 503 ? r : undefined;
      });
      assert.match(paused.body.reason ?? "", /daily/i);
      assert.match(
        await (await fetch(`${bridge.url}/metrics`)).text(),
        /hubspot_sender_paused\{cause="daily_limit"\} 1/,
      );
      await waitFor(allLanded(hs, tokens), { what: "carts after the daily pause" });
      await waitFor(async () => (await readyz(bridge)).status === 200, { what: "ready again" });
    });
  });

  for (const fault of [
    { name: "500", fault: { status: 500, body: { status: "error", message: "internal" } } },
    { name: "502", fault: { status: 502, body: "<html>bad gateway</html>" } },
    { name: "connection reset", fault: { status: 0, destroySocket: true } },
    { name: "no answer (timeout)", fault: { status: 0, hang: true } },
  ]) {
    it(`${fault.name}: retried with backoff, attempts kept in the store, every cart lands once`, async () => {
      await withBridge({}, async (hs, bridge) => {
        hs.failNext(fault.fault, { path: "/batch/upsert", times: 1000 });
        const tokens = await sendCheckouts(bridge, `f${fault.name.replace(/\W/g, "")}`, 4);
        // The store counts the failed attempts (and keeps the reason) for every cart, nothing is written.
        const failing = await waitFor(
          () => {
            const rows = cartRows(bridge, tokens);
            return rows.length === 4 && rows.every((r) => Number(r["attempts"]) >= 2) ? rows : undefined;
          },
          { what: `two attempts per cart in the store after ${fault.name}`, timeoutMs: 15_000 },
        );
        for (const row of failing) {
          assert.notEqual(row["pending_since"], null, "still pending");
          assert.ok(Number(row["next_attempt_at"]) > 0, "a next attempt time");
          assert.match(String(row["last_error"]), /./);
        }
        assert.equal(tokens.filter((t) => hs.cartByKey(key(t))).length, 0, "nothing landed while failing");
        hs.clearFaults();
        await waitFor(allLanded(hs, tokens), { what: `carts after ${fault.name}`, timeoutMs: 15_000 });
        // Each cart landed exactly once (one write in HubSpot), and the store settled it.
        assert.deepEqual(
          tokens.map((t) => hs.cartByKey(key(t))?.writes),
          [1, 1, 1, 1],
        );
        await waitFor(
          () =>
            cartRows(bridge, tokens).every((r) => r["pending_since"] === null && Number(r["attempts"]) === 0),
          { what: "carts settled in the store" },
        );
        assertCleanRequests(hs);
        assert.ok(bridge.logs.some((l) => l["msg"] === "batch failed; will retry"));
      });
    });
  }

  // Only 400 (and 413) blame an input (hubspot.md §2: "400 validation"); these blame the request or the
  // portal's setup, so the carts are retried, never dead-lettered.
  for (const refusal of [
    {
      status: 404,
      body: {
        status: "error",
        message: "Unable to infer object type from: carts",
        category: "OBJECT_NOT_FOUND",
      },
    },
    { status: 405, body: "" },
    { status: 409, body: { status: "error", message: "Conflicting concurrent write", category: "CONFLICT" } },
    {
      status: 415,
      body: { status: "error", message: "HTTP 415 Unsupported Media Type", category: "VALIDATION_ERROR" },
    },
  ]) {
    it(`${refusal.status}: not the carts' fault — retried with backoff, logged, counted, nothing dead-lettered`, async () => {
      await withBridge({}, async (hs, bridge) => {
        hs.failNext(refusal, { path: "/batch/upsert", times: 2 });
        const tokens = await sendCheckouts(bridge, `refused${refusal.status}`, 3);
        await waitFor(allLanded(hs, tokens), { what: `carts after ${refusal.status}`, timeoutMs: 15_000 });
        assert.equal(
          (await bridge.service.store.stats(Date.now())).deadLetters,
          0,
          "no good cart dead-lettered",
        );
        const statuses = upserts(hs).map((r) => r.status);
        assert.deepEqual(statuses.slice(0, 2), [refusal.status, refusal.status]);
        assert.ok(
          statuses.slice(2).every((st) => st === 200),
          `then only successes: ${statuses.join(",")}`,
        );
        const logged = bridge.logs.find((l) =>
          l["msg"]?.toString().startsWith("HubSpot refused the request"),
        );
        assert.equal(logged?.["status"], refusal.status);
        assert.equal(logged?.["level"], 50);
        assert.match(
          await (await fetch(`${bridge.url}/metrics`)).text(),
          new RegExp(`hubspot_requests_total\\{operation="carts_upsert",status="${refusal.status}"\\} 2`),
        );
      });
    });
  }

  it("423 Locked: waits at least 2 s before retrying", async () => {
    await withBridge({}, async (hs, bridge) => {
      hs.failNext({ status: 423, body: { status: "error", message: "locked" } }, { path: "/batch/upsert" });
      const tokens = await sendCheckouts(bridge, "locked", 2);
      await waitFor(allLanded(hs, tokens), { what: "carts after 423", timeoutMs: 15_000 });
      const [locked, next] = upserts(hs);
      assert.equal(locked?.status, 423);
      assert.ok(
        next && next.atMs - locked.atMs >= 1990,
        `retried after ${next ? next.atMs - locked.atMs : "?"} ms`,
      );
    });
  });

  for (const status of [401, 403] as const) {
    it(`${status}: sending stops, /readyz says why, nothing is dropped, and it resumes when fixed`, async () => {
      await withBridge({}, async (hs, bridge) => {
        await waitFor(async () => (await readyz(bridge)).status === 200, { what: "ready" });
        if (status === 401) hs.setAccessToken("rotated-token");
        else
          hs.failNext(
            {
              status: 403,
              body: {
                status: "error",
                message: "This app hasn't been granted all required scopes",
                category: "MISSING_SCOPES",
              },
            },
            { path: "/batch/upsert", times: 3 },
          );
        const tokens = await sendCheckouts(bridge, `auth${status}`, 3);
        const r = await waitFor(
          async () => {
            const x = await readyz(bridge);
            return x.status === 503 ? x : undefined;
          },
          { what: "not ready" },
        );
        assert.match(
          r.body.reason ?? "",
          status === 401 ? /token|refused|authentication/i : /scope|refused/i,
        );
        assert.equal((await bridge.service.store.stats(Date.now())).pendingCarts, 3);
        if (status === 401) hs.setAccessToken("test-token");
        await waitFor(allLanded(hs, tokens), { what: "carts after the token was fixed", timeoutMs: 15_000 });
        await waitFor(async () => (await readyz(bridge)).status === 200, { what: "ready again" });
      });
    });
  }
});

describe("bad inputs never block good ones", () => {
  it("207 per-input errors: the bad cart becomes a dead letter with HubSpot's message, the rest are written, replay writes it once fixed", async () => {
    await withBridge({ env: { ADMIN_TOKEN: "adm" } }, async (hs, bridge) => {
      hs.rejectCartId(key("bad-1"), "Property values were not valid: bad-1 is cursed");
      const tokens = await sendCheckouts(bridge, "good", 6);
      await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("bad-1") });
      await waitFor(allLanded(hs, tokens), { what: "good carts" });
      const letters = await waitFor(async () => {
        const l = await bridge.service.store.listDeadLetters({ limit: 10 });
        return l.length > 0 ? l : undefined;
      });
      assert.equal(letters.length, 1);
      assert.equal(letters[0]?.source, "hubspot");
      assert.equal(letters[0]?.cartKey, key("bad-1"));
      assert.match(letters[0]?.reason ?? "", /cursed/);
      assert.equal(letters[0]?.category, "VALIDATION_ERROR");
      assert.ok((letters[0]?.body?.length ?? 0) > 0, "the original delivery is kept");
      assert.equal(hs.cartByKey(key("bad-1")), undefined);
      await waitFor(async () => (await bridge.service.store.stats(Date.now())).pendingCarts === 0, {
        what: "the bad cart does not stay pending",
      });

      hs.acceptCartId(key("bad-1"));
      const res = await fetch(`${bridge.url}/admin/dead-letters/replay`, {
        method: "POST",
        headers: { authorization: "Bearer adm", "content-type": "application/json" },
        body: JSON.stringify({ ids: [letters[0]?.id] }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(
        ((await res.json()) as { results: Array<{ outcome: string }> }).results.map((r) => r.outcome),
        ["replayed"],
      );
      await waitFor(() => hs.cartByKey(key("bad-1"))?.properties["hs_total_price"] === "10.00", {
        what: "replayed cart",
      });
      assert.equal((await bridge.service.store.stats(Date.now())).deadLetters, 0);
    });
  });

  it("a whole-batch 400 is narrowed down to the input at fault", async () => {
    await withBridge({ env: { FLUSH_INTERVAL_MS: "300" } }, async (hs, bridge) => {
      hs.setPartialUpserts(false);
      hs.rejectCartId(key("narrow-bad"), "Invalid input for narrow-bad");
      const good = Array.from({ length: 15 }, (_, i) => `narrow-${i}`);
      await Promise.all(
        [...good, "narrow-bad"].map((t) =>
          postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) }),
        ),
      );
      await waitFor(allLanded(hs, good), { what: "good carts despite the whole-batch 400" });
      const letters = await waitFor(async () => {
        const l = await bridge.service.store.listDeadLetters({ limit: 10 });
        return l.length > 0 ? l : undefined;
      });
      assert.deepEqual(
        letters.map((l) => l.cartKey),
        [key("narrow-bad")],
      );
      assert.match(letters[0]?.reason ?? "", /narrow-bad/);
      assert.ok(upserts(hs).some((r) => r.status === 400));
      assertCleanRequests(hs);
    });
  });
});

describe("a 400 that blames the id property", () => {
  it("dead-letters nothing: the carts wait and land once HubSpot accepts them", async () => {
    await withBridge({}, async (hs, bridge) => {
      hs.failNext(
        {
          status: 400,
          body: {
            status: "error",
            category: "VALIDATION_ERROR",
            message: "Unable to perform update/upsert by non-unique 0-142 property shopify_cart_key",
          },
        },
        { path: "/batch/upsert", times: 3 },
      );
      const tokens = await sendCheckouts(bridge, "nonunique", 4);
      await waitFor(allLanded(hs, tokens), {
        what: "carts after the setup problem passed",
        timeoutMs: 15_000,
      });
      assert.equal(
        (await bridge.service.store.stats(Date.now())).deadLetters,
        0,
        "no good cart dead-lettered",
      );
      assert.equal(upserts(hs).filter((r) => r.status === 400).length, 3, "not narrowed into more requests");
    });
  });
});

describe("rate budget", () => {
  it("never exceeds the budget in any 10 s window, tightened by HubSpot's headers", async () => {
    // Configured for 100, but HubSpot says 4: the bridge follows the headers, so no 429 and ≤ 4 per window.
    await withBridge(
      {
        fake: { maxRequestsPer10s: 4 },
        env: { HUBSPOT_MAX_REQUESTS_PER_10S: "100", FLUSH_INTERVAL_MS: "50" },
      },
      async (hs, bridge) => {
        const tokens: string[] = [];
        for (let round = 0; round < 6; round++) {
          tokens.push(...(await sendCheckouts(bridge, `budget-${round}`, 2)));
          await new Promise((r) => setTimeout(r, 120)); // separate flushes: one request each
        }
        await waitFor(allLanded(hs, tokens), { what: "all carts within the budget", timeoutMs: 25_000 });
        assert.equal(hs.requests.filter((r) => r.status === 429).length, 0, "no 429");
        assert.ok(
          maxRequestsInAnyWindow(hs.requests) <= 4,
          `max ${maxRequestsInAnyWindow(hs.requests)} in a window`,
        );
      },
    );
  });
});

describe("restart mid-backoff", () => {
  it("resumes from the attempts kept in the store without losing or duplicating carts", async () => {
    const hs = await startFakeHubSpot();
    hs.failNext({ status: 503, body: "unavailable" }, { path: "/batch/upsert", times: 3 });
    const first = await startTestBridge({ hubspotUrl: hs.url });
    const tokens = await sendCheckouts(first, "mid", 5);
    await waitFor(() => upserts(hs).filter((r) => r.status === 503).length >= 2, {
      what: "two failed attempts",
    });
    await first.stop({ keepDir: true, drainMs: 100 });
    const second = await startTestBridge({ hubspotUrl: hs.url, dir: first.dir });
    try {
      await waitFor(allLanded(hs, tokens), { what: "carts after restart", timeoutMs: 15_000 });
      assert.equal(hs.carts().size, 5, "one HubSpot cart per Shopify cart");
      assertCleanRequests(hs);
      await waitFor(async () => (await second.service.store.stats(Date.now())).pendingCarts === 0, {
        what: "nothing pending",
      });
    } finally {
      await second.stop();
      await hs.close();
    }
  });
});

describe("portal properties", () => {
  it("values the portal would reject are left out and logged once; the cart still lands", async () => {
    const props = defaultCartProperties()
      .filter((p) => p.name !== "hs_tax")
      .map((p) => (p.name === "hs_currency_code" ? { ...p, options: [{ value: "EUR", label: "Euro" }] } : p));
    await withBridge({ fake: { cartProperties: props } }, async (hs, bridge) => {
      const tokens = await sendCheckouts(bridge, "portal", 3);
      await waitFor(allLanded(hs, tokens), { what: "carts without hs_tax and USD" });
      const cart = hs.cartByKey(key("portal-0"));
      assert.equal(cart?.properties["hs_tax"], undefined);
      assert.equal(cart?.properties["hs_currency_code"], undefined);
      const warnings = bridge.logs.filter((l) => l["msg"] === "property value left out");
      assert.deepEqual(warnings.map((w) => `${String(w["property"])}:${String(w["reason"])}`).sort(), [
        "hs_currency_code:option_not_offered",
        "hs_tax:unknown_property",
      ]);
      assert.match(
        await (await fetch(`${bridge.url}/metrics`)).text(),
        /hubspot_property_values_dropped_total\{property="hs_tax",reason="unknown_property"\} 3/,
      );
    });
  });

  it("a missing cart key property makes /readyz 503 until setup-hubspot creates it; then carts flow", async () => {
    await withBridge({ fake: { withCartKeyProperty: false } }, async (hs, bridge) => {
      const tokens = await sendCheckouts(bridge, "setup", 2);
      const r = await waitFor(
        async () => {
          const x = await readyz(bridge);
          return x.status === 503 && /setup-hubspot/.test(x.body.reason ?? "") ? x : undefined;
        },
        { what: "readiness naming setup-hubspot" },
      );
      assert.match(r.body.reason ?? "", /shopify_cart_key/);
      assert.equal(upserts(hs).length, 0, "nothing sent without the property");
      const lines: string[] = [];
      assert.equal(await setupHubSpot(bridge.config, (l) => lines.push(l)), 0, lines.join("\n"));
      assert.equal(await setupHubSpot(bridge.config, (l) => lines.push(l)), 0, "idempotent");
      assert.match(lines.join("\n"), /nothing to do/);
      await waitFor(allLanded(hs, tokens), { what: "carts after setup", timeoutMs: 15_000 });
      await waitFor(async () => (await readyz(bridge)).status === 200, { what: "ready" });
    });
  });
});
