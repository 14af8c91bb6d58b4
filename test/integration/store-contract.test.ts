import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it, type TestContext } from "node:test";
import pg from "pg";
import { StoreError } from "../../src/errors.ts";
import { openStore } from "../../src/store/open.ts";
import type { PostgresStore } from "../../src/store/postgres.ts";
import type { ClaimedCart, IngestItem, Store } from "../../src/store/store.ts";
import { mergeEvent, type CartState } from "../../src/sync/merge.ts";
import { mapDelivery } from "../../src/sync/mapping.ts";
import { storeFactories, usable } from "../helpers/stores.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * The store port's contract, run against every adapter (SQLite always; PostgreSQL when a server answers at
 * TEST_DATABASE_URL — see test/helpers/stores.ts). sqlite.ts is the reference: an adapter passes when it
 * behaves the same. Times are explicit epoch ms; nothing sleeps, except to let a lease run out (PostgreSQL
 * times leases by the database's clock, so those tests use short leases on the wall clock).
 */

const SHOP = "example.myshopify.com";
const T0 = Date.UTC(2030, 0, 1);
const LEASE_MS = 60_000;

interface CartDelivery {
  token: string;
  webhookId?: string | undefined;
  /** Event time (payload updated_at), epoch ms. */
  atMs: number;
  title?: string;
  price?: string;
  receivedAtMs?: number;
  topic?: string;
  replay?: boolean;
}

/** A signed-and-verified carts/update delivery as the webhook handler would hand it over. */
function cartDelivery(d: CartDelivery): IngestItem {
  const topic = d.topic ?? "carts/update";
  const body = Buffer.from(
    JSON.stringify({
      token: d.token,
      updated_at: new Date(d.atMs).toISOString(),
      line_items: [{ title: d.title ?? "Sock", quantity: 1, line_price: d.price ?? "10.00" }],
    }),
  );
  return delivery(topic, body, d.webhookId, d.receivedAtMs ?? d.atMs, d.replay);
}

interface CheckoutDelivery {
  token: string;
  webhookId: string;
  atMs: number;
  email?: string;
  firstName?: string;
  phone?: string;
  shop?: string;
  receivedAtMs?: number;
}

/** A checkouts/update naming a buyer (the contact lane's input). */
function checkoutDelivery(d: CheckoutDelivery): IngestItem {
  const body = Buffer.from(
    JSON.stringify({
      cart_token: d.token,
      updated_at: new Date(d.atMs).toISOString(),
      total_price: "42.00",
      email: d.email ?? null,
      customer: { first_name: d.firstName ?? "Ada", last_name: "Lovelace", phone: d.phone ?? null },
    }),
  );
  return delivery("checkouts/update", body, d.webhookId, d.receivedAtMs ?? d.atMs, undefined, d.shop);
}

function delivery(
  topic: string,
  body: Buffer,
  webhookId: string | undefined,
  receivedAtMs: number,
  replay?: boolean,
  shopDomain: string = SHOP,
): IngestItem {
  const headers: Record<string, string> = { "x-shopify-topic": topic, "x-shopify-shop-domain": shopDomain };
  if (webhookId !== undefined) headers["x-shopify-webhook-id"] = webhookId;
  const mapped = mapDelivery({
    topic,
    shopDomain,
    body,
    webhookId: webhookId ?? "",
    triggeredAt: undefined,
    receivedAtMs,
  });
  return { webhookId, topic, shopDomain, receivedAtMs, headers, body, mapped, ...(replay ? { replay } : {}) };
}

const keyOf = (token: string): string => `${SHOP}:${token}`;

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : JSON.stringify(error);

/** Property values only (stamps differ in nothing a caller can see, but compare values to keep it readable). */
function values(state: CartState): Record<string, string> {
  return Object.fromEntries(Object.entries(state.properties).map(([k, v]) => [k, v.value]));
}

/** Every due cart (claimed and released again), by key. */
async function peek(store: Store, nowMs: number): Promise<Map<string, ClaimedCart>> {
  const claims = await store.claimDue({ limit: 10_000, nowMs, leaseMs: 1, owner: "peek" });
  await store.release(
    claims.map((c) => c.key),
    "peek",
  );
  return new Map(claims.map((c) => [c.key, c]));
}

async function claimAll(store: Store, owner: string, nowMs: number): Promise<ClaimedCart[]> {
  return store.claimDue({ limit: 10_000, nowMs, leaseMs: LEASE_MS, owner });
}

/** Sends every due cart to "HubSpot" (hubspot id = "hs-" + token), so its buyer becomes due. */
async function sendCarts(store: Store, nowMs: number): Promise<void> {
  const claims = await claimAll(store, "carts", nowMs);
  await store.markSent(
    claims.map((c) => ({ key: c.key, version: c.version, hubspotId: `hs-${c.state.token}` })),
    "carts",
  );
}

/** Claims on the wall clock (PostgreSQL times leases by the database's clock, whatever `nowMs` says). */
const claimNow = (store: Store, owner: string): Promise<ClaimedCart[]> =>
  store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: LEASE_MS, owner });

const nonEmpty = <T>(list: T[]): T[] | undefined => (list.length > 0 ? list : undefined);

const claimContacts = (store: Store, owner: string, nowMs: number) =>
  store.claimContactsDue({ limit: 100, nowMs, leaseMs: LEASE_MS, owner });

/**
 * Every row of every table of the store at `url` (`sqlite:<path>` or `postgres://…`), read directly, as
 * text (bodies decoded as UTF-8): what the store really keeps.
 */
async function everythingKept(url: string): Promise<string> {
  const text = (rows: ReadonlyArray<Record<string, unknown>>): string =>
    JSON.stringify(
      rows.map((row) =>
        Object.fromEntries(
          Object.entries(row).map(([k, v]) => [
            k,
            v instanceof Uint8Array ? Buffer.from(v).toString("utf8") : v,
          ]),
        ),
      ),
    );
  if (url.startsWith("sqlite:")) {
    const db = new DatabaseSync(url.slice("sqlite:".length), { readOnly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
      return tables.map((t) => text(db.prepare(`SELECT * FROM "${String(t["name"])}"`).all())).join("\n");
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()",
    );
    const dumps: string[] = [];
    for (const { name } of tables.rows)
      dumps.push(text((await client.query(`SELECT * FROM "${name}"`)).rows));
    return dumps.join("\n");
  } finally {
    await client.end();
  }
}

const factories = await storeFactories();
after(() => Promise.all(factories.map((f) => f.cleanup())));

for (const factory of factories) {
  describe(`store contract: ${factory.name}`, () => {
    async function open(t: TestContext): Promise<Store | undefined> {
      if (!usable(t, factory)) return undefined;
      const store = await factory.open();
      t.after(() => store.close());
      return store;
    }

    async function replicas(t: TestContext, count: number): Promise<Store[] | undefined> {
      if (!usable(t, factory)) return undefined;
      const stores = await factory.openReplicas(count);
      t.after(() => Promise.all(stores.map((s) => s.close())));
      return stores;
    }

    describe("ingestBatch", () => {
      it("answers each outcome, in input order, within one batch", async (t) => {
        const store = await open(t);
        if (!store) return;
        const invalidBody = Buffer.from("not json {");
        const outcomes = await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 }),
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 }), // the same delivery again
          cartDelivery({ token: "a", webhookId: "w2", atMs: T0 - 1000 }), // older, same values
          delivery("carts/update", invalidBody, "w3", T0),
          delivery("carts/update", Buffer.from(JSON.stringify({ line_items: [] })), "w4", T0), // no token
          delivery("app/uninstalled", Buffer.from("{}"), "w5", T0),
          cartDelivery({ token: "b", webhookId: undefined, atMs: T0 }),
        ]);
        assert.deepEqual(outcomes, [
          "applied",
          "duplicate",
          "unchanged",
          "dead_lettered",
          "unkeyed",
          "ignored",
          "applied",
        ]);

        assert.deepEqual(await store.stats(T0), {
          pendingCarts: 2,
          oldestPendingSinceMs: T0,
          deadLetters: 1,
          carts: 2,
        });
      });

      it("recognises a redelivery in a later batch, whatever its outcome was", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 }),
          delivery("carts/update", Buffer.from(""), "w2", T0),
          delivery("app/uninstalled", Buffer.from("{}"), "w3", T0),
          delivery("carts/update", Buffer.from("{}"), "w4", T0),
        ]);
        const again = await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 + 5000, title: "Changed" }),
          delivery("carts/update", Buffer.from(""), "w2", T0),
          delivery("app/uninstalled", Buffer.from("{}"), "w3", T0),
          delivery("carts/update", Buffer.from("{}"), "w4", T0),
        ]);
        assert.deepEqual(again, ["duplicate", "duplicate", "duplicate", "duplicate"]);
        assert.equal(
          (await store.stats(T0)).deadLetters,
          1,
          "the redelivered unmappable body is not kept twice",
        );
        const cart = (await peek(store, T0)).get(keyOf("a"));
        assert.equal(cart?.state.properties["hs_cart_name"]?.value, "Sock", "a duplicate changes nothing");
      });

      it("applies a replay even though its webhook id was seen", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        const outcomes = await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 + 1, title: "Replayed", replay: true }),
        ]);
        assert.deepEqual(outcomes, ["applied"]);
        assert.equal(
          (await peek(store, T0)).get(keyOf("a"))?.state.properties["hs_cart_name"]?.value,
          "Replayed",
        );
      });

      it("keeps an unmappable delivery as a dead letter with its body and headers", async (t) => {
        const store = await open(t);
        if (!store) return;
        const body = Buffer.from([0x7b, 0x00, 0xff, 0x22]); // not JSON, not even UTF-8
        const item = delivery("checkouts/update", body, "w-bad", T0 + 7);
        assert.equal(item.mapped.kind, "invalid");
        assert.deepEqual(await store.ingestBatch([item]), ["dead_lettered"]);
        const [letter, ...rest] = await store.listDeadLetters({ limit: 10 });
        assert.equal(rest.length, 0);
        assert.ok(letter);
        assert.equal(letter.source, "mapping");
        assert.equal(letter.topic, "checkouts/update");
        assert.equal(letter.shopDomain, SHOP);
        assert.equal(letter.webhookId, "w-bad");
        assert.equal(letter.cartKey, undefined);
        assert.equal(letter.category, "UNMAPPABLE");
        assert.equal(letter.reason, item.mapped.kind === "invalid" ? item.mapped.reason : "");
        assert.equal(letter.createdAtMs, T0 + 7);
        assert.deepEqual(letter.headers, item.headers);
        assert.ok(letter.body?.equals(body), "the body is kept byte for byte");
        assert.equal((await store.stats(T0)).pendingCarts, 0);
      });

      it("merges deliveries of one cart in one batch like the same deliveries one batch each", async (t) => {
        const store = await open(t);
        const reference = await open(t);
        if (!store || !reference) return;
        const items = [
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 + 2000, title: "Two", receivedAtMs: T0 }),
          cartDelivery({
            token: "a",
            webhookId: "w2",
            atMs: T0 + 1000,
            title: "One",
            price: "5.00",
            receivedAtMs: T0 + 1,
          }),
          cartDelivery({
            token: "a",
            webhookId: "w3",
            atMs: T0 + 3000,
            title: "Three",
            price: "7.50",
            receivedAtMs: T0 + 2,
          }),
          cartDelivery({
            token: "a",
            webhookId: "w4",
            atMs: T0 + 3000,
            title: "Three",
            price: "7.50",
            receivedAtMs: T0 + 3,
          }),
        ];
        const together = await store.ingestBatch(items);
        const oneByOne: string[] = [];
        for (const item of items) oneByOne.push(...(await reference.ingestBatch([item])));
        assert.deepEqual(together, ["applied", "unchanged", "applied", "unchanged"]);
        assert.deepEqual(together, oneByOne);

        const [got, want] = [
          (await peek(store, T0)).get(keyOf("a")),
          (await peek(reference, T0)).get(keyOf("a")),
        ];
        assert.ok(got && want);
        assert.deepEqual(got.state, want.state);
        assert.equal(got.version, want.version);
        assert.equal(got.version, 2, "two deliveries changed what HubSpot would see");
        assert.deepEqual(values(got.state), {
          hs_external_cart_id: "a",
          hs_source_store: SHOP,
          hs_cart_name: "Three",
          hs_total_price: "7.50",
        });
        // The same join, computed directly.
        let expected: CartState | undefined;
        for (const item of items)
          if (item.mapped.kind === "event") expected = mergeEvent(expected, item.mapped.event).state;
        assert.deepEqual(got.state, expected);
        assert.equal((await store.stats(T0)).oldestPendingSinceMs, T0, "pending since the first change");
      });

      it("merges across batches: newest wins per property, status only moves forward", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 + 5000, title: "New" }),
        ]);
        assert.deepEqual(
          await store.ingestBatch([
            cartDelivery({ token: "a", webhookId: "w2", atMs: T0, title: "Old", price: "1.00" }),
          ]),
          ["unchanged"],
        );
        const checkout = delivery(
          "checkouts/update",
          Buffer.from(
            JSON.stringify({
              cart_token: "a",
              updated_at: new Date(T0 + 6000).toISOString(),
              total_price: "12.00",
            }),
          ),
          "w3",
          T0 + 6000,
        );
        assert.deepEqual(await store.ingestBatch([checkout]), ["applied"]);
        // A later cart event cannot take the status back to "open".
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w4", atMs: T0 + 9000, title: "Later" }),
        ]);
        const cart = (await peek(store, T0 + 9000)).get(keyOf("a"));
        assert.ok(cart);
        assert.equal(cart.state.status, "checkout");
        assert.equal(values(cart.state)["hs_cart_name"], "Later");
        assert.equal(
          values(cart.state)["hs_total_price"],
          "10.00",
          "the cart event at +9 s is newer than the checkout's",
        );
        assert.equal(cart.version, 3);
      });

      it("rolls back the whole group when one delivery cannot be stored", async (t) => {
        const store = await open(t);
        if (!store) return;
        const poisoned: IngestItem = {
          ...cartDelivery({ token: "b", webhookId: "w2", atMs: T0 }),
          // Headers are JSON text in both stores; a BigInt cannot be serialised.
          headers: { "x-bad": 1n } as unknown as Record<string, string>,
        };
        // (sqlite.ts throws synchronously here; an async wrapper makes that a rejection like any other.)
        await assert.rejects(
          async () => store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 }), poisoned]),
          StoreError,
        );
        assert.deepEqual(await store.stats(T0), {
          pendingCarts: 0,
          oldestPendingSinceMs: undefined,
          deadLetters: 0,
          carts: 0,
        });
        assert.deepEqual(
          await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]),
          ["applied"],
          "the delivery id was not kept either",
        );
      });

      it("rolls back the whole group when the database refuses a write", async (t) => {
        if (factory.name !== "postgres") {
          t.skip("SQLite stores any string as TEXT; there is no comparable write to refuse");
          return;
        }
        const store = await open(t);
        if (!store) return;
        // PostgreSQL TEXT cannot hold NUL: the final write fails after the carts were locked.
        const poisoned: IngestItem = {
          ...cartDelivery({ token: "b", webhookId: "w2", atMs: T0 }),
          topic: "carts/update\u0000",
        };
        await assert.rejects(
          store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 }), poisoned]),
          (error: unknown) => error instanceof StoreError && !error.retryable,
        );
        assert.deepEqual(await store.stats(T0), {
          pendingCarts: 0,
          oldestPendingSinceMs: undefined,
          deadLetters: 0,
          carts: 0,
        });
        assert.deepEqual(await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]), [
          "applied",
        ]);
      });
    });

    describe("sending", () => {
      it("summarises what is pending, due and backing off", async (t) => {
        const store = await open(t);
        if (!store) return;
        assert.deepEqual(await store.pendingSummary(T0, 100), {
          dueCount: 0,
          oldestDueSinceMs: undefined,
          nextRetryAtMs: undefined,
        });
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0, receivedAtMs: T0 + 100 }),
          cartDelivery({ token: "b", webhookId: "w2", atMs: T0, receivedAtMs: T0 + 200 }),
        ]);
        assert.deepEqual(await store.pendingSummary(T0 + 300, 100), {
          dueCount: 2,
          oldestDueSinceMs: T0 + 100,
          nextRetryAtMs: undefined,
        });

        const [claimed] = await store.claimDue({ limit: 1, nowMs: T0 + 300, leaseMs: LEASE_MS, owner: "r1" });
        assert.equal(claimed?.key, keyOf("a"));
        assert.deepEqual(await store.pendingSummary(T0 + 300, 100), {
          dueCount: 1,
          oldestDueSinceMs: T0 + 200,
          nextRetryAtMs: undefined,
        });

        await store.markFailed([keyOf("a")], "r1", { nextAttemptAtMs: T0 + 5000, error: "503" });
        assert.deepEqual(await store.pendingSummary(T0 + 300, 100), {
          dueCount: 1,
          oldestDueSinceMs: T0 + 200,
          nextRetryAtMs: T0 + 5000,
        });
        assert.deepEqual(await store.pendingSummary(T0 + 5000, 100), {
          dueCount: 2,
          oldestDueSinceMs: T0 + 100,
          nextRetryAtMs: undefined,
        });
        // The count stops at the cap: the flusher only asks whether a full batch is due.
        assert.equal((await store.pendingSummary(T0 + 5000, 1)).dueCount, 1);
        assert.equal((await store.pendingSummary(T0 + 5000, 1)).oldestDueSinceMs, T0 + 100);
        assert.deepEqual(await store.stats(T0 + 300), {
          pendingCarts: 2,
          oldestPendingSinceMs: T0 + 100,
          deadLetters: 0,
          carts: 2,
        });
      });

      it("claims up to the limit, oldest change first, with what the sender needs", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          cartDelivery({ token: "c", webhookId: "w1", atMs: T0, receivedAtMs: T0 + 3000 }),
          cartDelivery({ token: "a", webhookId: "w2", atMs: T0, receivedAtMs: T0 + 1000 }),
          cartDelivery({ token: "b", webhookId: "w3", atMs: T0, receivedAtMs: T0 + 2000 }),
        ]);
        const first = await store.claimDue({ limit: 2, nowMs: T0 + 4000, leaseMs: LEASE_MS, owner: "r1" });
        assert.deepEqual(first.map((c) => c.key).sort(), [keyOf("a"), keyOf("b")]);
        const a = first.find((c) => c.key === keyOf("a"));
        assert.equal(a?.version, 1);
        assert.equal(a?.attempts, 0);
        assert.equal(a?.hubspotId, undefined);
        assert.equal(a?.state.key, keyOf("a"));
        assert.equal(values(a.state)["hs_cart_name"], "Sock");

        const rest = await store.claimDue({ limit: 2, nowMs: T0 + 4000, leaseMs: LEASE_MS, owner: "r1" });
        assert.deepEqual(
          rest.map((c) => c.key),
          [keyOf("c")],
        );
        assert.deepEqual(
          await store.claimDue({ limit: 2, nowMs: T0 + 4000, leaseMs: LEASE_MS, owner: "r1" }),
          [],
        );
      });

      it("marks a whole batch sent, in the order given, but the carts whose claims it does not hold", async (t) => {
        const store = await open(t);
        if (!store) return;
        const tokens = Array.from({ length: 62 }, (_, i) => `m${String(i).padStart(2, "0")}`);
        await store.ingestBatch(
          tokens.map((token, i) =>
            cartDelivery({ token, webhookId: `w-${token}`, atMs: T0, receivedAtMs: T0 + i }),
          ),
        );
        // The 60 oldest are claimed; the two newest are not, and are marked among them (in later chunks).
        const claimed = await store.claimDue({ limit: 60, nowMs: T0 + 100, leaseMs: LEASE_MS, owner: "r1" });
        assert.equal(claimed.length, 60);
        const sent = claimed.map((c) => ({
          key: c.key,
          version: c.version,
          hubspotId: `hs-${c.state.token}`,
        }));
        const unheld = [keyOf("m60"), keyOf("m61")].map((key) => ({ key, version: 1, hubspotId: undefined }));
        const asked = [...sent.slice(0, 30), unheld[0]!, ...sent.slice(30), unheld[1]!];
        assert.deepEqual(await store.markSent(asked, "r1"), sent);
        const due = await peek(store, T0 + 200);
        assert.deepEqual([...due.keys()].sort(), [keyOf("m60"), keyOf("m61")]);
      });

      it("keeps a claimed cart from other owners until its lease runs out", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        assert.equal(
          (await store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: 2000, owner: "dead" })).length,
          1,
        );
        assert.deepEqual(await claimNow(store, "r2"), []);

        // The holder died: once the lease has run out, another owner takes the cart over.
        const taken = await waitFor(async () => nonEmpty(await claimNow(store, "r2")), {
          what: "the lease to run out",
        });
        assert.deepEqual(
          taken.map((c) => c.key),
          [keyOf("a")],
        );
        // The late holder's release and failure no longer touch r2's claim.
        await store.release([keyOf("a")], "dead");
        await store.markFailed([keyOf("a")], "dead", { nextAttemptAtMs: T0 + 99_000, error: "late" });
        assert.deepEqual(await claimNow(store, "r3"), []);
        assert.equal((await store.pendingSummary(T0 + 1500, 100)).nextRetryAtMs, undefined);
      });

      it("fences write-backs: a sender whose lease ran out marks nothing; the current state is sent again", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        const [late] = await store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: 200, owner: "late" });
        assert.equal(late?.version, 1);
        // Its lease runs out while its batch is in flight; a newer version arrives, another sender takes over.
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w2", atMs: T0 + 1, title: "Boots", receivedAtMs: T0 + 1 }),
        ]);
        const [fresh] = await waitFor(async () => nonEmpty(await claimNow(store, "fresh")), {
          what: "the lease to run out",
        });
        assert.ok(fresh);
        assert.equal(fresh.version, 2);
        const renew = { nowMs: Date.now(), leaseMs: LEASE_MS };
        assert.deepEqual(
          await store.renewClaims([late.key], "late", renew),
          [],
          "the late renewal finds it lost",
        );
        assert.deepEqual(await store.renewClaims([fresh.key], "fresh", renew), [fresh.key]);
        const newer = { key: fresh.key, version: fresh.version, hubspotId: "hs-1" };
        assert.deepEqual(await store.markSent([newer], "fresh"), [newer]);
        assert.equal((await store.stats(T0)).pendingCarts, 0);

        // The late sender's answer comes after (its older write may have landed last in HubSpot): nothing is
        // marked, and the cart is pending again with the newest state, to be sent once more.
        assert.deepEqual(
          await store.markSent([{ key: late.key, version: 1, hubspotId: "hs-1" }], "late"),
          [],
        );
        const [again] = await claimNow(store, "r3");
        assert.ok(again);
        assert.ok(again.version > fresh.version, "a new version");
        assert.equal(values(again.state)["hs_cart_name"], "Boots");
        assert.equal(again.hubspotId, "hs-1");
        // Nor can the late sender dead-letter, fail or release it.
        await store.markRejected(
          [{ key: late.key, version: 1, reason: "late", category: undefined }],
          "late",
          T0,
        );
        await store.markFailed([late.key], "late", { nextAttemptAtMs: T0 + 99_000, error: "late" });
        await store.release([late.key], "late");
        assert.deepEqual(await store.listDeadLetters({ limit: 10 }), []);
        assert.deepEqual(await claimNow(store, "r4"), [], "still r3's claim");
        // r3's answer counts; the late failure (a write that may still have landed) made the cart pending again.
        assert.deepEqual(
          await store.markSent([{ key: again.key, version: again.version, hubspotId: undefined }], "r3"),
          [{ key: again.key, version: again.version, hubspotId: undefined }],
        );
        assert.equal((await store.stats(T0)).pendingCarts, 1);
      });

      it("does not claim a cart that is backing off until its next attempt is due", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        await claimAll(store, "r1", T0);
        await store.markFailed([keyOf("a")], "r1", {
          nextAttemptAtMs: T0 + 10_000,
          error: "HubSpot answered 502",
        });
        assert.deepEqual(await claimAll(store, "r1", T0 + 9_999), []);
        const [again] = await claimAll(store, "r1", T0 + 10_000);
        assert.equal(again?.attempts, 1);
        await store.markFailed([keyOf("a")], "r1", {
          nextAttemptAtMs: T0 + 30_000,
          error: "HubSpot answered 502",
        });
        const [third] = await claimAll(store, "r1", T0 + 30_000);
        assert.equal(third?.attempts, 2, "each failure counts one attempt");
      });

      it("marks sent: clears what HubSpot has, keeps a change that arrived meanwhile pending", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        const [claimed] = await claimAll(store, "r1", T0);
        assert.ok(claimed);
        // A change arrives while the batch is in flight.
        assert.deepEqual(
          await store.ingestBatch([
            cartDelivery({ token: "a", webhookId: "w2", atMs: T0 + 1, title: "Boots", receivedAtMs: T0 + 5 }),
          ]),
          ["applied"],
        );
        await store.markSent([{ key: claimed.key, version: claimed.version, hubspotId: "hs-1" }], "r1");
        assert.equal((await store.stats(T0)).pendingCarts, 1, "version 2 is not in HubSpot yet");
        const [next] = await claimAll(store, "r2", T0 + 10);
        assert.ok(next);
        assert.equal(next.version, 2);
        assert.equal(next.hubspotId, "hs-1");
        assert.equal(values(next.state)["hs_cart_name"], "Boots");

        await store.markSent([{ key: next.key, version: next.version, hubspotId: undefined }], "r2");
        assert.deepEqual(await store.stats(T0), {
          pendingCarts: 0,
          oldestPendingSinceMs: undefined,
          deadLetters: 0,
          carts: 1,
        });
        await store.markPending(next.key, T0 + 20);
        const [pendingAgain] = await claimAll(store, "r3", T0 + 20);
        assert.equal(pendingAgain?.hubspotId, "hs-1", "an upsert without an id keeps the known one");
      });

      it("marks sent: resets attempts and the next attempt time", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        await claimAll(store, "r1", T0);
        await store.markFailed([keyOf("a")], "r1", { nextAttemptAtMs: T0 + 1000, error: "timeout" });
        const [claimed] = await claimAll(store, "r1", T0 + 1000);
        assert.equal(claimed?.attempts, 1);
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w2", atMs: T0 + 1, title: "Boots" }),
        ]);
        await store.markSent([{ key: keyOf("a"), version: 1, hubspotId: "hs-1" }], "r1");
        const [next] = await claimAll(store, "r1", T0 + 1000);
        assert.equal(next?.attempts, 0);
        assert.deepEqual(await store.pendingSummary(T0, 100), {
          dueCount: 0,
          oldestDueSinceMs: undefined,
          nextRetryAtMs: undefined,
        });
      });

      it("releases claims without counting an attempt, only for their owner", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "w1", atMs: T0 }),
          cartDelivery({ token: "b", webhookId: "w2", atMs: T0 }),
        ]);
        await claimAll(store, "r1", T0);
        await store.release([keyOf("a"), keyOf("b")], "someone-else");
        assert.deepEqual(await claimAll(store, "r2", T0), []);
        await store.release([keyOf("a"), keyOf("b")], "r1");
        const again = await claimAll(store, "r2", T0);
        assert.deepEqual(again.map((c) => c.key).sort(), [keyOf("a"), keyOf("b")]);
        assert.deepEqual(
          again.map((c) => c.attempts),
          [0, 0],
        );
      });

      it("dead-letters a rejected cart with its newest delivery and stops sending it", async (t) => {
        const store = await open(t);
        if (!store) return;
        const first = cartDelivery({ token: "a", webhookId: "w1", atMs: T0 });
        const newest = cartDelivery({
          token: "a",
          webhookId: "w2",
          atMs: T0 + 1,
          title: "Boots",
          receivedAtMs: T0 + 1,
        });
        const older = cartDelivery({
          token: "a",
          webhookId: "w3",
          atMs: T0 - 1,
          title: "Old",
          receivedAtMs: T0 + 2,
        });
        await store.ingestBatch([first, newest, older]);
        await store.ingestBatch([cartDelivery({ token: "b", webhookId: "w4", atMs: T0 })]);
        const claims = await claimAll(store, "r1", T0 + 5);
        const a = claims.find((c) => c.key === keyOf("a"));
        assert.ok(a);
        await store.markRejected(
          [
            {
              key: a.key,
              version: a.version,
              reason: "Property values were not valid",
              category: "VALIDATION_ERROR",
            },
            { key: keyOf("missing"), version: 1, reason: "nothing to keep", category: undefined },
          ],
          "r1",
          T0 + 50,
        );
        const letters = await store.listDeadLetters({ limit: 10 });
        assert.equal(letters.length, 1, "a cart the store does not know leaves no dead letter");
        const [letter] = letters;
        assert.ok(letter);
        assert.equal(letter.source, "hubspot");
        assert.equal(letter.cartKey, keyOf("a"));
        assert.equal(letter.webhookId, "w2", "the newest delivery that changed the cart");
        assert.equal(letter.topic, "carts/update");
        assert.equal(letter.shopDomain, SHOP);
        assert.equal(letter.reason, "Property values were not valid");
        assert.equal(letter.category, "VALIDATION_ERROR");
        assert.equal(letter.createdAtMs, T0 + 50);
        assert.deepEqual(letter.headers, newest.headers);
        assert.ok(letter.body?.equals(newest.body));

        assert.deepEqual(await store.stats(T0), {
          pendingCarts: 1,
          oldestPendingSinceMs: T0,
          deadLetters: 1,
          carts: 2,
        });
        await store.release([keyOf("b")], "r1");
        assert.deepEqual(
          (await claimAll(store, "r2", T0 + 100)).map((c) => c.key),
          [keyOf("b")],
          "a is no longer pending",
        );
      });

      it("keeps a rejected cart pending when it changed after the claim", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        const [claimed] = await claimAll(store, "r1", T0);
        assert.ok(claimed);
        const fix = cartDelivery({
          token: "a",
          webhookId: "w2",
          atMs: T0 + 1,
          title: "Fixed",
          receivedAtMs: T0 + 1,
        });
        await store.ingestBatch([fix]);
        await store.markRejected(
          [{ key: claimed.key, version: claimed.version, reason: "bad", category: undefined }],
          "r1",
          T0 + 2,
        );
        const [letter] = await store.listDeadLetters({ limit: 10 });
        assert.equal(letter?.webhookId, "w2");
        assert.equal(letter?.category, undefined);
        const [next] = await claimAll(store, "r2", T0 + 3);
        assert.equal(next?.version, 2);
        assert.equal(values(next.state)["hs_cart_name"], "Fixed");
      });
    });

    describe("dead letters and housekeeping", () => {
      async function fiveDeadLetters(store: Store): Promise<number[]> {
        await store.ingestBatch(
          [1, 2, 3, 4, 5].map((n) => delivery("orders/create", Buffer.from(`bad ${n}`), `w${n}`, T0 + n)),
        );
        return (await store.listDeadLetters({ limit: 100 })).map((l) => l.id);
      }

      it("lists dead letters in pages, oldest first", async (t) => {
        const store = await open(t);
        if (!store) return;
        const ids = await fiveDeadLetters(store);
        assert.equal(ids.length, 5);
        assert.deepEqual(
          [...ids].sort((x, y) => x - y),
          ids,
        );
        const pages: number[][] = [];
        let afterId: number | undefined;
        for (;;) {
          const page = await store.listDeadLetters({
            limit: 2,
            ...(afterId === undefined ? {} : { afterId }),
          });
          if (page.length === 0) break;
          pages.push(page.map((l) => l.id));
          afterId = page.at(-1)?.id;
        }
        assert.deepEqual(pages, [ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
        const [first] = await store.listDeadLetters({ limit: 1 });
        assert.equal(first?.body?.toString(), "bad 1");
      });

      it("gets dead letters by id in the order asked, skipping unknown ids", async (t) => {
        const store = await open(t);
        if (!store) return;
        const [a, , c] = await fiveDeadLetters(store);
        assert.ok(a !== undefined && c !== undefined);
        const got = await store.getDeadLetters([c, 999_999, a]);
        assert.deepEqual(
          got.map((l) => l.id),
          [c, a],
        );
        assert.deepEqual(
          got.map((l) => l.body?.toString()),
          ["bad 3", "bad 1"],
        );
        assert.deepEqual(await store.getDeadLetters([]), []);
      });

      it("deletes dead letters by id", async (t) => {
        const store = await open(t);
        if (!store) return;
        const ids = await fiveDeadLetters(store);
        await store.deleteDeadLetters([ids[0] as number, ids[2] as number, 999_999]);
        assert.deepEqual(
          (await store.listDeadLetters({ limit: 10 })).map((l) => l.id),
          [ids[1], ids[3], ids[4]],
        );
        assert.equal((await store.stats(T0)).deadLetters, 3);
      });

      it("marks a cart pending again, as a new version", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        const [claimed] = await claimAll(store, "r1", T0);
        assert.ok(claimed);
        await store.markSent([{ key: claimed.key, version: claimed.version, hubspotId: "hs-1" }], "r1");
        assert.equal((await store.stats(T0)).pendingCarts, 0);
        await store.markPending(claimed.key, T0 + 500);
        await store.markPending(keyOf("unknown"), T0 + 500); // nothing to do, no error
        assert.deepEqual(await store.pendingSummary(T0 + 600, 100), {
          dueCount: 1,
          oldestDueSinceMs: T0 + 500,
          nextRetryAtMs: undefined,
        });
        const [again] = await claimAll(store, "r1", T0 + 600);
        assert.equal(again?.version, claimed.version + 1);
        assert.deepEqual(again.state, claimed.state);
      });

      it("purges delivery ids and dead letters older than the cut-off", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          cartDelivery({ token: "a", webhookId: "old", atMs: T0, receivedAtMs: T0 }),
          delivery("carts/update", Buffer.from("x"), "old-bad", T0),
          cartDelivery({ token: "b", webhookId: "new", atMs: T0, receivedAtMs: T0 + 10_000 }),
          delivery("carts/update", Buffer.from("y"), "new-bad", T0 + 10_000),
        ]);
        assert.equal(
          await store.purgeExpired(T0 + 5000),
          4,
          "two delivery ids, one dead letter and the old cart's kept body",
        );
        assert.equal(await store.purgeExpired(T0 + 5000), 0);
        const [letter, ...none] = await store.listDeadLetters({ limit: 10 });
        assert.equal(none.length, 0);
        assert.equal(letter?.webhookId, "new-bad");
        assert.deepEqual(
          await store.ingestBatch([
            cartDelivery({ token: "a", webhookId: "old", atMs: T0 }),
            cartDelivery({ token: "b", webhookId: "new", atMs: T0 }),
          ]),
          ["unchanged", "duplicate"],
          "a purged id is no longer recognised; carts are kept",
        );
        assert.equal((await store.stats(T0)).carts, 2);
      });

      it("recovers when the server drops its connections, failing only with retryable errors", async (t) => {
        const drop = factory.dropConnections;
        if (drop === undefined) {
          t.skip("an embedded database has no connections to lose");
          return;
        }
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        // Connections are dropped while ingests are queued and in flight on every pooled connection.
        const load = Array.from({ length: 200 }, (_, i) =>
          store.ingestBatch([cartDelivery({ token: "a", webhookId: `x${i}`, atMs: T0 + i })]).then(
            () => undefined,
            (error: unknown) => error,
          ),
        );
        assert.ok((await drop()) > 0, "the store had connections");
        const failures = (await Promise.all(load)).filter((e) => e !== undefined);
        for (const error of failures)
          assert.ok(error instanceof StoreError && error.retryable, messageOf(error));
        t.diagnostic(`${failures.length} of 200 ingests failed while the connections went`);
        // The pool replaces what it lost; a dead connection fails at most one more call.
        let recovered = false;
        for (let i = 0; i < 10 && !recovered; i++) {
          recovered = await store.ping().then(
            () => true,
            (error: unknown) => {
              assert.ok(error instanceof StoreError && error.retryable, messageOf(error));
              return false;
            },
          );
        }
        assert.ok(recovered, "the store works again");
        assert.deepEqual(await store.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]), [
          "duplicate",
        ]);
        assert.equal((await store.stats(T0)).carts, 1);
      });

      it("opens through DATABASE_URL, and keeps what it stored across reopening", async (t) => {
        if (!usable(t, factory)) return;
        const url = await factory.freshUrl();
        const first = await openStore(url);
        await first.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        await first.close();
        const second = await openStore(url); // migrations find nothing to do
        t.after(() => second.close());
        assert.deepEqual(
          await second.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]),
          ["duplicate"],
        );
        assert.equal((await second.stats(T0)).pendingCarts, 1);
      });

      it("answers ping while open, and fails with StoreError after close", async (t) => {
        if (!usable(t, factory)) return;
        const store = await factory.open();
        await store.ping();
        await store.close();
        await store.close(); // closing twice is harmless
        await assert.rejects(store.ping(), StoreError);
      });
    });

    describe("contact links", () => {
      it("links the newest buyer once the cart is in HubSpot, and leases it", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w1", atMs: T0 + 1000, email: "old@example.com" }),
          checkoutDelivery({
            token: "a",
            webhookId: "w2",
            atMs: T0 + 2000,
            email: "ada@example.com",
            phone: "+4412",
          }),
          checkoutDelivery({ token: "a", webhookId: "w3", atMs: T0 + 1500, email: "stale@example.com" }),
          cartDelivery({ token: "b", webhookId: "w4", atMs: T0 }),
        ]);
        assert.deepEqual(await claimContacts(store, "c1", T0), [], "the cart is not in HubSpot yet");
        await sendCarts(store, T0);
        const [link, ...none] = await claimContacts(store, "c1", T0);
        assert.equal(none.length, 0, "a cart without a buyer has no link");
        assert.deepEqual(link, {
          cartKey: keyOf("a"),
          cartId: "hs-a",
          version: 2,
          attempts: 0,
          contact: { email: "ada@example.com", firstname: "Ada", lastname: "Lovelace", phone: "+4412" },
        });
        assert.deepEqual(await claimContacts(store, "c2", T0 + 1), [], "leased to c1");
        await store.releaseContacts([keyOf("a")], "c1");
        const claimShort = (owner: string) =>
          store.claimContactsDue({ limit: 100, nowMs: Date.now(), leaseMs: 1500, owner });
        assert.equal((await claimShort("c1")).length, 1);
        assert.deepEqual(await claimShort("c2"), [], "leased to c1");
        await waitFor(async () => (await claimShort("c2")).length === 1, {
          what: "until the lease runs out",
        });
      });

      it("erases a sent buyer and then the kept delivery; a newer buyer is linked again", async (t) => {
        const store = await open(t);
        if (!store) return;
        const subject = { shopDomain: SHOP, email: "ada@example.com" };
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w1", atMs: T0, email: "ada@example.com" }),
        ]);
        await sendCarts(store, T0);
        assert.deepEqual(
          await store.describeSubject(subject),
          { carts: 0, contacts: 1, deadLetters: 0, pendingDeliveries: 1 },
          "the delivery is kept while its buyer waits",
        );
        const [link] = await claimContacts(store, "c1", T0);
        assert.ok(link);
        await store.markContactsSent([{ cartKey: link.cartKey, version: link.version }], "c1");
        assert.deepEqual(await store.describeSubject(subject), {
          carts: 0,
          contacts: 0,
          deadLetters: 0,
          pendingDeliveries: 0,
        });
        assert.deepEqual(await claimContacts(store, "c1", T0), []);

        // An older buyer cannot come back; a newer one (even the same person again after erasure) can.
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w2", atMs: T0 - 1, email: "old@example.com" }),
        ]);
        assert.deepEqual(await claimContacts(store, "c1", T0), []);
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w3", atMs: T0 + 1, email: "ada@example.com" }),
        ]);
        const [again] = await claimContacts(store, "c1", T0);
        assert.equal(again?.version, 2);
        assert.equal(again.contact.email, "ada@example.com");
      });

      it("counts failed attempts and releases, only for the owner", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w1", atMs: T0, email: "ada@example.com" }),
        ]);
        await sendCarts(store, T0);
        await claimContacts(store, "c1", T0);
        await store.markContactsFailed([keyOf("a")], "someone-else", {
          nextAttemptAtMs: T0 + 99_000,
          error: "x",
        });
        await store.markContactsFailed([keyOf("a")], "c1", {
          nextAttemptAtMs: T0 + 5000,
          error: "HubSpot answered 502",
        });
        assert.deepEqual(await claimContacts(store, "c1", T0 + 4999), []);
        const [retry] = await claimContacts(store, "c1", T0 + 5000);
        assert.equal(retry?.attempts, 1);
        await store.releaseContacts([keyOf("a")], "someone-else");
        assert.deepEqual(await claimContacts(store, "c2", T0 + 5000), []);
        await store.releaseContacts([keyOf("a")], "c1");
        const [released] = await claimContacts(store, "c2", T0 + 5000);
        assert.equal(released?.attempts, 1, "a release counts no attempt");
      });

      it("dead-letters a rejected buyer with the cart's newest delivery and forgets it", async (t) => {
        const store = await open(t);
        if (!store) return;
        const checkout = checkoutDelivery({
          token: "a",
          webhookId: "w1",
          atMs: T0,
          email: "ada@example.com",
        });
        await store.ingestBatch([checkout]);
        await sendCarts(store, T0);
        const [link] = await claimContacts(store, "c1", T0);
        assert.ok(link);
        await store.markContactsRejected(
          [
            {
              cartKey: link.cartKey,
              version: link.version,
              reason: "Email is invalid",
              category: "VALIDATION_ERROR",
            },
          ],
          "c1",
          T0 + 10,
        );
        const [letter] = await store.listDeadLetters({ limit: 10 });
        assert.ok(letter);
        assert.equal(letter.source, "hubspot");
        assert.equal(letter.cartKey, keyOf("a"));
        assert.equal(letter.reason, "contact: Email is invalid");
        assert.equal(letter.category, "VALIDATION_ERROR");
        assert.equal(letter.webhookId, "w1");
        assert.equal(letter.createdAtMs, T0 + 10);
        assert.ok(letter.body?.equals(checkout.body));
        assert.deepEqual(await claimContacts(store, "c1", T0 + LEASE_MS + 1), []);
        const held = await store.describeSubject({ shopDomain: SHOP, email: "ada@example.com" });
        assert.deepEqual(held, { carts: 0, contacts: 0, deadLetters: 1, pendingDeliveries: 0 });
      });

      it("erases one customer's data on customers/redact, by e-mail or phone", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w1", atMs: T0, email: "ada@example.com" }),
          checkoutDelivery({
            token: "b",
            webhookId: "w2",
            atMs: T0,
            email: "bob@example.com",
            phone: "+4477",
          }),
          delivery("checkouts/update", Buffer.from('{"email": "ADA@Example.com", "oops"'), "w3", T0),
          checkoutDelivery({
            token: "c",
            webhookId: "w4",
            atMs: T0,
            email: "ada@example.com",
            shop: "other.myshopify.com",
          }),
        ]);
        const ada = { shopDomain: SHOP, email: "Ada@Example.com" };
        assert.deepEqual(await store.describeSubject(ada), {
          carts: 0,
          contacts: 1,
          deadLetters: 1,
          pendingDeliveries: 1,
        });
        assert.deepEqual(await store.redact(ada), {
          carts: 0,
          contacts: 1,
          deadLetters: 1,
          pendingDeliveries: 1,
        });
        assert.deepEqual(await store.describeSubject(ada), {
          carts: 0,
          contacts: 0,
          deadLetters: 0,
          pendingDeliveries: 0,
        });
        const otherShop = { shopDomain: "other.myshopify.com", email: "ada@example.com" };
        assert.equal(
          (await store.describeSubject(otherShop)).contacts,
          1,
          "another shop's customer is not touched",
        );

        const bob = { shopDomain: SHOP, phone: "+4477" };
        assert.deepEqual(await store.redact(bob), {
          carts: 0,
          contacts: 1,
          deadLetters: 0,
          pendingDeliveries: 1,
        });
        assert.equal(
          (await store.stats(T0)).carts,
          3,
          "carts themselves stay (their HubSpot records are not ours)",
        );
      });

      it("matches a customer's e-mail (any case) and phone exactly, never inside a longer one", async (t) => {
        const store = await open(t);
        if (!store) return;
        const checkout = (token: string, email: string, phone?: string) =>
          checkoutDelivery({ token, webhookId: `w-${token}`, atMs: T0, email, ...(phone ? { phone } : {}) });
        const broken = (id: string, text: string) =>
          delivery("checkouts/update", Buffer.from(`{"note": "${text}", "oops"`), id, T0);
        await store.ingestBatch([
          checkout("ann", "ann@x.com", "+4477"),
          checkout("joann", "joann@x.com", "+44771"),
          checkout("au", "ann@x.com.au"),
          checkout("plus", "x+ann@x.com"),
          broken("dl-ann", "write to Ann@X.com."),
          broken("dl-joann", "write to JOANN@x.com"),
          broken("dl-phone", "call 0+44770 or +447712"),
        ]);
        const ann = { shopDomain: SHOP, email: "ann@x.com" };
        assert.deepEqual(await store.describeSubject(ann), {
          carts: 0,
          contacts: 1,
          deadLetters: 1,
          pendingDeliveries: 1,
        });
        assert.deepEqual(await store.redact(ann), {
          carts: 0,
          contacts: 1,
          deadLetters: 1,
          pendingDeliveries: 1,
        });
        for (const email of ["joann@x.com", "ann@x.com.au", "x+ann@x.com"]) {
          const held = await store.describeSubject({ shopDomain: SHOP, email });
          assert.equal(held.contacts, 1, `${email}'s buyer is kept`);
          assert.equal(held.pendingDeliveries, 1, `${email}'s delivery is kept`);
        }
        assert.equal(
          (await store.describeSubject({ shopDomain: SHOP, email: "joann@x.com" })).deadLetters,
          1,
        );
        assert.deepEqual(await store.redact({ shopDomain: SHOP, phone: "+4477" }), {
          carts: 0,
          contacts: 0,
          deadLetters: 0,
          pendingDeliveries: 0,
        });
        assert.deepEqual((await store.listDeadLetters({ limit: 10 })).map((l) => l.webhookId).sort(), [
          "dl-joann",
          "dl-phone",
        ]);
      });

      it("erases everything of a shop on shop/redact", async (t) => {
        const store = await open(t);
        if (!store) return;
        await store.ingestBatch([
          checkoutDelivery({ token: "a", webhookId: "w1", atMs: T0, email: "ada@example.com" }),
          cartDelivery({ token: "b", webhookId: "w2", atMs: T0 }),
          delivery("carts/update", Buffer.from("nope"), "w3", T0),
          checkoutDelivery({
            token: "c",
            webhookId: "w4",
            atMs: T0,
            email: "ada@example.com",
            shop: "other.myshopify.com",
          }),
        ]);
        await store.reconcile.learnCheckoutLinks(
          [
            { shopDomain: SHOP, checkoutToken: "chk-a", cartToken: "a" },
            { shopDomain: "other.myshopify.com", checkoutToken: "chk-c", cartToken: "c" },
          ],
          T0,
        );
        const missed = (shopDomain: string) =>
          ({ topic: "orders", cartKey: `${shopDomain}:x`, updatedAtMs: T0, foundAtMs: T0 }) as const;
        await store.reconcile.recordMissed(SHOP, missed(SHOP));
        await store.reconcile.recordMissed("other.myshopify.com", missed("other.myshopify.com"));
        const shopsSeen = async () =>
          ((await store.activity?.shops(Date.now())) ?? []).map((s) => s.shopDomain).sort();
        assert.deepEqual(await shopsSeen(), ["other.myshopify.com", SHOP].sort());
        const shop = { shopDomain: SHOP };
        assert.deepEqual(await store.describeSubject(shop), {
          carts: 2,
          contacts: 1,
          deadLetters: 1,
          pendingDeliveries: 2,
        });
        assert.deepEqual(await store.redact(shop), {
          carts: 2,
          contacts: 1,
          deadLetters: 1,
          pendingDeliveries: 0,
        });
        assert.deepEqual(await store.describeSubject(shop), {
          carts: 0,
          contacts: 0,
          deadLetters: 0,
          pendingDeliveries: 0,
        });
        // Nor what the shop's buyers did: their checkout tokens, the console's delivery counts.
        assert.deepEqual(await store.reconcile.cartTokensOf(SHOP, ["chk-a"]), new Map());
        assert.deepEqual(
          await store.reconcile.cartTokensOf("other.myshopify.com", ["chk-c"]),
          new Map([["chk-c", "c"]]),
        );
        assert.deepEqual(await shopsSeen(), ["other.myshopify.com"]);
        assert.deepEqual(
          await store.reconcile.lastMissed(),
          new Map([["other.myshopify.com", missed("other.myshopify.com")]]),
        );
        assert.deepEqual(await store.stats(T0), {
          pendingCarts: 1,
          oldestPendingSinceMs: T0,
          deadLetters: 0,
          carts: 1,
        });
      });

      it("purges everything personal past the retention whatever HubSpot answered: an old checkout is in no table", async (t) => {
        if (!usable(t, factory)) return;
        const url = await factory.freshUrl();
        const store = await openStore(url);
        t.after(() => store.close());
        const old = Date.now() - 60_000;
        const oldCheckout = (token: string, webhookId: string, email: string, phone: string) =>
          checkoutDelivery({
            token,
            webhookId,
            atMs: old,
            email,
            phone,
            firstName: "Oldname",
            receivedAtMs: old,
          });
        await store.ingestBatch([
          oldCheckout("sent", "w1", "old-sent@example.com", "+15550001"),
          oldCheckout("pending", "w2", "old-pending@example.com", "+15550002"),
        ]);
        // The cart "sent" is in HubSpot but its buyer never is (a token without contacts scopes); "pending"
        // is not sent at all (HubSpot down, say).
        const claims = await claimNow(store, "r1");
        await store.markSent([{ key: keyOf("sent"), version: 1, hubspotId: "hs-sent" }], "r1");
        await store.release([keyOf("pending")], "r1");
        assert.equal(claims.length, 2);
        const cutoff = Date.now() + 1;
        await waitFor(() => Date.now() > cutoff, { what: "the clock past the cut-off" });
        const now = Date.now();
        await store.ingestBatch([
          checkoutDelivery({
            token: "fresh",
            webhookId: "w3",
            atMs: now,
            email: "fresh@example.com",
            receivedAtMs: now,
          }),
        ]);
        const personal = [
          "old-sent@example.com",
          "old-pending@example.com",
          "+15550001",
          "+15550002",
          "Oldname",
        ];
        const before = await everythingKept(url);
        for (const value of personal) assert.ok(before.includes(value), `${value} is kept before the purge`);

        assert.ok((await store.purgeExpired(cutoff)) >= 6, "two ids, two bodies, two buyer links at least");
        const after = await everythingKept(url);
        for (const value of personal) assert.ok(!after.includes(value), `${value} is gone from every table`);
        assert.ok(after.includes("fresh@example.com"), "what is younger than the cut-off stays");
        // The pending cart is still sent: its merged state stays, only the raw body went.
        const due = await claimNow(store, "r2");
        const pending = due.find((c) => c.key === keyOf("pending"));
        assert.ok(pending);
        assert.equal(values(pending.state)["hs_total_price"], "42.00");
      });

      it("purges unsent buyer links older than the cut-off", async (t) => {
        const store = await open(t);
        if (!store) return;
        const now = Date.now(); // links are stamped with the wall clock
        await store.ingestBatch([
          checkoutDelivery({
            token: "a",
            webhookId: "w1",
            atMs: now,
            email: "ada@example.com",
            receivedAtMs: now,
          }),
        ]);
        assert.equal(await store.purgeExpired(now - 60_000), 0);
        // The console's per-shop activity counts in 10-minute buckets: within a minute of a bucket's end the
        // cut-off also passes the bucket this delivery was counted in, and that row is purged too.
        const tenMinutes = 10 * 60_000;
        const bucketPassed = Math.floor((now + 60_000) / tenMinutes) > Math.floor(now / tenMinutes) ? 1 : 0;
        assert.equal(
          await store.purgeExpired(now + 60_000),
          3 + bucketPassed,
          "the delivery id, the buyer link and the kept body (and the activity bucket once it is over)",
        );
        await sendCarts(store, now);
        assert.deepEqual(await claimContacts(store, "c1", now), []);
      });
    });

    describe("replicas sharing one database", () => {
      it("open at once (migrations serialise) and see each other's writes", async (t) => {
        const stores = await replicas(t, 4);
        if (!stores) return;
        const [a, b] = stores as [Store, Store];
        await a.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]);
        assert.deepEqual(await b.ingestBatch([cartDelivery({ token: "a", webhookId: "w1", atMs: T0 })]), [
          "duplicate",
        ]);
        assert.equal((await b.stats(T0)).carts, 1);
      });

      it("never claim the same cart twice when claiming at once", async (t) => {
        if (factory.name !== "postgres") {
          t.skip("SQLite serves one bridge process: its claims live in that process, not in the file");
          return;
        }
        const stores = await replicas(t, 3);
        if (!stores) return;
        const [first] = stores as [Store];
        const tokens = Array.from({ length: 120 }, (_, i) => `t${String(i).padStart(3, "0")}`);
        await first.ingestBatch(
          tokens.map((token, i) =>
            cartDelivery({ token, webhookId: `w${i}`, atMs: T0, receivedAtMs: T0 + i }),
          ),
        );

        const claimedBy = new Map<string, string[]>();
        await Promise.all(
          stores.map(async (store, r) => {
            for (;;) {
              const claims = await store.claimDue({
                limit: 7,
                nowMs: T0 + 1000,
                leaseMs: LEASE_MS,
                owner: `r${r}`,
              });
              if (claims.length === 0) return;
              for (const c of claims) claimedBy.set(c.key, [...(claimedBy.get(c.key) ?? []), `r${r}`]);
            }
          }),
        );
        assert.equal(claimedBy.size, tokens.length, "every due cart was claimed");
        const twice = [...claimedBy].filter(([, owners]) => owners.length > 1);
        assert.deepEqual(twice, [], "no cart was claimed by two owners");
      });

      it("merge concurrent ingests of the same carts into the state sequential ingests give", async (t) => {
        const stores = await replicas(t, 2);
        const reference = await open(t);
        if (!stores || !reference) return;
        const [a, b] = stores as [Store, Store];
        // 300 deliveries (a third of them checkouts naming buyers) over 6 carts (3 new, 3 known), event
        // times shuffled, every one delivered to both replicas (a Shopify retry racing the original).
        const seed = [
          cartDelivery({ token: "k0", webhookId: "seed0", atMs: T0 }),
          cartDelivery({ token: "k1", webhookId: "seed1", atMs: T0 }),
          cartDelivery({ token: "k2", webhookId: "seed2", atMs: T0 }),
        ];
        await a.ingestBatch(seed);
        await reference.ingestBatch(seed);
        const items: IngestItem[] = [];
        let state = 12345;
        const random = (n: number): number => {
          state = (state * 1103515245 + 12345) % 2 ** 31;
          return state % n;
        };
        for (let i = 0; i < 300; i++) {
          const token = `k${random(6)}`;
          const [webhookId, atMs, receivedAtMs] = [`d${i}`, T0 + random(100_000), T0 + 200_000 + i];
          items.push(
            i % 3 === 0
              ? checkoutDelivery({
                  token,
                  webhookId,
                  atMs,
                  receivedAtMs,
                  email: `buyer${random(4)}@example.com`,
                })
              : cartDelivery({
                  token,
                  webhookId,
                  atMs,
                  title: `Item ${random(50)}`,
                  price: `${random(500)}.00`,
                  receivedAtMs,
                }),
          );
        }
        const batches = (from: readonly IngestItem[], size: number): IngestItem[][] =>
          Array.from({ length: Math.ceil(from.length / size) }, (_, i) =>
            from.slice(i * size, i * size + size),
          );
        const reversed = [...items].reverse();
        const outcomes = await Promise.all([
          Promise.all(batches(items, 7).map((batch) => a.ingestBatch(batch))),
          Promise.all(batches(reversed, 11).map((batch) => b.ingestBatch(batch))),
        ]);
        for (const batch of batches(items, 50)) await reference.ingestBatch(batch);

        // Each delivery counted once across the two replicas, a duplicate on the other.
        const byId = new Map<string, string[]>();
        const seen = [
          ...outcomes[0].flat().map((o, i) => [items[i], o] as const),
          ...outcomes[1].flat().map((o, i) => [reversed[i], o] as const),
        ];
        for (const [item, outcome] of seen)
          byId.set(item?.webhookId ?? "", [...(byId.get(item?.webhookId ?? "") ?? []), outcome]);
        for (const [id, got] of byId) {
          assert.equal(got.filter((o) => o === "duplicate").length, 1, `${id}: ${got.join(", ")}`);
        }

        const [merged, expected] = [await peek(a, T0 + 1_000_000), await peek(reference, T0 + 1_000_000)];
        assert.deepEqual([...merged.keys()].sort(), [...expected.keys()].sort());
        for (const [key, want] of expected) assert.deepEqual(merged.get(key)?.state, want.state, key);
        assert.deepEqual(await b.stats(T0), await reference.stats(T0));

        // The buyers too: the newest named per cart.
        const buyers = async (store: Store): Promise<string[]> => {
          await sendCarts(store, T0 + 1_000_000);
          const links = await claimContacts(store, "c", T0 + 1_000_000);
          return links.map((l) => `${l.cartKey} ${l.contact.email}`).sort();
        };
        const expectedBuyers = await buyers(reference);
        assert.ok(expectedBuyers.length >= 3, expectedBuyers.join("; "));
        assert.deepEqual(await buyers(a), expectedBuyers);
      });
    });

    describe("shared rate budget", () => {
      async function budgets(t: TestContext, count: number): Promise<PostgresStore[] | undefined> {
        if (factory.name !== "postgres") {
          t.skip(
            "only the PostgreSQL store shares a rate budget (SQLite runs one instance; its budget is in memory)",
          );
          return undefined;
        }
        return (await replicas(t, count)) as PostgresStore[] | undefined;
      }

      it("grants at most maxPerWindow slots in any window, and says how long to wait", async (t) => {
        const stores = await budgets(t, 1);
        if (!stores) return;
        const [store] = stores as [PostgresStore];
        assert.equal(await store.takeRateSlot(T0, 3, 1000), 0);
        assert.equal(await store.takeRateSlot(T0 + 100, 3, 1000), 0);
        assert.equal(await store.takeRateSlot(T0 + 200, 3, 1000), 0);
        assert.equal(
          await store.takeRateSlot(T0 + 300, 3, 1000),
          700,
          "until the slot taken at T0 leaves the window",
        );
        assert.equal(await store.takeRateSlot(T0 + 999, 3, 1000), 1);
        assert.equal(await store.takeRateSlot(T0 + 1000, 3, 1000), 0);
        assert.equal(await store.takeRateSlot(T0 + 1001, 3, 1000), 99);
        assert.equal(await store.takeRateSlot(T0 + 1001, 5, 1000), 0, "a larger budget applies at once");
      });

      it("never lets replicas asking at once exceed the budget together", async (t) => {
        const stores = await budgets(t, 3);
        if (!stores) return;
        const answers = await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            (stores[i % stores.length] as PostgresStore).takeRateSlot(T0 + (i % 4), 10, 10_000),
          ),
        );
        assert.equal(answers.filter((w) => w === 0).length, 10);
        assert.ok(
          answers.every((w) => w === 0 || (w > 9_000 && w <= 10_000)),
          answers.join(","),
        );
      });
    });
  });
}
