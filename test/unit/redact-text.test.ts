import assert from "node:assert/strict";
import { test } from "node:test";
import { maskEmails } from "../../src/redact-text.ts";
import { describeDeadLetter } from "../../src/store/store.ts";

test("an operator sees HubSpot's message without the e-mail it quotes", () => {
  assert.equal(
    maskEmails('Property values were not valid: "ann.lee+shop@example.co.uk" is not a valid email address'),
    'Property values were not valid: "•••@•••" is not a valid email address',
  );
  assert.equal(
    maskEmails("Object 1234 not found (cart shop.myshopify.com:abc)"),
    "Object 1234 not found (cart shop.myshopify.com:abc)",
  );
  const described = describeDeadLetter({
    id: 1,
    createdAtMs: 0,
    source: "hubspot",
    topic: "checkouts/update",
    shopDomain: "shop.myshopify.com",
    webhookId: undefined,
    cartKey: "shop.myshopify.com:abc",
    reason: "Email address ann@example.com is invalid",
    category: "VALIDATION_ERROR",
    headers: {},
    body: undefined,
  });
  assert.equal(described["reason"], "Email address •••@••• is invalid");
});
