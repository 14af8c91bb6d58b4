import { test } from "node:test";
import assert from "node:assert/strict";
import { maxRequestsInAnyWindow, startFakeHubSpot } from "../fakes/hubspot-server.ts";
import type { FakeHubSpot, FakeHubSpotOptions, RecordedRequest } from "../fakes/hubspot-server.ts";

const TOKEN = "test-token";
const UPSERT = "/crm/v3/objects/carts/batch/upsert";
const KEY = "shopify_cart_key";

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  fake: FakeHubSpot,
  path: string,
  opts: {
    method?: string;
    body?: unknown;
    token?: string | null;
    rawBody?: string;
    contentType?: string;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`;
  const hasBody = opts.body !== undefined || opts.rawBody !== undefined;
  if (hasBody) headers["content-type"] = opts.contentType ?? "application/json";
  const res = await fetch(fake.url + path, {
    method: opts.method ?? (hasBody ? "POST" : "GET"),
    headers,
    ...(hasBody ? { body: opts.rawBody ?? JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

async function withFake(opts: FakeHubSpotOptions, fn: (fake: FakeHubSpot) => Promise<void>): Promise<void> {
  // These tests speak the v3 paths themselves, whatever version the suite runs the bridge under.
  const fake = await startFakeHubSpot({ apiVersion: "v3", ...opts });
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

function cartInput(
  key: string,
  properties: Record<string, unknown> = {},
  traceId?: string,
): Record<string, unknown> {
  return {
    id: key,
    idProperty: KEY,
    ...(traceId === undefined ? {} : { objectWriteTraceId: traceId }),
    properties: { [KEY]: key, hs_external_status: "open", ...properties },
  };
}

const upsert = (fake: FakeHubSpot, inputs: unknown[]): Promise<Answer> =>
  call(fake, UPSERT, { body: { inputs } });

function results(answer: Answer): Record<string, unknown>[] {
  return answer.body.results as Record<string, unknown>[];
}

function errors(answer: Answer): { message: string; category: string; context: Record<string, string[]> }[] {
  return answer.body.errors as { message: string; category: string; context: Record<string, string[]> }[];
}

test("requests without the right bearer token get 401 INVALID_AUTHENTICATION and are recorded", async () => {
  await withFake({}, async (fake) => {
    const none = await call(fake, "/crm/v3/properties/carts", { token: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.category, "INVALID_AUTHENTICATION");
    assert.equal(none.body.status, "error");
    assert.match(String(none.body.correlationId), /^[0-9a-f-]{36}$/);
    assert.equal((await call(fake, "/crm/v3/properties/carts", { token: "wrong" })).status, 401);
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200);
    fake.setAccessToken("rotated");
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 401);
    assert.equal((await call(fake, "/crm/v3/properties/carts", { token: "rotated" })).status, 200);
    assert.deepEqual(
      fake.requests.map((r) => r.status),
      [401, 401, 200, 401, 200],
    );
    assert.equal(fake.requests[0]?.path, "/crm/v3/properties/carts");
  });
});

test("upsert creates, then updates with PATCH semantics (new:false, empty string clears)", async () => {
  await withFake({}, async (fake) => {
    const created = await upsert(fake, [
      cartInput(
        "a.myshopify.com:t1",
        { hs_total_price: "10.00", hs_cart_discount: "2.50", hs_currency_code: "USD" },
        "tr-1",
      ),
      cartInput("a.myshopify.com:t2", { hs_total_price: "5" }, "tr-2"),
    ]);
    assert.equal(created.status, 200);
    assert.equal(created.body.status, "COMPLETE");
    const [first, second] = results(created);
    assert.equal(first?.new, true);
    assert.equal(second?.new, true);
    assert.match(String(first?.id), /^\d+$/);
    assert.notEqual(first?.id, second?.id);
    assert.equal(first?.objectWriteTraceId, "tr-1");
    assert.equal(first?.archived, false);
    assert.equal(fake.carts().size, 2);

    const updated = await upsert(fake, [
      cartInput("a.myshopify.com:t1", { hs_total_price: "12.50", hs_cart_discount: "" }, "tr-3"),
    ]);
    assert.equal(updated.status, 200);
    assert.equal(results(updated)[0]?.new, false);
    assert.equal(results(updated)[0]?.id, first?.id);
    const cart = fake.cartByKey("a.myshopify.com:t1");
    assert.ok(cart);
    assert.equal(cart.id, first?.id);
    assert.equal(cart.writes, 2);
    assert.equal(cart.properties.hs_total_price, "12.50");
    assert.equal(cart.properties.hs_cart_discount, undefined);
    assert.equal(cart.properties.hs_currency_code, "USD");
    assert.equal(cart.properties[KEY], "a.myshopify.com:t1");
    assert.equal(cart.properties.hs_object_id, cart.id);
    assert.equal(fake.cartByKey("a.myshopify.com:t2")?.writes, 1);
    assert.equal(fake.carts().size, 2);

    const read = await call(fake, `/crm/v3/objects/carts/${cart.id}`);
    assert.equal(read.status, 200);
    assert.equal((read.body.properties as Record<string, string>).hs_total_price, "12.50");
    const byKey = await call(fake, `/crm/v3/objects/carts/a.myshopify.com:t2?idProperty=${KEY}`);
    assert.equal(byKey.body.id, second?.id);

    const sent = fake.requests[0];
    assert.equal(sent?.method, "POST");
    assert.equal(sent.path, UPSERT);
    assert.equal(sent.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal((sent.body as { inputs: unknown[] }).inputs.length, 2);
    assert.equal(sent.status, 200);
  });
});

test("batch envelope rules: ≤ 100 inputs, unique ids, a unique idProperty, JSON body", async () => {
  await withFake({}, async (fake) => {
    const inputs = (n: number): unknown[] =>
      Array.from({ length: n }, (_, i) => cartInput(`s:${i}`, {}, `t${i}`));
    const tooMany = await upsert(fake, inputs(101));
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.category, "VALIDATION_ERROR");
    assert.equal(fake.carts().size, 0);
    assert.equal((await upsert(fake, [])).status, 400);

    const dup = await upsert(fake, [
      cartInput("s:dup", {}, "a"),
      cartInput("s:other", {}, "b"),
      cartInput("s:dup", {}, "c"),
    ]);
    assert.equal(dup.status, 400);
    assert.equal(dup.body.message, "Duplicate IDs found in batch input: [s:dup]. IDs must be unique");
    assert.deepEqual(dup.body.context, { ids: ["s:dup"] });
    assert.equal(fake.carts().size, 0, "a rejected batch writes nothing");

    const nonUnique = await upsert(fake, [{ id: "x", idProperty: "hs_external_cart_id", properties: {} }]);
    assert.equal(nonUnique.status, 400);
    assert.equal(
      nonUnique.body.message,
      "Unable to perform update/upsert by non-unique 0-142 property hs_external_cart_id",
    );
    const noIdProperty = await upsert(fake, [{ id: "x", properties: {} }]);
    assert.equal(noIdProperty.status, 400);
    assert.match(String(noIdProperty.body.message), /non-unique 0-142 property hs_object_id/);
    const missing = await upsert(fake, [{ id: "x", idProperty: "nope", properties: {} }]);
    assert.equal(missing.status, 400);
    assert.match(String(missing.body.message), /nope/);

    const badJson = await call(fake, UPSERT, { rawBody: "{not json" });
    assert.equal(badJson.status, 400);
    const noContentType = await call(fake, UPSERT, {
      body: { inputs: inputs(1) },
      contentType: "text/plain",
    });
    assert.equal(noContentType.status, 415);

    const hundred = await upsert(fake, inputs(100));
    assert.equal(hundred.status, 200);
    assert.equal(fake.carts().size, 100);
    assert.equal((await call(fake, "/crm/v3/objects/nope")).status, 404);
  });
});

test("without the shopify_cart_key property, upserting by it is refused", async () => {
  await withFake({ withCartKeyProperty: false }, async (fake) => {
    const answer = await upsert(fake, [cartInput("s:1")]);
    assert.equal(answer.status, 400);
    assert.match(String(answer.body.message), /shopify_cart_key/);
    assert.equal((await call(fake, `/crm/v3/properties/carts/${KEY}`)).status, 404);
  });
});

const badValues: [string, Record<string, unknown>, string][] = [
  ["unknown property", { hs_customer_id: "42" }, "PROPERTY_DOESNT_EXIST"],
  ["read-only property", { hs_homecurrency_amount: "1" }, "READ_ONLY_VALUE"],
  ["bad number", { hs_total_price: "12,50" }, "INVALID_DECIMAL"],
  ["number with two points", { hs_tax: "1.2.3" }, "INVALID_DECIMAL"],
  ["bad enumeration", { hs_currency_code: "XYZ" }, "INVALID_OPTION"],
  ["bad bool", { hs_buyer_accepts_marketing: "yes" }, "INVALID_OPTION"],
  ["bad datetime", { hs_external_created_date: "yesterday" }, "INVALID_DATE"],
  ["non-string value", { hs_total_price: 12.5 }, "INVALID_TYPE"],
  ["too long string", { hs_cart_name: "x".repeat(65_537) }, "STRING_TOO_LONG"],
];

for (const [label, properties, code] of badValues) {
  test(`${label}: 207 naming the trace id with trace ids, whole-batch 400 without`, async () => {
    await withFake({}, async (fake) => {
      const traced = await upsert(fake, [
        cartInput("s:good", { hs_total_price: "1" }, "t-good"),
        cartInput("s:bad", properties, "t-bad"),
      ]);
      assert.equal(traced.status, 207);
      assert.equal(traced.body.numErrors, 1);
      const [error] = errors(traced);
      assert.equal(error?.category, "VALIDATION_ERROR");
      assert.deepEqual(error?.context, { objectWriteTraceId: ["t-bad"] });
      assert.ok(error?.message.includes(code), error?.message);
      assert.deepEqual(
        results(traced).map((r) => r.objectWriteTraceId),
        ["t-good"],
      );
      assert.ok(fake.cartByKey("s:good"));
      assert.equal(fake.cartByKey("s:bad"), undefined);

      const untraced = await upsert(fake, [cartInput("s:good2"), cartInput("s:bad", properties)]);
      assert.equal(untraced.status, 400);
      assert.equal(untraced.body.category, "VALIDATION_ERROR");
      assert.ok(String(untraced.body.message).includes(code));
      assert.equal(fake.cartByKey("s:good2"), undefined);
      assert.equal(fake.cartByKey("s:bad"), undefined);
    });
  });
}

test("valid values of every type are accepted", async () => {
  await withFake({}, async (fake) => {
    const answer = await upsert(fake, [
      cartInput("s:1", {
        hs_total_price: "-3.25",
        hs_tax: "0",
        hs_currency_code: "EUR",
        hs_buyer_accepts_marketing: "false",
        hs_external_created_date: "2024-05-01T10:11:12-04:00",
        hs_external_modified_date: "1714572672000",
        hs_cart_name: "x".repeat(65_536),
        hs_cart_discount: "",
      }),
    ]);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(fake.cartByKey("s:1")?.properties.hs_currency_code, "EUR");
  });
});

test("rejectCartId fails that input only: 207 with trace ids, 400 without", async () => {
  await withFake({}, async (fake) => {
    fake.rejectCartId("s:poison", "poisoned");
    const traced = await upsert(fake, [cartInput("s:ok", {}, "t1"), cartInput("s:poison", {}, "t2")]);
    assert.equal(traced.status, 207);
    assert.deepEqual(errors(traced)[0]?.context, { objectWriteTraceId: ["t2"] });
    assert.equal(errors(traced)[0]?.message, "poisoned");
    assert.ok(fake.cartByKey("s:ok"));
    const untraced = await upsert(fake, [cartInput("s:ok2"), cartInput("s:poison")]);
    assert.equal(untraced.status, 400);
    assert.equal(fake.cartByKey("s:ok2"), undefined);
  });
});

test("the rolling 10 s window answers 429 TEN_SECONDLY_ROLLING past the limit, with headers", async () => {
  await withFake({ maxRequestsPer10s: 3 }, async (fake) => {
    assert.equal(
      (await call(fake, "/crm/v3/properties/carts", { token: "bad" })).status,
      401,
      "401 is not counted",
    );
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const ok = await call(fake, "/crm/v3/properties/carts");
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("x-hubspot-ratelimit-max"), "3");
      assert.equal(ok.headers.get("x-hubspot-ratelimit-interval-milliseconds"), "10000");
      assert.equal(ok.headers.get("x-hubspot-ratelimit-daily"), null);
      remaining.push(ok.headers.get("x-hubspot-ratelimit-remaining") ?? "");
    }
    assert.deepEqual(remaining, ["2", "1", "0"]);
    const limited = await upsert(fake, [cartInput("s:1", {}, "t")]);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.policyName, "TEN_SECONDLY_ROLLING");
    assert.equal(limited.body.errorType, "RATE_LIMIT");
    assert.equal(limited.body.message, "You have reached your ten_secondly_rolling limit.");
    assert.equal(limited.headers.get("x-hubspot-ratelimit-remaining"), "0");
    assert.equal(fake.carts().size, 0);
    assert.equal(fake.requests.at(-1)?.status, 429);
  });
});

test("the daily limit answers 429 DAILY and the Daily headers count down", async () => {
  await withFake({ dailyLimit: 2 }, async (fake) => {
    const first = await call(fake, "/crm/v3/properties/carts");
    assert.equal(first.headers.get("x-hubspot-ratelimit-daily"), "2");
    assert.equal(first.headers.get("x-hubspot-ratelimit-daily-remaining"), "1");
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200);
    const over = await call(fake, "/crm/v3/properties/carts");
    assert.equal(over.status, 429);
    assert.equal(over.body.policyName, "DAILY");
    assert.equal(over.headers.get("x-hubspot-ratelimit-daily-remaining"), "0");
  });
});

test("failNext answers matching requests with the fault, then is consumed", async () => {
  await withFake({}, async (fake) => {
    fake.failNext({ status: 429, headers: { "Retry-After": "1" } }, { times: 2, path: "/batch/upsert" });
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200, "other paths are not affected");
    for (let i = 0; i < 2; i++) {
      const faulted = await upsert(fake, [cartInput("s:1", {}, "t")]);
      assert.equal(faulted.status, 429);
      assert.equal(faulted.headers.get("retry-after"), "1");
      assert.equal(faulted.body.policyName, "TEN_SECONDLY_ROLLING");
    }
    assert.equal(fake.carts().size, 0, "a faulted request writes nothing");
    assert.equal((await upsert(fake, [cartInput("s:1", {}, "t")])).status, 200);

    fake.failNext({ status: 502, body: "<html>Bad Gateway</html>" });
    const bad = await fetch(`${fake.url}/crm/v3/properties/carts`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(bad.status, 502);
    assert.equal(await bad.text(), "<html>Bad Gateway</html>");

    fake.failNext({ status: 0, destroySocket: true });
    await assert.rejects(call(fake, "/crm/v3/properties/carts"));
    fake.failNext({ status: 0, hang: true });
    await assert.rejects(
      fetch(`${fake.url}/crm/v3/properties/carts`, {
        headers: { authorization: `Bearer ${TOKEN}` },
        signal: AbortSignal.timeout(200),
      }),
    );
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200);
  });
});

test("latencyMs delays every answer", async () => {
  await withFake({ latencyMs: 60 }, async (fake) => {
    const started = performance.now();
    assert.equal((await call(fake, "/crm/v3/properties/carts")).status, 200);
    assert.ok(performance.now() - started >= 55);
  });
});

test("close() does not wait for a hung request", async () => {
  const fake = await startFakeHubSpot();
  fake.failNext({ status: 0, hang: true });
  const pending = fetch(`${fake.url}/crm/v3/properties/carts`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  while (fake.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
  await fake.close();
  await assert.rejects(pending);
});

test("properties endpoints list, read, and create (409 when it exists, at most 10 unique)", async () => {
  await withFake({}, async (fake) => {
    for (const type of ["carts", "0-142", "cart"]) {
      const list = await call(fake, `/crm/v3/properties/${type}`);
      assert.equal(list.status, 200);
      const defs = list.body.results as Record<string, unknown>[];
      const byName = new Map(defs.map((d) => [d.name, d]));
      assert.equal(byName.get(KEY)?.hasUniqueValue, true);
      assert.equal(byName.get("hs_external_cart_id")?.hasUniqueValue, false);
      assert.equal(byName.get("hs_total_price")?.type, "number");
      assert.deepEqual(byName.get("hs_object_id")?.modificationMetadata, {
        archivable: false,
        readOnlyDefinition: true,
        readOnlyValue: true,
      });
      const options = byName.get("hs_currency_code")?.options as { value: string }[];
      assert.ok(options.some((o) => o.value === "USD"));
    }
    const one = await call(fake, "/crm/v3/properties/carts/hs_currency_code");
    assert.equal(one.status, 200);
    assert.equal(one.body.type, "enumeration");
    assert.equal((await call(fake, "/crm/v3/properties/carts/nope")).status, 404);
    const groups = await call(fake, "/crm/v3/properties/carts/groups");
    assert.deepEqual(
      (groups.body.results as { name: string }[]).map((g) => g.name),
      ["cart_information"],
    );

    const def = (name: string): Record<string, unknown> => ({
      name,
      label: name,
      type: "string",
      fieldType: "text",
      groupName: "cart_information",
      hasUniqueValue: true,
    });
    const created = await call(fake, "/crm/v3/properties/carts", { body: def("my_key") });
    assert.equal(created.status, 201);
    assert.equal(created.body.hasUniqueValue, true);
    assert.equal((await call(fake, "/crm/v3/properties/carts/my_key")).status, 200);
    const again = await call(fake, "/crm/v3/properties/carts", { body: def("my_key") });
    assert.equal(again.status, 409);
    assert.equal(again.body.category, "OBJECT_ALREADY_EXISTS");
    assert.equal((await call(fake, "/crm/v3/properties/carts", { body: { name: "x" } })).status, 400);
    assert.equal((await upsert(fake, [{ id: "k1", idProperty: "my_key", properties: {} }])).status, 200);

    // shopify_cart_key and my_key exist; 8 more reach the limit of 10.
    for (let i = 0; i < 8; i++) {
      assert.equal((await call(fake, "/crm/v3/properties/carts", { body: def(`u${i}`) })).status, 201);
    }
    const over = await call(fake, "/crm/v3/properties/carts", { body: def("u8") });
    assert.equal(over.status, 400);
    assert.equal(
      (await call(fake, "/crm/v3/properties/carts", { body: { ...def("u8"), hasUniqueValue: false } }))
        .status,
      201,
    );
  });
});

test("contacts upsert by email; a bad or rejected email fails the whole batch", async () => {
  await withFake({}, async (fake) => {
    const path = "/crm/v3/objects/contacts/batch/upsert";
    const input = (email: string, props: Record<string, string> = {}): unknown => ({
      id: email,
      idProperty: "email",
      properties: { email, ...props },
    });
    const created = await call(fake, path, {
      body: { inputs: [input("Ann@Example.com", { firstname: "Ann" }), input("bob@example.com")] },
    });
    assert.equal(created.status, 200);
    assert.deepEqual(
      results(created).map((r) => r.new),
      [true, true],
    );
    const ann = fake.contacts().get("ann@example.com");
    assert.equal(ann?.properties.firstname, "Ann");
    const updated = await call(fake, path, {
      body: { inputs: [input("ann@example.com", { lastname: "Lee" })] },
    });
    assert.equal(results(updated)[0]?.new, false);
    assert.equal(results(updated)[0]?.id, ann?.id);
    assert.equal(fake.contacts().get("ann@example.com")?.properties.lastname, "Lee");

    const bad = await call(fake, path, {
      body: { inputs: [input("carl@example.com"), input("not-an-email")] },
    });
    assert.equal(bad.status, 400);
    assert.ok(String(bad.body.message).includes("not-an-email"));
    assert.ok(String(bad.body.message).includes("INVALID_EMAIL"));
    assert.equal(fake.contacts().has("carl@example.com"), false);

    fake.rejectContactEmail("dan@example.com");
    const rejected = await call(fake, path, {
      body: {
        inputs: [
          { ...(input("carl@example.com") as object), objectWriteTraceId: "a" },
          { ...(input("dan@example.com") as object), objectWriteTraceId: "b" },
        ],
      },
    });
    assert.equal(rejected.status, 400, "no partial success for contacts by email, even with trace ids");
    assert.equal(fake.contacts().size, 2);

    const dup = await call(fake, path, {
      body: { inputs: [input("e@example.com"), input("E@example.com")] },
    });
    assert.equal(dup.status, 400);

    fake.setScopes({ contacts: false });
    const forbidden = await call(fake, path, { body: { inputs: [input("f@example.com")] } });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.category, "MISSING_SCOPES");
    const assoc = await call(fake, "/crm/v4/associations/carts/contacts/batch/create", {
      body: { inputs: [] },
    });
    assert.equal(assoc.status, 403);
    assert.equal((await upsert(fake, [cartInput("s:1")])).status, 200, "carts are unaffected");
  });
});

test("associations cart → contact: 201, deduplicated, per-input 207 for unknown ids, 400 for a wrong type", async () => {
  await withFake({}, async (fake) => {
    const cartId = String(results(await upsert(fake, [cartInput("s:1")]))[0]?.id);
    const contactAnswer = await call(fake, "/crm/v3/objects/contacts/batch/upsert", {
      body: { inputs: [{ id: "a@example.com", idProperty: "email", properties: {} }] },
    });
    const contactId = String(results(contactAnswer)[0]?.id);
    const types = [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 586 }];
    const link = (from: string, to: string, t: unknown = types): unknown => ({
      from: { id: from },
      to: { id: to },
      types: t,
    });

    const created = await call(fake, "/crm/v4/associations/carts/contacts/batch/create", {
      body: { inputs: [link(cartId, contactId)] },
    });
    assert.equal(created.status, 201);
    assert.equal(results(created)[0]?.fromObjectId, Number(cartId));
    assert.deepEqual(fake.associations(), [{ cartId, contactId, typeId: 586 }]);

    const again = await call(fake, "/crm/v4/associations/0-142/0-1/batch/create", {
      body: { inputs: [link(cartId, contactId), link("999", contactId)] },
    });
    assert.equal(again.status, 207);
    assert.equal(again.body.numErrors, 1);
    assert.equal(fake.associations().length, 1);

    const swapped = await call(fake, "/crm/v4/associations/carts/contacts/batch/create", {
      body: { inputs: [link(contactId, cartId)] },
    });
    assert.equal(swapped.status, 207, "cart and contact ids are distinct ranges");

    const wrongType = await call(fake, "/crm/v4/associations/carts/contacts/batch/create", {
      body: {
        inputs: [
          link(cartId, contactId, [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 587 }]),
        ],
      },
    });
    assert.equal(wrongType.status, 400);
    const tooMany = Array.from({ length: 2001 }, () => link(cartId, contactId));
    assert.equal(
      (await call(fake, "/crm/v4/associations/carts/contacts/batch/create", { body: { inputs: tooMany } }))
        .status,
      400,
    );
  });
});

test("maxRequestsInAnyWindow counts the busiest sliding window", async () => {
  const at = (...times: number[]): RecordedRequest[] =>
    times.map((atMs) => ({ method: "GET", path: "/", headers: {}, body: undefined, status: 200, atMs }));
  assert.equal(maxRequestsInAnyWindow([]), 0);
  assert.equal(maxRequestsInAnyWindow(at(0, 5000, 9999, 10_000, 20_000)), 3);
  assert.equal(maxRequestsInAnyWindow(at(20_000, 0, 1, 2, 3)), 4, "input order does not matter");
  assert.equal(maxRequestsInAnyWindow(at(0, 1000, 2000), 1000), 1);
  assert.equal(maxRequestsInAnyWindow(at(0, 999, 2000), 1000), 2);
  await withFake({}, async (fake) => {
    for (let i = 0; i < 5; i++) await call(fake, "/crm/v3/properties/carts");
    assert.equal(maxRequestsInAnyWindow(fake.requests), 5);
    fake.reset();
    assert.equal(fake.requests.length, 0);
    assert.equal(maxRequestsInAnyWindow(fake.requests), 0);
  });
});
