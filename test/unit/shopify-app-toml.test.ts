import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "smol-toml";
import { MAPPED_TOPICS } from "../../src/sync/mapping.ts";
import { PRIVACY_TOPICS } from "../../src/sync/privacy.ts";

// The shipped examples/shopify.app.toml parses, and subscribes every topic the bridge handles to its endpoint.

interface AppToml {
  client_id?: unknown;
  name?: unknown;
  application_url?: unknown;
  embedded?: unknown;
  access_scopes?: { scopes?: unknown };
  webhooks?: {
    api_version?: unknown;
    subscriptions?: Array<{ topics?: string[]; compliance_topics?: string[]; uri?: unknown }>;
  };
}

const COMPLIANCE = ["customers/data_request", "customers/redact", "shop/redact"];

test("examples/shopify.app.toml: every topic, the compliance topics, read_orders and a webhook api_version", () => {
  const toml = parse(
    readFileSync(new URL("../../examples/shopify.app.toml", import.meta.url), "utf8"),
  ) as AppToml;
  for (const key of ["client_id", "name", "application_url"] as const)
    assert.equal(typeof toml[key], "string", key);
  assert.equal(typeof toml.embedded, "boolean");
  assert.match(String(toml.access_scopes?.scopes), /(^|,)\s*read_orders\s*(,|$)/);
  assert.match(String(toml.webhooks?.api_version), /^20\d\d-(01|04|07|10)$/);

  const subs = toml.webhooks?.subscriptions ?? [];
  for (const s of subs) assert.match(String(s.uri), /^https:\/\/[^/]+\/webhooks\/shopify$/);
  const topics = subs.flatMap((s) => s.topics ?? []);
  const compliance = subs.flatMap((s) => s.compliance_topics ?? []);
  const appTopics = [...PRIVACY_TOPICS].filter((t) => !COMPLIANCE.includes(t));
  assert.deepEqual([...topics].sort(), [...MAPPED_TOPICS, ...appTopics].sort());
  assert.deepEqual([...compliance].sort(), COMPLIANCE.filter((t) => PRIVACY_TOPICS.has(t)).sort());
  assert.equal(compliance.length, 3);
});
