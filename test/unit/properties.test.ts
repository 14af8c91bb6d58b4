/**
 * Property-based tests (fast-check) over the pure core and the SQLite store:
 * - mapping any bytes or any JSON value, under any topic, gives a result or a reason and never fails inside;
 * - for any set of cart/checkout/order deliveries over a few carts, every delivery order with any duplication
 *   folds (mergeEvent) to the same carts — and to the carts an independent oracle computes (newest value per
 *   property, highest status), so "the same but wrong" fails too;
 * - the same holds through a real SQLite store: two stores fed the deliveries in two different orders, with
 *   redeliveries and random group-commit batches, hold the same values to send to HubSpot (`currentValues`).
 *
 * FC_NUM_RUNS scales the runs (default below); a failure prints fast-check's seed and path to replay it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { IngestItem } from "../../src/store/store.ts";
import { CART_STATUSES, type CartEvent } from "../../src/sync/cart-event.ts";
import { MAPPED_TOPICS, mapDelivery, type MapResult } from "../../src/sync/mapping.ts";
import { currentValues, mergeEvent, type CartState } from "../../src/sync/merge.ts";
import { expectedCarts } from "../helpers/reliability-deliveries.ts";
import { loadFixtures } from "../helpers/shopify.ts";

const RUNS = Number(process.env["FC_NUM_RUNS"] ?? "") || 300;
const SHOP = "prop-shop.myshopify.com";

// ---- mapping is total -------------------------------------------------------------------------------------

const topicArb = fc.oneof(
  fc.constantFrom(...MAPPED_TOPICS, "customers/redact", "app/uninstalled", " Checkouts/Update "),
  fc.string({ maxLength: 20 }),
);
const shopArb = fc.oneof(
  fc.constant(SHOP),
  fc.constant(" Mixed-Case.myshopify.com "),
  fc.constant(""),
  fc.string({ maxLength: 30 }),
);
const triggeredArb = fc.option(
  fc.oneof(fc.constant("2026-11-01T10:00:00.000000Z"), fc.string({ maxLength: 30 })),
  { nil: undefined },
);

/**
 * Objects shaped like Shopify payloads: each field mostly holds a value of a plausible type with odd content
 * (malformed amounts and dates, empty tokens, numbers for strings), sometimes any JSON value — so the
 * schemas pass often enough for the mappers, decimal parsing and date parsing to see strange values.
 */
const weird = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof(
    { arbitrary: plausible, weight: 30 },
    { arbitrary: fc.constant(null), weight: 1 },
    { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
  );
const textArb = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("", " ", "tok", "Ünïcödé", "a@b.c", "x".repeat(300)),
);
const amountArb = fc.oneof(
  fc.constantFrom(
    "0",
    "0.00",
    "-0",
    "1.005",
    "-12.50",
    "1e3",
    "NaN",
    "Infinity",
    "abc",
    "",
    " 1.00 ",
    "99999999999999999999.99",
    "0.1",
  ),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 8 }),
);
const dateArb = fc.oneof(
  fc.constantFrom(
    "2026-11-01T10:00:00Z",
    "2026-11-01T10:00:00.123456-05:00",
    "2026-11-01T10:00:00+0530",
    "2026-02-30T10:00:00Z",
    "yesterday",
    "",
    "2026-11-01",
  ),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.string({ maxLength: 25 }),
);
const moneyBagArb = fc.record(
  {
    shop_money: weird(fc.record({ amount: weird(amountArb), currency_code: weird(textArb) })),
    presentment_money: weird(fc.record({ amount: weird(amountArb), currency_code: weird(textArb) })),
  },
  { requiredKeys: [] },
);
const personArb = fc.record(
  { email: weird(textArb), first_name: weird(textArb), last_name: weird(textArb), phone: weird(textArb) },
  { requiredKeys: [] },
);
const lineArb = fc.record(
  {
    title: weird(textArb),
    presentment_title: weird(textArb),
    quantity: weird(fc.oneof(fc.integer(), fc.double())),
    line_price: weird(amountArb),
    price: weird(amountArb),
    total_discount: weird(amountArb),
    line_price_set: weird(moneyBagArb),
    price_set: weird(moneyBagArb),
    total_discount_set: weird(moneyBagArb),
  },
  { requiredKeys: [] },
);
const payloadFieldArb = fc.record(
  {
    id: weird(fc.oneof(textArb, fc.integer())),
    token: weird(fc.oneof(textArb, fc.integer())),
    cart_token: weird(fc.oneof(textArb, fc.integer())),
    checkout_token: weird(fc.oneof(textArb, fc.integer())),
    updated_at: weird(dateArb),
    created_at: weird(dateArb),
    completed_at: weird(dateArb),
    email: weird(textArb),
    contact_email: weird(textArb),
    phone: weird(textArb),
    customer: weird(fc.oneof(personArb, fc.constant([]))),
    billing_address: weird(fc.oneof(personArb, fc.constant([]))),
    currency: weird(textArb),
    presentment_currency: weird(textArb),
    total_price: weird(amountArb),
    subtotal_price: weird(amountArb),
    total_tax: weird(amountArb),
    total_discounts: weird(amountArb),
    total_price_set: weird(moneyBagArb),
    total_discounts_set: weird(moneyBagArb),
    shipping_lines: weird(
      fc.array(fc.record({ price: weird(amountArb), price_set: weird(moneyBagArb) }, { requiredKeys: [] }), {
        maxLength: 3,
      }),
    ),
    discount_codes: weird(
      fc.array(fc.record({ code: weird(textArb) }, { requiredKeys: [] }), { maxLength: 3 }),
    ),
    line_items: weird(fc.array(lineArb, { maxLength: 4 })),
    landing_site: weird(textArb),
    referring_site: weird(textArb),
    buyer_accepts_marketing: weird(fc.boolean()),
    abandoned_checkout_url: weird(textArb),
  },
  { requiredKeys: [] },
);

function checkResult(result: MapResult, shop: string): void {
  switch (result.kind) {
    case "unhandled":
      return;
    case "invalid":
    case "unkeyed":
      assert.equal(typeof result.reason, "string");
      assert.ok(result.reason.length > 0);
      // mapDelivery turns an exception into this reason: it must never be needed.
      assert.doesNotMatch(result.reason, /unexpectedly/);
      return;
    case "event": {
      const { event } = result;
      assert.equal(event.key, `${shop.trim().toLowerCase()}:${event.token}`);
      assert.ok(event.token.trim() !== "");
      assert.ok((CART_STATUSES as readonly string[]).includes(event.status));
      assert.ok(Number.isFinite(event.stamp.timeMs));
      for (const [name, value] of Object.entries(event.properties))
        assert.equal(typeof value, "string", name);
      return;
    }
    default:
      assert.fail(`unknown result ${JSON.stringify(result)}`);
  }
}

function mapAndCheck(topic: string, shop: string, body: Buffer, triggeredAt: string | undefined): void {
  let result: MapResult | undefined;
  assert.doesNotThrow(() => {
    result = mapDelivery({
      topic,
      shopDomain: shop,
      body,
      webhookId: "wh",
      triggeredAt,
      receivedAtMs: 1_800_000_000_000,
    });
  });
  assert.ok(result);
  checkResult(result, shop);
}

describe("mapping any input (fast-check)", () => {
  it("any JSON value, under any topic and shop: a result or a reason, never an exception", () => {
    fc.assert(
      fc.property(fc.jsonValue(), topicArb, shopArb, triggeredArb, (json, topic, shop, triggeredAt) => {
        mapAndCheck(topic, shop, Buffer.from(JSON.stringify(json) ?? ""), triggeredAt);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it("payload-shaped objects whose fields hold anything: a result or a reason", () => {
    fc.assert(
      fc.property(
        payloadFieldArb,
        fc.constantFrom(...MAPPED_TOPICS),
        shopArb,
        triggeredArb,
        (payload, topic, shop, triggeredAt) => {
          mapAndCheck(topic, shop, Buffer.from(JSON.stringify(payload)), triggeredAt);
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });

  it("arbitrary bytes, and Shopify's samples with bytes changed: a result or a reason", () => {
    const samples = loadFixtures().map((f) => f.body);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), topicArb, shopArb, (bytes, topic, shop) => {
        mapAndCheck(topic, shop, Buffer.from(bytes), undefined);
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...samples),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(...MAPPED_TOPICS),
        (sample, flips, topic) => {
          const body = Buffer.from(sample);
          for (const [at, byte] of flips) body[at % body.length] = byte;
          mapAndCheck(topic, SHOP, body, undefined);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

// ---- order and duplication do not matter ------------------------------------------------------------------

interface Delivery {
  readonly topic: string;
  readonly body: Buffer;
  readonly webhookId: string;
  readonly triggeredAt: string | undefined;
  readonly event: CartEvent;
  readonly mapped: MapResult;
}

// Equal instants written differently (Z, -05:00, +01:00) and near-equal ones, so ties and offsets both occur.
const TIMES = [
  "2026-11-01T10:00:00Z",
  "2026-11-01T05:00:00-05:00",
  "2026-11-01T11:00:00+01:00",
  "2026-11-01T10:00:00.500Z",
  "2026-11-01T12:00:00Z",
  "2026-11-02T00:00:00Z",
];
const AMOUNTS = ["0.00", "1.50", "10", "10.00", "99.99", "1234.5"];

const draftArb = fc.record({
  topic: fc.constantFrom(
    "carts/create",
    "carts/update",
    "checkouts/create",
    "checkouts/update",
    "checkouts/delete",
    "orders/create",
    "orders/paid",
  ),
  token: fc.constantFrom("t1", "t2", "t3"),
  updatedAt: fc.option(fc.constantFrom(...TIMES), { nil: undefined }),
  triggeredAt: fc.option(fc.constantFrom(...TIMES), { nil: undefined }),
  amount: fc.constantFrom(...AMOUNTS),
  discount: fc.constantFrom(...AMOUNTS),
  currency: fc.constantFrom("USD", "EUR", ""),
  email: fc.option(fc.constantFrom("a@example.com", "b@example.com"), { nil: undefined }),
  completed: fc.boolean(),
  lines: fc.integer({ min: 0, max: 3 }),
});
type Draft = typeof draftArb extends fc.Arbitrary<infer T> ? T : never;

function bodyOf(d: Draft): Record<string, unknown> {
  const money = (amount: string) => ({
    shop_money: { amount, currency_code: d.currency },
    presentment_money: { amount, currency_code: d.currency },
  });
  const lines = Array.from({ length: d.lines }, (_, i) => ({
    title: `Item ${i}`,
    quantity: i + 1,
    line_price: d.amount,
    line_price_set: money(d.amount),
    total_discount: d.discount,
    price: d.amount,
  }));
  const family = d.topic.split("/")[0];
  const updated = d.updatedAt === undefined ? {} : { updated_at: d.updatedAt };
  if (family === "carts") return { id: d.token, token: d.token, line_items: lines, ...updated };
  if (d.topic === "checkouts/delete") return { id: 1, cart_token: d.token, ...updated };
  const purchase = {
    email: d.email ?? null,
    presentment_currency: d.currency,
    currency: "USD",
    total_price: d.amount,
    subtotal_price: d.amount,
    total_tax: "0.00",
    total_discounts: d.discount,
    shipping_lines: [{ price: d.discount }],
    discount_codes: [{ code: `CODE${d.discount}` }],
    created_at: "2026-11-01T09:00:00Z",
    ...updated,
  };
  if (family === "orders") return { ...purchase, cart_token: d.token, checkout_token: `chk-${d.token}` };
  return {
    ...purchase,
    token: `chk-${d.token}`,
    cart_token: d.token,
    line_items: lines,
    abandoned_checkout_url: `https://shop.example/${d.token}/${d.amount}`,
    completed_at: d.completed ? (d.updatedAt ?? "2026-11-01T10:00:00Z") : null,
  };
}

/** Deliveries with distinct webhook ids (Shopify's), mapped once; a webhook id fixes a delivery's content. */
const deliveriesArb = fc
  .tuple(
    fc.array(draftArb, { minLength: 1, maxLength: 24 }),
    fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 24, maxLength: 24 }),
  )
  .map(([drafts, ids]): Delivery[] =>
    drafts.flatMap((d, i) => {
      const body = Buffer.from(JSON.stringify(bodyOf(d)));
      const webhookId = ids[i] ?? `id-${i}`;
      const mapped = mapDelivery({
        topic: d.topic,
        shopDomain: SHOP,
        body,
        webhookId,
        triggeredAt: d.triggeredAt,
        receivedAtMs: 1_800_000_000_000,
      });
      return mapped.kind === "event"
        ? [{ topic: d.topic, body, webhookId, triggeredAt: d.triggeredAt, event: mapped.event, mapped }]
        : [];
    }),
  )
  .filter((ds) => ds.length > 0);

/** An order of indices 0..n-1 in which every delivery appears at least once and some more than once. */
const scheduleArb = (n: number): fc.Arbitrary<number[]> =>
  fc.array(fc.nat({ max: n - 1 }), { maxLength: n }).chain((extra) => {
    const all = [...Array.from({ length: n }, (_, i) => i), ...extra];
    return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length });
  });

const scenarioArb = deliveriesArb.chain((deliveries) =>
  fc.tuple(fc.constant(deliveries), scheduleArb(deliveries.length), scheduleArb(deliveries.length)),
);

function fold(deliveries: readonly Delivery[], schedule: readonly number[]): Map<string, CartState> {
  const carts = new Map<string, CartState>();
  for (const i of schedule) {
    const event = (deliveries[i] as Delivery).event;
    carts.set(event.key, mergeEvent(carts.get(event.key), event).state);
  }
  return carts;
}

const valuesOf = (carts: Map<string, CartState>): Record<string, Record<string, string>> =>
  Object.fromEntries([...carts].map(([key, state]) => [key, currentValues(state)]));

/** What the oracle (independent of merge.ts) says each cart must end as. */
function oracleValues(deliveries: readonly Delivery[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [key, cart] of expectedCarts(deliveries.map((d) => d.event))) {
    const values: Record<string, string> = {};
    for (const [name, { value }] of Object.entries(cart.properties)) values[name] = value;
    values["hs_external_status"] = cart.status;
    out[key] = values;
  }
  return out;
}

describe("any delivery order, any duplication: the same carts (fast-check)", () => {
  it("mergeEvent folds to the same state in every order, equal to the newest-wins oracle", () => {
    fc.assert(
      fc.property(scenarioArb, ([deliveries, first, second]) => {
        const a = fold(deliveries, first);
        const b = fold(deliveries, second);
        assert.deepEqual(a, b);
        assert.deepEqual(valuesOf(a), oracleValues(deliveries));
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it("a real SQLite store ends with the same values to send, whatever the order, redeliveries and batching", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-props-"));
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          scenarioArb,
          fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 8 }),
          async ([deliveries, first, second], batchSizes) => {
            run++;
            const ingest = async (path: string, schedule: readonly number[]) => {
              const store = openSqliteStore(path);
              try {
                const seen = new Set<string>();
                let at = 0;
                for (let b = 0; at < schedule.length; b++) {
                  const size = batchSizes[b % batchSizes.length] ?? 1;
                  const group = schedule.slice(at, at + size).map((i) => deliveries[i] as Delivery);
                  at += size;
                  const items: IngestItem[] = group.map((d) => ({
                    webhookId: d.webhookId,
                    topic: d.topic,
                    shopDomain: SHOP,
                    receivedAtMs: 1_800_000_000_000,
                    headers: { "x-shopify-topic": d.topic },
                    body: d.body,
                    mapped: d.mapped,
                  }));
                  const outcomes = await store.ingestBatch(items);
                  for (const [k, d] of group.entries()) {
                    const outcome = outcomes[k];
                    if (seen.has(d.webhookId))
                      assert.equal(outcome, "duplicate", `redelivery of ${d.webhookId}`);
                    else
                      assert.ok(
                        outcome === "applied" || outcome === "unchanged",
                        `first delivery of ${d.webhookId}: ${outcome}`,
                      );
                    seen.add(d.webhookId);
                  }
                }
                const claimed = await store.claimDue({
                  limit: 1000,
                  nowMs: Date.now() + 1000,
                  leaseMs: 60_000,
                  owner: "props",
                });
                return Object.fromEntries(claimed.map((c) => [c.key, currentValues(c.state)]));
              } finally {
                await store.close();
              }
            };
            const a = await ingest(join(dir, `a-${run}.db`), first);
            const b = await ingest(join(dir, `b-${run}.db`), second);
            assert.deepEqual(a, b);
            assert.deepEqual(a, valuesOf(fold(deliveries, first)));
          },
        ),
        { numRuns: Math.max(10, Math.round(RUNS / 6)) },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
