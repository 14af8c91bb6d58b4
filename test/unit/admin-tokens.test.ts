import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createAdminTokenSource } from "../../src/shopify/admin-tokens.ts";

/** A token endpoint answering the statuses given, one per request, then a token. */
async function tokenEndpoint(answers: Array<{ status: number; body: object }>) {
  const server = createServer((req, res) => {
    req.resume();
    const next = answers.shift() ?? { status: 200, body: { access_token: "shpat_ok", expires_in: 86399 } };
    res.writeHead(next.status, { "content-type": "application/json" }).end(JSON.stringify(next.body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test("the client credentials grant: 5xx and 429 are unavailable (retried), a refusal pauses, then a token", async () => {
  const { server, url } = await tokenEndpoint([
    { status: 503, body: { error: "service_unavailable" } },
    { status: 429, body: {} },
    { status: 400, body: { error: "shop_not_permitted", error_description: "not in the organization" } },
  ]);
  try {
    const tokens = createAdminTokenSource({
      staticTokens: new Map(),
      clientCredentials: { clientId: "id", clientSecret: "secret" },
      baseUrlOf: () => url,
    });
    const shop = "a.myshopify.com";
    assert.equal((await tokens.get(shop, Date.now())).kind, "unavailable");
    assert.equal((await tokens.get(shop, Date.now())).kind, "unavailable");
    const refused = await tokens.get(shop, Date.now());
    assert.deepEqual(refused, {
      kind: "refused",
      reason: "token grant refused (shop_not_permitted: not in the organization)",
    });
    assert.deepEqual(await tokens.get(shop, Date.now()), { kind: "token", token: "shpat_ok" });
  } finally {
    server.close();
  }
});
