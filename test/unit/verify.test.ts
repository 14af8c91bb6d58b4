import assert from "node:assert/strict";
import { test } from "node:test";
import "@shopify/shopify-api/adapters/node";
import { ApiVersion, LogSeverity, shopifyApi } from "@shopify/shopify-api";
import { signShopifyBody, verifyShopifyHmac } from "../../src/shopify/verify.ts";
import { loadFixtures } from "../helpers/shopify.ts";

// @shopify/shopify-api is the oracle: our verdict must equal its webhooks.validate verdict.
const SECRET = "shpss_oracle_secret";
const shopify = shopifyApi({
  apiSecretKey: SECRET,
  apiKey: "oracle",
  hostName: "localhost",
  apiVersion: ApiVersion.April26,
  isEmbeddedApp: false,
  logger: { level: LogSeverity.Error, log: async () => {} },
});

async function libraryVerdict(body: Buffer, hmac: string | undefined): Promise<boolean> {
  const headers: Record<string, string> = {
    "x-shopify-topic": "carts/create",
    "x-shopify-shop-domain": "oracle.myshopify.com",
    "x-shopify-api-version": "2026-04",
    "x-shopify-webhook-id": "oracle-1",
  };
  if (hmac !== undefined) headers["x-shopify-hmac-sha256"] = hmac;
  const result = await shopify.webhooks.validate({
    rawBody: body.toString("utf8"),
    rawRequest: { headers, method: "POST", url: "/webhooks/shopify" } as never,
    rawResponse: {} as never,
  });
  return result.valid;
}

const variants: Array<{ name: string; make: (body: Buffer) => { body: Buffer; hmac: string | undefined } }> =
  [
    { name: "genuine", make: (body) => ({ body, hmac: signShopifyBody(body, SECRET) }) },
    { name: "wrong secret", make: (body) => ({ body, hmac: signShopifyBody(body, "another-secret") }) },
    {
      name: "one flipped byte",
      make: (body) => {
        const flipped = Buffer.from(body);
        const i = Math.floor(flipped.length / 2);
        flipped[i] = (flipped[i] ?? 0) ^ 0x01;
        return { body: flipped, hmac: signShopifyBody(body, SECRET) };
      },
    },
    {
      name: "truncated header",
      make: (body) => ({ body, hmac: signShopifyBody(body, SECRET).slice(0, 20) }),
    },
    // The same 32 bytes written other ways than the one base64 string Shopify sends: the library compares
    // that string, so none of them is genuine.
    { name: "without padding", make: (body) => ({ body, hmac: signShopifyBody(body, SECRET).slice(0, -1) }) },
    { name: "extra padding", make: (body) => ({ body, hmac: `${signShopifyBody(body, SECRET)}=` }) },
    {
      name: "non-canonical last character",
      make: (body) => {
        const hmac = signShopifyBody(body, SECRET);
        const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        // The 43rd character carries 4 bits of the last byte and 2 unused ones: set an unused bit.
        const last = alphabet[alphabet.indexOf(hmac.charAt(42)) | 1] ?? "B";
        return { body, hmac: `${hmac.slice(0, 42)}${last}=` };
      },
    },
    { name: "missing header", make: (body) => ({ body, hmac: undefined }) },
    { name: "empty header", make: (body) => ({ body, hmac: "" }) },
  ];

for (const fixture of loadFixtures()) {
  test(`verdict equals @shopify/shopify-api's on ${fixture.file}`, async () => {
    for (const variant of variants) {
      const { body, hmac } = variant.make(fixture.body);
      const ours = verifyShopifyHmac(body, hmac, [SECRET]).valid;
      const theirs = await libraryVerdict(body, hmac);
      assert.equal(ours, theirs, `${variant.name}: ours ${ours}, library ${theirs}`);
      assert.equal(ours, variant.name === "genuine", variant.name);
    }
  });
}

test("any configured secret verifies (rotation, admin-created webhooks)", () => {
  const body = Buffer.from('{"token":"abc"}');
  const hmac = signShopifyBody(body, "new-secret");
  assert.deepEqual(verifyShopifyHmac(body, hmac, ["old-secret", "new-secret"]), { valid: true });
  assert.deepEqual(verifyShopifyHmac(body, hmac, ["old-secret"]), { valid: false, reason: "mismatch" });
});

test("a header that is not base64 of 32 bytes is malformed, not a mismatch", () => {
  const body = Buffer.from("{}");
  assert.deepEqual(verifyShopifyHmac(body, "not base64!!", ["s"]), {
    valid: false,
    reason: "malformed_hmac",
  });
  assert.deepEqual(verifyShopifyHmac(body, Buffer.alloc(31).toString("base64"), ["s"]), {
    valid: false,
    reason: "malformed_hmac",
  });
  assert.deepEqual(verifyShopifyHmac(body, undefined, ["s"]), { valid: false, reason: "missing_hmac" });
});
