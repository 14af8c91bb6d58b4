import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setupHubSpot } from "../../src/cli.ts";
import { loadConfig } from "../../src/config.ts";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";
import { TEST_SECRET } from "../helpers/shopify.ts";

function config(url: string, env: Record<string, string> = {}) {
  return loadConfig({
    SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
    HUBSPOT_ACCESS_TOKEN: "test-token",
    HUBSPOT_BASE_URL: url,
    HUBSPOT_API_VERSION: testHubSpotApiVersion(),
    ...env,
  });
}

describe("setup-hubspot and line items", () => {
  it("creates the unique line item key property once (text, unique), then has nothing to do", async () => {
    const hs = await startFakeHubSpot({ withCartKeyProperty: false, withLineItemKeyProperty: false });
    try {
      const lines: string[] = [];
      assert.equal(await setupHubSpot(config(hs.url), (l) => lines.push(l)), 0);
      assert.match(lines.join("\n"), /created unique line item property shopify_line_item_key/);
      const created = hs.requests.find(
        (r) => r.method === "POST" && r.path.includes("/properties/") && r.path.endsWith("/line_items"),
      );
      assert.deepEqual(
        {
          ...(created?.body as Record<string, unknown>),
          description: undefined,
          label: undefined,
        },
        {
          name: "shopify_line_item_key",
          type: "string",
          fieldType: "text",
          groupName: "lineiteminformation",
          hasUniqueValue: true,
          description: undefined,
          label: undefined,
        },
      );
      lines.length = 0;
      assert.equal(await setupHubSpot(config(hs.url), (l) => lines.push(l)), 0);
      assert.match(lines.join("\n"), /line item property shopify_line_item_key exists and is unique/);
    } finally {
      await hs.close();
    }
  });

  it("a token without line item scopes, or a non-unique property of that name: exit 1 saying what to do", async () => {
    const hs = await startFakeHubSpot();
    try {
      hs.setScopes({ lineItems: false });
      const lines: string[] = [];
      assert.equal(await setupHubSpot(config(hs.url), (l) => lines.push(l)), 1);
      assert.match(lines.join("\n"), /crm\.schemas\.line_items\.write/);
      hs.setScopes({ lineItems: true });
      hs.addLineItemProperty({ name: "plain_key", type: "string", groupName: "lineiteminformation" });
      lines.length = 0;
      const env = { HUBSPOT_LINE_ITEM_ID_PROPERTY: "plain_key" };
      assert.equal(await setupHubSpot(config(hs.url, env), (l) => lines.push(l)), 1);
      assert.match(
        lines.join("\n"),
        /line item property plain_key exists in HubSpot but without unique values/,
      );
      lines.length = 0;
      const off = { ...env, HUBSPOT_SYNC_LINE_ITEMS: "false" };
      assert.equal(
        await setupHubSpot(config(hs.url, off), (l) => lines.push(l)),
        0,
        "line items off: not checked",
      );
      assert.doesNotMatch(lines.join("\n"), /line item/);
    } finally {
      await hs.close();
    }
  });
});
