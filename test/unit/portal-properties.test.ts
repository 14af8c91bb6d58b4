import assert from "node:assert/strict";
import { test } from "node:test";
import type { PropertyDefinition } from "../../src/hubspot/types.ts";
import { createPortalProperties } from "../../src/sync/portal-properties.ts";

const def = (name: string, type: string, extra: Partial<PropertyDefinition> = {}): PropertyDefinition => ({
  name,
  type,
  readOnlyValue: false,
  options: [],
  ...extra,
});

const portal = createPortalProperties(
  [
    def("shopify_cart_key", "string", { hasUniqueValue: true }),
    def("hs_total_price", "number"),
    def("hs_currency_code", "enumeration", { options: ["USD", "EUR"] }),
    def("hs_external_modified_date", "datetime"),
    def("hs_buyer_accepts_marketing", "bool"),
    def("hs_homecurrency_amount", "number", { readOnlyValue: true }),
  ],
  "shopify_cart_key",
);

test("keeps valid values and leaves out what the portal would reject, with the reason", () => {
  const { kept, dropped } = portal.filter({
    hs_total_price: "12.50",
    hs_currency_code: "JPY",
    hs_external_modified_date: "yesterday",
    hs_buyer_accepts_marketing: "yes",
    hs_homecurrency_amount: "1",
    hs_unknown: "x",
  });
  assert.deepEqual(kept, { hs_total_price: "12.50" });
  assert.deepEqual(dropped.map((d) => `${d.property}:${d.reason}`).sort(), [
    "hs_buyer_accepts_marketing:invalid_value",
    "hs_currency_code:option_not_offered",
    "hs_external_modified_date:invalid_value",
    "hs_homecurrency_amount:read_only",
    "hs_unknown:unknown_property",
  ]);
});

test("an empty string (clearing) passes for any writable property", () => {
  assert.deepEqual(portal.filter({ hs_currency_code: "", hs_total_price: "" }).kept, {
    hs_currency_code: "",
    hs_total_price: "",
  });
});

test("reports a missing or non-unique id property", () => {
  assert.equal(portal.idPropertyStatus, "ok");
  assert.equal(createPortalProperties([], "shopify_cart_key").idPropertyStatus, "missing");
  assert.equal(createPortalProperties([def("k", "string")], "k").idPropertyStatus, "not_unique");
});
