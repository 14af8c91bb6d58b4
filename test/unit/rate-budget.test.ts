import assert from "node:assert/strict";
import { test } from "node:test";
import { createRateBudget } from "../../src/sync/rate-budget.ts";

test("grants at most maxRequests in any window, spaced evenly, and says how long to wait", async () => {
  const budget = createRateBudget({ maxRequests: 4, windowMs: 1000, marginMs: 0 });
  assert.equal(await budget.take(0), 0);
  assert.equal(await budget.take(100), 150, "spaced window / limit = 250 ms apart");
  assert.equal(await budget.take(250), 0);
  assert.equal(await budget.take(500), 0);
  assert.equal(await budget.take(750), 0);
  assert.equal(await budget.take(999), 1, "the window is full until the first send leaves it");
  assert.equal(await budget.take(1000), 0);
});

test("the window includes a margin for latency", async () => {
  const budget = createRateBudget({ maxRequests: 1, windowMs: 1000, marginMs: 200 });
  assert.equal(await budget.take(0), 0);
  assert.equal(await budget.take(1000), 200);
});

test("HubSpot's headers tighten the limit and count requests others made", async () => {
  const budget = createRateBudget({ maxRequests: 10, windowMs: 1000, marginMs: 0 });
  budget.observe({ max: 5, remaining: 5 }, 0);
  assert.equal(budget.available(0), 5);
  // HubSpot says 3 were used in its window, we sent 1: two came from elsewhere.
  assert.equal(await budget.take(10), 0);
  budget.observe({ max: 5, remaining: 2 }, 20);
  assert.equal(budget.available(20), 2);
});

test("a pause holds every slot until it ends", async () => {
  const budget = createRateBudget({ maxRequests: 10 });
  budget.pauseUntil(5000);
  assert.equal(await budget.take(1000), 4000);
  assert.equal(budget.available(4999), 0);
  assert.equal(await budget.take(5000), 0);
});

test("only waits the limit causes count as rate-limit waits: a full window, a pause, not the spacing", async () => {
  const budget = createRateBudget({ maxRequests: 2, windowMs: 1000, marginMs: 0 });
  assert.equal(await budget.take(0), 0);
  assert.equal(await budget.take(100), 400, "spaced 500 ms apart");
  assert.equal(budget.spentAt(100), false);
  assert.equal(await budget.take(500), 0);
  assert.equal(await budget.take(900), 100, "two sends in the window: it is full");
  assert.equal(budget.spentAt(900), true);
  assert.equal(budget.spentAt(1000), false, "the first send left the window");
  budget.pauseUntil(3000);
  assert.equal(await budget.take(2000), 1000);
  assert.equal(budget.spentAt(2000), true);

  // A shared budget (PostgreSQL) refuses only a full window: any wait it asks for is the limit's.
  const shared = createRateBudget({
    maxRequests: 2,
    windowMs: 1000,
    marginMs: 0,
    shared: () => Promise.resolve(300),
  });
  assert.equal(await shared.take(0), 300);
  assert.equal(shared.spentAt(0), true);
});
