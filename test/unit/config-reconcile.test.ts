import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { parseArgs } from "../../src/cli-reconcile.ts";

const required = { SHOPIFY_WEBHOOK_SECRETS: "a", HUBSPOT_ACCESS_TOKEN: "pat-123" };

test("reconciliation defaults follow SPEC §2: off without shops, 5-minute passes, 30 days back, 2026-10", () => {
  const r = loadConfig(required).reconcile;
  assert.deepEqual(r.shops, []);
  assert.equal(r.adminTokens.size, 0);
  assert.equal(r.apiVersion, "2026-10");
  assert.equal(r.adminApiUrl, undefined);
  assert.equal(r.intervalMs, 300_000);
  assert.equal(r.lookbackDays, 30);
});

test("shops, legacy tokens and the Admin API override are read", () => {
  const r = loadConfig({
    ...required,
    SHOPIFY_CLIENT_ID: "id",
    SHOPIFY_CLIENT_SECRET: "secret",
    SHOPIFY_SHOPS: " A-Shop.myshopify.com , ,b.myshopify.com",
    SHOPIFY_ADMIN_TOKENS: "c.myshopify.com=shpat_1, D.myshopify.com = shpat_2",
    SHOPIFY_ADMIN_API_URL: "http://127.0.0.1:4001/{shop}/",
    RECONCILE_INTERVAL_MS: "0",
  }).reconcile;
  assert.deepEqual(r.shops, ["a-shop.myshopify.com", "b.myshopify.com"]);
  assert.deepEqual(
    [...r.adminTokens],
    [
      ["c.myshopify.com", "shpat_1"],
      ["d.myshopify.com", "shpat_2"],
    ],
  );
  assert.equal(r.adminApiUrl, "http://127.0.0.1:4001/{shop}");
  assert.equal(r.intervalMs, 0);
});

test("bad reconciliation settings are named without their values", () => {
  try {
    loadConfig({
      ...required,
      SHOPIFY_SHOPS: "a.myshopify.com",
      SHOPIFY_ADMIN_TOKENS: "not-a-pair-shpat_secret",
      SHOPIFY_API_VERSION: "2026-04",
    });
    assert.fail("expected ConfigError");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /SHOPIFY_ADMIN_TOKENS/);
    assert.match(error.message, /SHOPIFY_API_VERSION: must be 2026-07 or later/);
    assert.doesNotMatch(error.message, /shpat_secret/);
  }
  assert.throws(
    () => loadConfig({ ...required, SHOPIFY_SHOPS: "a.myshopify.com" }),
    /SHOPIFY_SHOPS: needs SHOPIFY_CLIENT_ID/,
  );
  assert.throws(() => loadConfig({ ...required, SHOPIFY_SHOPS: "shop.example.com" }), /myshopify\.com/);
});

test("reconcile --since takes days or an ISO date; --shop is lower-cased", () => {
  const now = Date.parse("2026-11-29T00:00:00Z");
  assert.deepEqual(parseArgs(["--since", "30d", "--shop", "A.myshopify.com"], now), {
    sinceMs: Date.parse("2026-10-30T00:00:00Z"),
    shop: "a.myshopify.com",
  });
  assert.deepEqual(parseArgs(["--since", "2026-01-01"], now), { sinceMs: Date.parse("2026-01-01") });
  assert.equal(parseArgs(["--since"], now), "--since needs a value");
  assert.equal(parseArgs(["--frobnicate"], now), "unknown argument --frobnicate");
});

test("one message names every problem: a missing token and shops without client credentials together", () => {
  assert.throws(
    () => loadConfig({ SHOPIFY_WEBHOOK_SECRETS: "a", SHOPIFY_SHOPS: "a.myshopify.com" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.ok(
        error.problems.some((p) => p.startsWith("HUBSPOT_ACCESS_TOKEN")),
        error.message,
      );
      assert.ok(error.problems.includes("SHOPIFY_SHOPS: needs SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET"));
      return true;
    },
  );
});
