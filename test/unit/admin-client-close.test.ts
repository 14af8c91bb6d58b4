import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createShopifyAdmin } from "../../src/shopify/admin-client.ts";

test("close() aborts an Admin API request in flight: shutdown never waits for a Shopify that does not answer", async () => {
  let arrived = 0;
  // An Admin API that reads the request and never answers.
  const server = createServer((req) => {
    arrived += 1;
    req.resume();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/{shop}`;
  const shop = "slow.myshopify.com";
  const admin = createShopifyAdmin({
    apiVersion: "2026-10",
    adminApiUrl: url,
    shops: [],
    adminTokens: new Map([[shop, "shpat_test"]]),
    clientId: undefined,
    clientSecret: undefined,
    timeoutMs: 600_000,
  });
  try {
    const answer = admin.query(shop, "query { shop { name } }", {});
    while (arrived === 0) await new Promise((r) => setTimeout(r, 10));
    admin.close();
    const outcome = await Promise.race([
      answer,
      new Promise<"still waiting">((r) => setTimeout(() => r("still waiting"), 20_000).unref()),
    ]);
    assert.notEqual(outcome, "still waiting");
    assert.equal(typeof outcome === "object" ? outcome.kind : outcome, "failed");
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
