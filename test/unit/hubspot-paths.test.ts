import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { hubspotPaths } from "../../src/hubspot/paths.ts";
import { requiredPropertiesIn } from "../../src/sync/required-properties.ts";

// Expected paths are written out from ../shared/reference/hubspot.md §2, §4 and §8, not computed.

test("v3: the /crm/v3 object and property paths and the /crm/v4 association paths", () => {
  const p = hubspotPaths("v3");
  assert.equal(p.batchUpsert("carts"), "/crm/v3/objects/carts/batch/upsert");
  assert.equal(p.batchUpsert("line_items"), "/crm/v3/objects/line_items/batch/upsert");
  assert.equal(p.batchArchive("line_items"), "/crm/v3/objects/line_items/batch/archive");
  assert.equal(p.properties("carts"), "/crm/v3/properties/carts");
  assert.equal(p.properties("line_items"), "/crm/v3/properties/line_items");
  assert.equal(p.propertyGroups("carts"), "/crm/v3/properties/carts/groups");
  assert.equal(
    p.associationsBatchCreate("carts", "contacts"),
    "/crm/v4/associations/carts/contacts/batch/create",
  );
  assert.equal(
    p.associationsBatchDefault("line_items", "carts"),
    "/crm/v4/associations/line_items/carts/batch/associate/default",
  );
  assert.equal(p.associationLabels("line_items", "carts"), "/crm/v4/associations/line_items/carts/labels");
  assert.equal(
    p.associationDefault("carts", "301", "contacts", "7"),
    "/crm/v4/objects/carts/301/associations/default/contacts/7",
  );
});

test("a date version: /crm/objects/<date>, /crm/properties/<date>, /crm/associations/<date>", () => {
  const p = hubspotPaths("2026-03");
  assert.equal(p.batchUpsert("carts"), "/crm/objects/2026-03/carts/batch/upsert");
  assert.equal(p.batchArchive("line_items"), "/crm/objects/2026-03/line_items/batch/archive");
  assert.equal(p.batchRead("contacts"), "/crm/objects/2026-03/contacts/batch/read");
  assert.equal(p.properties("carts"), "/crm/properties/2026-03/carts");
  assert.equal(
    p.property("line_items", "shopify_line_item_key"),
    "/crm/properties/2026-03/line_items/shopify_line_item_key",
  );
  assert.equal(
    p.associationsBatchDefault("line_items", "carts"),
    "/crm/associations/2026-03/line_items/carts/batch/associate/default",
  );
  assert.equal(
    p.associationDefault("line_items", "9", "carts", "301"),
    "/crm/objects/2026-03/line_items/9/associations/default/carts/301",
  );
  assert.equal(hubspotPaths("2026-09").batchUpsert("contacts"), "/crm/objects/2026-09/contacts/batch/upsert");
  assert.equal(hubspotPaths().batchUpsert("carts"), "/crm/v3/objects/carts/batch/upsert", "v3 by default");
});

test("HUBSPOT_API_VERSION: v3 by default, date versions accepted, anything else named at start-up", () => {
  const required = { SHOPIFY_WEBHOOK_SECRETS: "a", HUBSPOT_ACCESS_TOKEN: "t" };
  assert.equal(loadConfig(required).hubspotApiVersion, "v3");
  assert.equal(loadConfig({ ...required, HUBSPOT_API_VERSION: "2026-09" }).hubspotApiVersion, "2026-09");
  assert.equal(loadConfig({ ...required, HUBSPOT_API_VERSION: " 2026-03 " }).hubspotApiVersion, "2026-03");
  for (const bad of ["v4", "2026-9", "2026-10", "latest", "v3/"]) {
    assert.throws(
      () => loadConfig({ ...required, HUBSPOT_API_VERSION: bad }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith("HUBSPOT_API_VERSION")),
      bad,
    );
  }
});

test("required properties are read from HubSpot's 'not valid' list, other problems are not", () => {
  const message =
    'Property values were not valid: [{"isValid":false,"message":"The property store_region is required on 0-142 and was not provided","error":"REQUIRED_PROPERTY_MISSING","name":"store_region"},' +
    '{"isValid":false,"message":"abc was not a valid number","error":"INVALID_FLOAT","name":"hs_tax"}]';
  assert.deepEqual(requiredPropertiesIn(message), ["store_region"]);
  assert.deepEqual(requiredPropertiesIn('Property "region" is required'), ["region"]);
  assert.deepEqual(requiredPropertiesIn("Cart rejected: cursed"), []);
});
