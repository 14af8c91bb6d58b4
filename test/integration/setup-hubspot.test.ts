import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setupHubSpot, status } from "../../src/cli.ts";
import type { Config } from "../../src/config.ts";
import { keyPropertySpec, notUniqueAdvice, cannotCreateAdvice } from "../../src/hubspot/key-property.ts";
import { withBridge, type TestBridge } from "../helpers/bridge.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * setup-hubspot with today's tokens (reference/hubspot.md §1c, §8): a token that may not create properties
 * (403) gets the exact definition to create by hand; a key property without unique values gets told it
 * cannot be fixed in place and how to pick another name. `status` and /readyz say the same.
 */

async function runSetup(config: Config): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await setupHubSpot(config, (l) => lines.push(l));
  return { code, text: lines.join("\n") };
}

/** `status` on its own store file (the bridge holds its own), talking to the same HubSpot. */
async function runStatus(bridge: TestBridge): Promise<{ code: number; hubspotSetup: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-status-"));
  try {
    const lines: string[] = [];
    const code = await status({ ...bridge.config, databaseUrl: `sqlite:${join(dir, "s.db")}` }, (l) =>
      lines.push(l),
    );
    return { code, hubspotSetup: (JSON.parse(lines.join("\n")) as { hubspotSetup: string[] }).hubspotSetup };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readyReason(bridge: TestBridge): Promise<string> {
  return waitFor(async () => {
    const res = await fetch(`${bridge.url}/readyz`);
    const body = (await res.json()) as { reason?: string };
    return res.status === 503 && body.reason !== undefined && /shopify_cart_key/.test(body.reason)
      ? body.reason
      : undefined;
  });
}

describe("setup-hubspot with today's tokens", () => {
  it("a token that cannot create properties (403): the exact definition to create by hand, exit 1; status and /readyz agree", async () => {
    await withBridge(
      { fake: { withCartKeyProperty: false }, setup: (hs) => hs.setScopes({ schemas: false }) },
      async (hs, bridge) => {
        const { code, text } = await runSetup(bridge.config);
        assert.equal(code, 1, text);
        assert.match(text, /403/);
        assert.match(text, /crm\.schemas\.carts\.write/);
        for (const part of [
          /Settings → Data Management → Properties → Carts → Create property/,
          /group: +cart_information/,
          /label: +Shopify cart key/,
          /internal name: +shopify_cart_key/,
          /field type: +Single-line text \(API: type "string", fieldType "text"\)/,
          /"Require unique values for this property" ON/,
        ])
          assert.match(text, part);
        assert.equal(hs.requests.filter((r) => r.method === "POST").at(-1)?.status, 403, "it did try");

        const reason = await readyReason(bridge);
        assert.match(reason, /does not exist in HubSpot/);
        assert.match(reason, /internal name: +shopify_cart_key/);
        assert.match(reason, /Require unique values/);
        const s = await runStatus(bridge);
        assert.equal(s.code, 0);
        assert.deepEqual(s.hubspotSetup, [reason]);

        // The operator creates it by hand as told: setup confirms, readiness follows.
        hs.addCartProperty({
          name: "shopify_cart_key",
          type: "string",
          fieldType: "text",
          hasUniqueValue: true,
        });
        const again = await runSetup(bridge.config);
        assert.equal(again.code, 0, again.text);
        assert.match(again.text, /exists and is unique: nothing to do/);
        await bridge.service.portal.refresh();
        assert.equal((await fetch(`${bridge.url}/readyz`)).status, 200);
        assert.deepEqual((await runStatus(bridge)).hubspotSetup, []);
      },
    );
  });

  it("a key property without unique values: cannot be fixed in place; another name through HUBSPOT_CART_ID_PROPERTY works", async () => {
    await withBridge(
      {
        fake: { withCartKeyProperty: false },
        setup: (hs) =>
          hs.addCartProperty({ name: "shopify_cart_key", type: "string", hasUniqueValue: false }),
      },
      async (hs, bridge) => {
        const { code, text } = await runSetup(bridge.config);
        assert.equal(code, 1, text);
        assert.match(text, /exists in HubSpot but without unique values/);
        assert.match(text, /HubSpot cannot make an existing property unique/);
        assert.match(text, /HUBSPOT_CART_ID_PROPERTY=shopify_cart_key_unique/);
        assert.equal(
          hs.requests.filter((r) => r.method === "POST").length,
          0,
          "nothing is created or changed",
        );
        const reason = await readyReason(bridge);
        assert.equal(reason, text);
        assert.deepEqual((await runStatus(bridge)).hubspotSetup, [text]);

        const renamed = { ...bridge.config, hubspotCartIdProperty: "shopify_cart_key_unique" };
        const fixed = await runSetup(renamed);
        assert.equal(fixed.code, 0, fixed.text);
        assert.match(
          fixed.text,
          /created unique cart property shopify_cart_key_unique in group cart_information/,
        );
      },
    );
  });

  it("the advice takes the object type and property: line items name their own variable and scope", () => {
    const spec = keyPropertySpec("line_items", "shopify_line_item_key");
    const refused = cannotCreateAdvice(spec);
    assert.match(refused, /crm\.schemas\.line_items\.write/);
    assert.match(refused, /Properties → Line items → Create property/);
    assert.match(refused, /internal name: +shopify_line_item_key/);
    const notUnique = notUniqueAdvice(spec);
    assert.match(notUnique, /HUBSPOT_LINE_ITEM_ID_PROPERTY=shopify_line_item_key_unique/);
    assert.doesNotMatch(notUnique, /HUBSPOT_CART_ID_PROPERTY|cart key/);
    // HubSpot keeps the hs_ prefix for its own properties: the suggested name drops it.
    const builtIn = notUniqueAdvice(keyPropertySpec("carts", "hs_external_cart_id"));
    assert.match(builtIn, /HUBSPOT_CART_ID_PROPERTY=external_cart_id_unique\)/);
    assert.doesNotMatch(builtIn, /=hs_external_cart_id_unique|internal name: +hs_/);
  });
});
