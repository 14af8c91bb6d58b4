import assert from "node:assert/strict";
import { test } from "node:test";
import { createMetrics } from "../../src/metrics.ts";
import { createGaugeRefresh } from "../../src/service/health.ts";
import type { Store } from "../../src/store/store.ts";
import type { Flusher } from "../../src/sync/flusher.ts";
import type { PortalWatcher } from "../../src/sync/portal-watcher.ts";

// The gauges /metrics refreshes before a scrape, wired to their sources (the end-to-end test sees only 0s).

function refreshWith(unapplied: number, stats: Store["stats"]) {
  const metrics = createMetrics();
  const refresh = createGaugeRefresh(metrics, {
    store: { stats } as Store,
    flusher: { health: () => ({ state: "running" }) } as unknown as Flusher,
    portal: { problem: () => undefined } as unknown as PortalWatcher,
    intake: { unapplied: () => unapplied },
  });
  const gauge = async (name: string): Promise<string> =>
    new RegExp(`^${name} (\\S+)$`, "m").exec(await metrics.registry.metrics())?.[1] ?? "absent";
  return { refresh, gauge };
}

test("webhook_deliveries_unapplied is the intake's backlog, with the store's gauges beside it", async () => {
  const { refresh, gauge } = refreshWith(7, () =>
    Promise.resolve({ pendingCarts: 3, oldestPendingSinceMs: undefined, deadLetters: 2, carts: 5 }),
  );
  await refresh();
  assert.equal(await gauge("webhook_deliveries_unapplied"), "7");
  assert.equal(await gauge("carts_pending"), "3");
  assert.equal(await gauge("dead_letters"), "2");
});

test("webhook_deliveries_unapplied is set even when the store does not answer", async () => {
  const { refresh, gauge } = refreshWith(42, () => Promise.reject(new Error("database is locked")));
  await assert.rejects(refresh(), /locked/);
  assert.equal(await gauge("webhook_deliveries_unapplied"), "42");
});
