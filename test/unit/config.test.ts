import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";

const required = { SHOPIFY_WEBHOOK_SECRETS: "a", HUBSPOT_ACCESS_TOKEN: "pat-123" };

test("defaults follow SPEC §2", () => {
  const c = loadConfig(required);
  assert.equal(c.hubspotBaseUrl, "https://api.hubapi.com");
  assert.equal(c.hubspotCartIdProperty, "shopify_cart_key");
  assert.equal(c.hubspotMaxRequestsPer10s, 100);
  assert.equal(c.databaseUrl, "sqlite:data/cartbridge.db");
  assert.equal(c.port, 3000);
  assert.equal(c.flushIntervalMs, 1000);
  assert.equal(c.logLevel, "info");
  assert.equal(c.adminToken, undefined);
  assert.equal(c.hubspotSyncContacts, true);
  assert.equal(c.hubspotSyncLineItems, true);
  assert.equal(c.hubspotLineItemIdProperty, "shopify_line_item_key");
  assert.equal(c.deliveryRetentionDays, 7);
  assert.equal(c.maxBodyBytes, 2_097_152);
});

test("secrets are split on commas, trimmed, empty entries ignored", () => {
  const c = loadConfig({ ...required, SHOPIFY_WEBHOOK_SECRETS: " one , ,two,, " });
  assert.deepEqual(c.shopifyWebhookSecrets, ["one", "two"]);
});

test("every problem is named at once, without values", () => {
  let error: unknown;
  try {
    loadConfig({
      SHOPIFY_WEBHOOK_SECRETS: " , ",
      PORT: "http",
      HUBSPOT_SYNC_CONTACTS: "maybe",
      HUBSPOT_SYNC_LINE_ITEMS: "yes",
      HUBSPOT_LINE_ITEM_ID_PROPERTY: "Not A Name",
      HUBSPOT_BASE_URL: "not a url",
    });
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError);
  const names = error.problems.map((p) => p.split(":")[0]);
  assert.deepEqual(names.sort(), [
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_BASE_URL",
    "HUBSPOT_LINE_ITEM_ID_PROPERTY",
    "HUBSPOT_SYNC_CONTACTS",
    "HUBSPOT_SYNC_LINE_ITEMS",
    "PORT",
    "SHOPIFY_WEBHOOK_SECRETS",
  ]);
  assert.doesNotMatch(error.message, /maybe|not a url/);
});

test("the process exits 78 with one readable message and no secret", () => {
  const main = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
  const secret = "pat-na1-super-secret-value";
  const result = spawnSync(process.execPath, [main, "serve"], {
    env: {
      PATH: process.env["PATH"] ?? "",
      HUBSPOT_ACCESS_TOKEN: secret,
      PORT: "-1",
      FLUSH_INTERVAL_MS: "soon",
    },
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(result.status, 78, result.stderr);
  assert.match(result.stderr, /SHOPIFY_WEBHOOK_SECRETS/);
  assert.match(result.stderr, /PORT/);
  assert.match(result.stderr, /FLUSH_INTERVAL_MS/);
  assert.doesNotMatch(result.stderr, /super-secret/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
});

test("problems read as sentences: the variable, the entry of a list, the range a number must fall in", () => {
  const problems = (env: Record<string, string>): readonly string[] => {
    try {
      loadConfig({ ...required, ...env });
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.problems;
    }
    return assert.fail("the configuration was accepted");
  };
  assert.deepEqual(problems({ PORT: "70000" }), ["PORT: must be a whole number from 0 to 65535"]);
  assert.deepEqual(problems({ SHOPIFY_SHOPS: "good.myshopify.com,Not A Shop", SHOPIFY_CLIENT_ID: "id" }), [
    "SHOPIFY_SHOPS (entry 2): must list <shop>.myshopify.com domains",
    "SHOPIFY_SHOPS: needs SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET",
    "SHOPIFY_CLIENT_ID, SHOPIFY_CLIENT_SECRET: must be set together (or neither)",
  ]);
});
