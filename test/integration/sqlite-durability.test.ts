import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { it } from "node:test";
import { StoreError } from "../../src/errors.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { cartItem, SHOP, T0 } from "../helpers/items.ts";

/**
 * SQLite's durability as documented: a durable commit (the group commit's deliveries, erasures, replays)
 * runs with synchronous=FULL. Relaxed ones (the sender's bookkeeping, the inbox's applier, whose durable
 * copy is the inbox) run under NORMAL; the level is set only when the mode changes, and a durable commit
 * that cannot set FULL first fails (503), never commits under NORMAL.
 */

it("a durable commit never runs under synchronous=NORMAL, and the level is set only when the mode changes", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-sync-"));
  const store = openSqliteStore(join(dir, "store.db"));
  // Records every synchronous level set and each BEGIN, and can refuse to set FULL (a failing pragma).
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, called with its own `this`
  const original = DatabaseSync.prototype.exec;
  const seen: string[] = [];
  let refuseFull = false;
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    if (/^PRAGMA synchronous/.test(sql) || sql === "BEGIN IMMEDIATE") {
      if (sql === "PRAGMA synchronous = FULL" && refuseFull) {
        seen.push("FULL refused");
        throw new Error("simulated failure");
      }
      seen.push(sql);
    }
    return original.call(this, sql);
  };
  t.after(async () => {
    DatabaseSync.prototype.exec = original;
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  assert.deepEqual(await store.ingestBatch([cartItem("a", "w1")]), ["applied"]);
  assert.deepEqual(seen, ["BEGIN IMMEDIATE"], "FULL since the store opened");
  seen.length = 0;
  await store.markSent([{ key: `${SHOP}:a`, version: 1, hubspotId: "1" }], "owner");
  await store.markFailed([`${SHOP}:a`], "owner", { nextAttemptAtMs: T0, error: "test" });
  assert.deepEqual(
    seen,
    ["PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE", "BEGIN IMMEDIATE"],
    "two relaxed commits, one PRAGMA",
  );
  refuseFull = true;

  // FULL cannot be set: the delivery is refused (503), not committed under NORMAL.
  await assert.rejects(store.ingestBatch([cartItem("b", "w2")]), StoreError);
  assert.equal(seen.at(-1), "FULL refused");
  assert.equal((await store.stats(T0)).carts, 1);

  refuseFull = false;
  seen.length = 0;
  assert.deepEqual(await store.ingestBatch([cartItem("b", "w2")]), ["applied"]);
  assert.deepEqual(seen, ["PRAGMA synchronous = FULL", "BEGIN IMMEDIATE"], "FULL restored before the commit");
});
