import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import { checkoutItem } from "../helpers/items.ts";

/**
 * node:sqlite is synchronous, so every call to the embedded store holds the event loop for its statements.
 * The bridge's store runs each call in a turn of the loop of its own (sqlite-gate.ts): never in its
 * caller's task, and after the I/O (webhook answers) that came meanwhile.
 */
describe("the embedded store runs each call in a turn of the loop of its own", () => {
  it("a call's statements run after the macrotasks queued before it, not in the caller's task", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-turns-"));
    const path = join(dir, "store.db");
    const store = openSqliteStore(path, { server: true });
    // What the file holds, read through a connection of its own.
    const other = new DatabaseSync(path, { readOnly: true });
    const carts = (): number =>
      Number((other.prepare("SELECT count(*) AS n FROM carts").get() as { n: number }).n);
    try {
      const seen: string[] = [];
      setImmediate(() => seen.push(`next turn: ${carts()}`));
      const ingested = store.ingestBatch([checkoutItem("turn-1", Date.now())]);
      seen.push(`caller's task: ${carts()}`);
      assert.deepEqual(await ingested, ["applied"]);
      seen.push(`resolved: ${carts()}`);
      assert.deepEqual(seen, ["caller's task: 0", "next turn: 0", "resolved: 1"]);
    } finally {
      other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the embedded store marks a batch of 100 sent in several transactions, a turn of the loop between", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-turns-"));
    const store = openSqliteStore(join(dir, "store.db"), { server: true });
    try {
      const now = Date.now();
      const items = Array.from({ length: 100 }, (_, i) => checkoutItem(`mark-${i}`, now));
      await store.ingestBatch(items);
      const claims = await store.claimDue({ limit: 100, nowMs: Date.now(), leaseMs: 60_000, owner: "r1" });
      assert.equal(claims.length, 100);

      let turns = 0;
      let marking = true;
      const tick = (): void => {
        if (!marking) return;
        turns++;
        setImmediate(tick);
      };
      setImmediate(tick);
      const marked = await store.markSent(
        claims.map((c) => ({ key: c.key, version: c.version, hubspotId: undefined })),
        "r1",
      );
      marking = false;
      assert.equal(marked.length, 100);
      assert.ok(turns >= 3, `the loop turned ${turns} times while 100 carts were marked sent (4 chunks)`);
      assert.equal((await store.stats(Date.now())).pendingCarts, 0);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
