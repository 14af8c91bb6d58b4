import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";

const UPSERT = "/crm/v3/objects/line_items/batch/upsert";
const ARCHIVE = "/crm/v3/objects/line_items/batch/archive";
const ASSOCIATE = "/crm/v4/associations/line_items/carts/batch/associate/default";
const KEY = "shopify_line_item_key";

async function call(
  fake: FakeHubSpot,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(fake.url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: "Bearer test-token", "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function line(key: string, properties: Record<string, string>, trace = `t-${key}`) {
  return { id: key, idProperty: KEY, objectWriteTraceId: trace, properties };
}

async function cartId(fake: FakeHubSpot, key: string): Promise<string> {
  const answer = await call(fake, "/crm/v3/objects/carts/batch/upsert", {
    inputs: [{ id: key, idProperty: "shopify_cart_key", properties: { hs_cart_name: "c" } }],
  });
  assert.equal(answer.status, 200);
  return ((answer.body["results"] as { id: string }[])[0] as { id: string }).id;
}

describe("fake HubSpot line items", () => {
  let fake: FakeHubSpot;
  before(async () => {
    // These tests speak the v3 paths themselves, whatever version the suite runs the bridge under.
    fake = await startFakeHubSpot({ apiVersion: "v3" });
  });
  after(() => fake.close());

  it("upserts by the unique key: created once, updated in place", async () => {
    const first = await call(fake, UPSERT, {
      inputs: [line("s:c1:1", { name: "Shirt", quantity: "1", price: "9.50" })],
    });
    assert.equal(first.status, 200);
    const [created] = first.body["results"] as { id: string; new: boolean }[];
    assert.equal(created?.new, true);
    const second = await call(fake, UPSERT, { inputs: [line("s:c1:1", { quantity: "3" }, "t2")] });
    const [updated] = second.body["results"] as { id: string; new: boolean }[];
    assert.equal(updated?.new, false);
    assert.equal(updated?.id, created?.id);
    assert.deepEqual(
      { ...fake.lineItems().get("s:c1:1")?.properties, hs_createdate: "", hs_lastmodifieddate: "" },
      {
        hs_object_id: created?.id,
        hs_createdate: "",
        hs_lastmodifieddate: "",
        [KEY]: "s:c1:1",
        name: "Shirt",
        quantity: "3",
        price: "9.50",
      },
    );
  });

  it("refuses an id property that is missing or not unique, duplicate ids, and associations in the upsert", async () => {
    const missing = await call(fake, UPSERT, { inputs: [{ id: "x", idProperty: "nope", properties: {} }] });
    assert.equal(missing.status, 400);
    assert.match(String(missing.body["message"]), /non-existent 0-8 property nope/);
    const notUnique = await call(fake, UPSERT, {
      inputs: [{ id: "x", idProperty: "hs_sku", properties: {} }],
    });
    assert.equal(notUnique.status, 400);
    assert.match(String(notUnique.body["message"]), /non-unique 0-8 property hs_sku/);
    const dup = await call(fake, UPSERT, { inputs: [line("d", {}, "a"), line("d", {}, "b")] });
    assert.equal(dup.status, 400);
    assert.match(String(dup.body["message"]), /Duplicate IDs/);
    const withAssoc = await call(fake, UPSERT, {
      inputs: [{ ...line("e", {}), associations: [{ to: { id: "1" }, types: [] }] }],
    });
    assert.equal(withAssoc.status, 400);
    const tooMany = await call(fake, UPSERT, {
      inputs: Array.from({ length: 101 }, (_, i) => line(`m${i}`, {})),
    });
    assert.equal(tooMany.status, 400);
  });

  it("a bad input gets a 207 error by trace id while the others are written", async () => {
    fake.rejectLineItemKey("s:c2:bad");
    const answer = await call(fake, UPSERT, {
      inputs: [
        line("s:c2:ok", { name: "Ok", price: "1.00" }),
        line("s:c2:bad", { name: "Bad" }),
        line("s:c2:cur", { hs_line_item_currency_code: "XXX" }),
        line("s:c2:prop", { nonsense: "1" }),
      ],
    });
    assert.equal(answer.status, 207);
    const errors = answer.body["errors"] as { context: { objectWriteTraceId: string[] } }[];
    assert.deepEqual(errors.map((e) => e.context.objectWriteTraceId[0]).sort(), [
      "t-s:c2:bad",
      "t-s:c2:cur",
      "t-s:c2:prop",
    ]);
    assert.ok(fake.lineItems().has("s:c2:ok"));
    assert.ok(!fake.lineItems().has("s:c2:bad"));
  });

  it("associates line item → cart by default; one parent only; unknown ids are per-input errors", async () => {
    const cart = await cartId(fake, "s:c3");
    const other = await cartId(fake, "s:c4");
    const up = await call(fake, UPSERT, { inputs: [line("s:c3:1", { name: "A" })] });
    const itemId = ((up.body["results"] as { id: string }[])[0] as { id: string }).id;
    const ok = await call(fake, ASSOCIATE, { inputs: [{ from: { id: itemId }, to: { id: cart } }] });
    assert.equal(ok.status, 200);
    assert.deepEqual(
      fake.lineItemsOfCart(cart).map((i) => i.key),
      ["s:c3:1"],
    );
    const again = await call(fake, ASSOCIATE, { inputs: [{ from: { id: itemId }, to: { id: cart } }] });
    assert.equal(again.status, 200, "re-associating with the same cart is idempotent");
    const bad = await call(fake, ASSOCIATE, {
      inputs: [
        { from: { id: itemId }, to: { id: other } },
        { from: { id: "999" }, to: { id: cart } },
        { from: { id: itemId }, to: { id: "31" } },
      ],
    });
    assert.equal(bad.status, 207);
    assert.equal(bad.body["numErrors"], 3);
    assert.deepEqual(fake.lineItemsOfCart(other), []);
  });

  it("archives by id (204, idempotent); the key can then be upserted afresh", async () => {
    const up = await call(fake, UPSERT, { inputs: [line("s:c5:1", { name: "A" })] });
    const itemId = ((up.body["results"] as { id: string }[])[0] as { id: string }).id;
    const archived = await call(fake, ARCHIVE, { inputs: [{ id: itemId }, { id: "12345" }] });
    assert.equal(archived.status, 204);
    assert.ok(!fake.lineItems().has("s:c5:1"));
    assert.equal((await call(fake, ARCHIVE, { inputs: [{ id: itemId }] })).status, 204);
    const again = await call(fake, UPSERT, { inputs: [line("s:c5:1", { name: "A" }, "t9")] });
    const [result] = again.body["results"] as { id: string; new: boolean }[];
    assert.equal(result?.new, true);
    assert.notEqual(result?.id, itemId);
    assert.equal((await call(fake, ARCHIVE, { inputs: [] })).status, 400);
  });

  it("line item properties: list, read one, create (unique allowed), 409 on a second create", async () => {
    const list = await call(fake, "/crm/v3/properties/line_items");
    const names = (list.body["results"] as { name: string }[]).map((p) => p.name);
    for (const n of ["name", "quantity", "price", "hs_sku", "discount", "hs_line_item_currency_code", KEY])
      assert.ok(names.includes(n), n);
    assert.equal((await call(fake, `/crm/v3/properties/line_items/${KEY}`)).body["hasUniqueValue"], true);
    const def = {
      name: "my_key",
      label: "K",
      type: "string",
      fieldType: "text",
      groupName: "lineiteminformation",
      hasUniqueValue: true,
    };
    assert.equal((await call(fake, "/crm/v3/properties/line_items", def)).status, 201);
    assert.equal((await call(fake, "/crm/v3/properties/line_items", def)).status, 409);
    const wrongGroup = await call(fake, "/crm/v3/properties/line_items", {
      ...def,
      name: "k2",
      groupName: "cart_information",
    });
    assert.equal(wrongGroup.status, 400);
  });

  it("without line item scopes: 403 MISSING_SCOPES on line items, carts still answer", async () => {
    fake.setScopes({ lineItems: false });
    try {
      const denied = await call(fake, UPSERT, { inputs: [line("s:c6:1", {})] });
      assert.equal(denied.status, 403);
      assert.equal(denied.body["category"], "MISSING_SCOPES");
      assert.equal((await call(fake, "/crm/v3/properties/line_items")).status, 403);
      assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200);
    } finally {
      fake.setScopes({ lineItems: true });
    }
  });
});
