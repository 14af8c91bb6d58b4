import assert from "node:assert/strict";
import { test } from "node:test";
import { startFakeHubSpot, type FakeHubSpot, type FakeHubSpotOptions } from "../fakes/hubspot-server.ts";

// The sandbox's date-versioned paths and the 2026-09 required-property rule (reference/hubspot.md §8).

const KEY = "shopify_cart_key";

interface Answer {
  status: number;
  body: {
    message?: string;
    numErrors?: number;
    errors?: Array<{ message: string; context: Record<string, string[]> }>;
  };
}

async function call(fake: FakeHubSpot, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(fake.url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      authorization: "Bearer test-token",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Answer["body"] };
}

async function withFake(opts: FakeHubSpotOptions, fn: (fake: FakeHubSpot) => Promise<void>): Promise<void> {
  const fake = await startFakeHubSpot(opts);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

const input = (token: string, properties: Record<string, string> = {}) => ({
  id: `s:${token}`,
  idProperty: KEY,
  objectWriteTraceId: `trace-${token}`,
  properties: { [KEY]: `s:${token}`, ...properties },
});

test("a sandbox serving one version routes its paths and answers 404 to the other scheme", async () => {
  await withFake({ apiVersion: "2026-09" }, async (fake) => {
    assert.equal((await call(fake, "/crm/properties/2026-09/carts")).status, 200);
    assert.equal((await call(fake, "/crm/properties/2026-09/carts/groups")).status, 200);
    const up = await call(fake, "/crm/objects/2026-09/carts/batch/upsert", { inputs: [input("a")] });
    assert.equal(up.status, 200);
    assert.equal(fake.cartByKey("s:a")?.properties[KEY], "s:a");
    const legacy = await call(fake, "/crm/v3/properties/carts");
    assert.equal(legacy.status, 404);
    assert.match(legacy.body.message ?? "", /serves API version 2026-09/);
    assert.equal((await call(fake, "/crm/properties/2026-03/carts")).status, 404);
  });
  await withFake({ apiVersion: "any" }, async (fake) => {
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200);
    assert.equal((await call(fake, "/crm/properties/2026-03/carts")).status, 200);
  });
});

test("2026-09: a required cart property must be set after every create and update; v3 paths do not enforce it", async () => {
  await withFake({ apiVersion: "any", requiredCartProperties: ["region"] }, async (fake) => {
    fake.addCartProperty({ name: "region", type: "string" });
    const missing = await call(fake, "/crm/objects/2026-09/carts/batch/upsert", {
      inputs: [input("a"), input("b", { region: "EU" })],
    });
    assert.equal(missing.status, 207);
    assert.equal(missing.body.numErrors, 1);
    assert.deepEqual(missing.body.errors?.[0]?.context, { objectWriteTraceId: ["trace-a"] });
    assert.match(missing.body.errors?.[0]?.message ?? "", /REQUIRED_PROPERTY_MISSING.*"name":"region"/);
    assert.equal(fake.cartByKey("s:a"), undefined);
    assert.equal(fake.cartByKey("s:b")?.properties["region"], "EU");
    // An update may leave it out (the cart has it) but not clear it.
    const update = await call(fake, "/crm/objects/2026-09/carts/batch/upsert", {
      inputs: [input("b", { hs_tax: "1" })],
    });
    assert.equal(update.status, 200);
    const clear = await call(fake, "/crm/objects/2026-09/carts/batch/upsert", {
      inputs: [input("b", { region: "" })],
    });
    assert.equal(clear.status, 207);
    // 2026-03 and v3 predate the rule.
    assert.equal(
      (await call(fake, "/crm/objects/2026-03/carts/batch/upsert", { inputs: [input("c")] })).status,
      200,
    );
    assert.equal(
      (await call(fake, "/crm/v3/objects/carts/batch/upsert", { inputs: [input("d")] })).status,
      200,
    );
    fake.requireCartProperty("region", false);
    assert.equal(
      (await call(fake, "/crm/objects/2026-09/carts/batch/upsert", { inputs: [input("a")] })).status,
      200,
    );
  });
});
