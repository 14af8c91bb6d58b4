import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it, type TestContext } from "node:test";
import { StoreError } from "../../src/errors.ts";
import { createGroupCommitter } from "../../src/store/group-commit.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { IngestItem, IngestOutcome, Store } from "../../src/store/store.ts";
import { cartItem, T0 } from "../helpers/items.ts";

/**
 * The group committer in front of a real SQLite store, whose availability a test switches: "up" commits,
 * "down" fails at once as a refused connection does, "hang" holds the commit until the test lets it go (a
 * connect timeout). SPEC §3: 503 when the store cannot commit, never a 200 that is not durable.
 */

/** A delivery whose own data the store cannot write (its headers do not serialise). */
function poisonedItem(token: string, webhookId: string): IngestItem {
  return { ...cartItem(token, webhookId), headers: { bad: 1n } as unknown as Record<string, string> };
}

type Mode = "up" | "down" | "hang";

function switchableStore(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-gc-"));
  const real = openSqliteStore(join(dir, "store.db"));
  t.after(async () => {
    await real.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const state = {
    mode: "up" as Mode,
    calls: [] as number[],
    /** Drops the last outcome of every batch (a store that answers fewer outcomes than items). */
    shortAnswer: false,
    hung: [] as Array<() => void>,
  };
  const refused = () =>
    new StoreError("ingest failed: connect ECONNREFUSED 127.0.0.1:5432", {
      retryable: true,
      cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    });
  const store: Pick<Store, "ingestBatch"> = {
    async ingestBatch(items) {
      state.calls.push(items.length);
      if (state.mode === "down") throw refused();
      if (state.mode === "hang") {
        await new Promise<void>((resolve) => state.hung.push(resolve));
        if ((state.mode as Mode) !== "up") throw refused();
      }
      const outcomes = await real.ingestBatch(items);
      return state.shortAnswer ? outcomes.slice(0, -1) : outcomes;
    },
  };
  const releaseHung = () => state.hung.splice(0).forEach((resolve) => resolve());
  return { real, store, state, releaseHung };
}

const settled = (ps: Array<Promise<IngestOutcome>>) => Promise.allSettled(ps);
const rejectedWithStoreError = (r: PromiseSettledResult<IngestOutcome>) =>
  r.status === "rejected" && r.reason instanceof StoreError;

it("an unavailable store fails the whole group in one attempt; a delivery's own error fails only it", async (t) => {
  const { real, store, state } = switchableStore(t);
  const committer = createGroupCommitter(store);

  state.mode = "down";
  const down = await settled([0, 1, 2, 3, 4].map((i) => committer.submit(cartItem(`d${i}`, `wd${i}`))));
  assert.ok(down.every(rejectedWithStoreError));
  assert.deepEqual(state.calls, [5], "one attempt for the group, no delivery retried alone");
  assert.equal(committer.storeDown(), true);

  state.mode = "up";
  state.calls.length = 0;
  const probe = await committer.submit(cartItem("p", "wp"));
  assert.equal(probe, "applied");
  assert.equal(committer.storeDown(), false, "acceptance resumes with the first commit");

  const mixed = await settled([
    committer.submit(cartItem("a", "wa")),
    committer.submit(poisonedItem("b", "wb")),
    committer.submit(cartItem("c", "wc")),
  ]);
  assert.deepEqual(
    mixed.map((r) => (r.status === "fulfilled" ? r.value : "rejected")),
    ["applied", "rejected", "applied"],
  );
  assert.deepEqual(state.calls, [1, 3, 1, 1, 1], "the group failed on one delivery: each retried alone");
  assert.equal(committer.storeDown(), false);
  assert.equal((await real.stats(T0)).carts, 3, "p, a and c are stored; b is not");
});

it("while the store is down one delivery probes it and the others get 503 at once; it comes back by itself", async (t) => {
  const { real, store, state, releaseHung } = switchableStore(t);
  const committer = createGroupCommitter(store);

  state.mode = "down";
  await assert.rejects(committer.submit(cartItem("x", "wx")), StoreError);
  assert.equal(committer.storeDown(), true);

  // Still unreachable, and now each attempt hangs until a connect timeout.
  state.mode = "hang";
  const probe = committer.submit(cartItem("probe", "wprobe"));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(state.calls, [1, 1], "the probe reached the store");
  const refused = await settled(
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => committer.submit(cartItem(`r${i}`, `wr${i}`))),
  );
  assert.ok(refused.every(rejectedWithStoreError), "refused while the probe is out");
  assert.deepEqual(state.calls, [1, 1], "refused without reaching the store");
  releaseHung();
  await assert.rejects(probe, StoreError);
  assert.equal(committer.storeDown(), true);

  state.mode = "up";
  assert.equal(await committer.submit(cartItem("back", "wback")), "applied");
  const after = await settled([1, 2, 3].map((i) => committer.submit(cartItem(`n${i}`, `wn${i}`))));
  assert.deepEqual(
    after.map((r) => (r.status === "fulfilled" ? r.value : "rejected")),
    ["applied", "applied", "applied"],
  );
  assert.deepEqual(state.calls.slice(-2), [1, 3], "back to one group per loop turn");
  assert.equal((await real.stats(T0)).carts, 4);
});

it("the queue is bounded in deliveries and bytes, and no delivery waits past maxWaitMs", async (t) => {
  const { real, store, state, releaseHung } = switchableStore(t);
  const committer = createGroupCommitter(store, { maxQueued: 3, maxQueuedBytes: 40_000, maxWaitMs: 50 });

  state.mode = "hang";
  const inFlight = committer.submit(cartItem("f", "wf"));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(state.calls, [1]);
  const queued = [1, 2, 3].map((i) => committer.submit(cartItem(`q${i}`, `wq${i}`)));
  await assert.rejects(committer.submit(cartItem("over", "wover")), /too many deliveries are waiting/);

  // Every waiter gets its answer (503) although the commit is still hanging.
  const waited = await settled([inFlight, ...queued]);
  assert.ok(waited.every(rejectedWithStoreError));

  // The hung commit lands after its delivery was answered 503 (Shopify retries it: a duplicate, no harm);
  // the queued ones, answered 503 too, are not committed at all.
  state.mode = "up";
  releaseHung();
  await committer.drain();
  assert.equal((await real.stats(T0)).carts, 1);
  assert.deepEqual(state.calls, [1]);

  // Bytes: behind a hanging commit, two 15 kB bodies fit in 40 kB, a third does not.
  state.mode = "hang";
  const head = settled([committer.submit(cartItem("h", "wh"))]);
  await new Promise((r) => setImmediate(r));
  const big = await settled([1, 2, 3].map((i) => committer.submit(cartItem(`b${i}`, `wb${i}`, 15_000))));
  assert.ok(big.slice(0, 2).every(rejectedWithStoreError), "queued, then answered 503 after maxWaitMs");
  assert.ok(!big.slice(0, 2).some((r) => /too many/.test(String((r as PromiseRejectedResult).reason))));
  assert.ok(big[2]?.status === "rejected" && /too many deliveries are waiting/.test(String(big[2].reason)));
  assert.ok((await head).every(rejectedWithStoreError));
  state.mode = "up";
  releaseHung();
  await committer.drain();
});

it("a delivery the store returns no outcome for is answered 503, never 200", async (t) => {
  const { store, state } = switchableStore(t);
  const committer = createGroupCommitter(store);
  state.shortAnswer = true;
  const results = await settled([
    committer.submit(cartItem("a", "wa")),
    committer.submit(cartItem("b", "wb")),
  ]);
  assert.equal(results[0]?.status, "fulfilled");
  assert.ok(results[1] !== undefined && rejectedWithStoreError(results[1]));
});
