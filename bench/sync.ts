/**
 * Sync throughput against a sandbox enforcing 190 requests / 10 s, with HUBSPOT_MAX_REQUESTS_PER_10S=190:
 * the ceiling is 190 × 100 carts / 10 s = 1,900 carts/s.
 *
 * A backlog of distinct carts is ingested while the sandbox lacks the cart id property (the bridge then
 * sends nothing: it waits for the property, as after a fresh install), then the property is created and the
 * bridge finds it on its next look (within 5 s). The rate is measured over a steady-state window: from the
 * first upsert at least one rolling window (10 s) after sending began — the first window's budget is spent
 * at once — to the first upsert at least `syncWindowMs` later, counting the carts written in between. The
 * backlog is sized so it lasts past the window. Every 429 the sandbox answered is counted.
 */
import { cartKeyPropertyDefinition } from "../test/fakes/hubspot-properties.ts";
import { waitFor } from "../test/helpers/wait.ts";
import { bridgeIn, sandboxIn, type BenchContext } from "./context.ts";
import { onDemand } from "./deliveries.ts";
import { runLoad } from "./load.ts";
import type { Row } from "./report.ts";
import { tapSandbox } from "./sandbox.ts";
import { withScope } from "./scope.ts";
import { int } from "./stats.ts";

export const SYNC_TARGET_PER_S = 1_800;
const WINDOW_MS = 10_000;

export function measureSync(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  const ceiling = (s.syncMaxRequestsPer10s * 100 * 1000) / WINDOW_MS;
  return withScope(async (scope) => {
    const sandbox = await sandboxIn(scope, {
      maxRequestsPer10s: s.syncMaxRequestsPer10s,
      withCartKeyProperty: false,
    });
    const tap = tapSandbox(sandbox, { everyMs: 500 });
    scope.defer(() => tap.stop());
    const bridge = await bridgeIn(ctx, scope, "sync", sandbox.url, {
      HUBSPOT_MAX_REQUESTS_PER_10S: String(s.syncMaxRequestsPer10s),
    });

    ctx.log(`sync: ingesting a backlog of ${int(s.syncBacklog)} carts (HubSpot not ready yet)`);
    const backlog = await runLoad({
      url: bridge.url,
      source: onDemand((seq) => seq),
      connections: s.connections,
      durationMs: 300_000,
      count: s.syncBacklog,
      onProgress: (n) => ctx.log(`sync: ${int(n)} backlog deliveries answered`),
      progressEveryMs: 5_000,
    });
    if (backlog.ok !== s.syncBacklog) {
      throw new Error(
        `sync: ${s.syncBacklog - backlog.ok} backlog deliveries not answered 200 (${JSON.stringify(backlog.statuses)})`,
      );
    }
    tap.drain();
    if (tap.upserts.length > 0) throw new Error("sync: the bridge sent carts before the property existed");

    sandbox.addCartProperty(cartKeyPropertyDefinition());
    ctx.log("sync: cart id property created; waiting for the bridge to send");
    await waitFor(
      () => {
        tap.drain();
        return tap.upserts.length > 0;
      },
      { what: "the first upsert", timeoutMs: 30_000, intervalMs: 100 },
    );
    const startedAt = Math.min(...tap.upserts.map((u) => u.atMs));
    const windowOf = () => {
      const sorted = [...tap.upserts].sort((a, b) => a.atMs - b.atMs);
      const from = sorted.find((u) => u.atMs >= startedAt + WINDOW_MS);
      const to = from === undefined ? undefined : sorted.find((u) => u.atMs >= from.atMs + s.syncWindowMs);
      return { upserts: sorted, from, to };
    };
    // Until an upsert closes the window, the backlog is all written, or the time is clearly up.
    const deadline = Date.now() + WINDOW_MS + s.syncWindowMs + 60_000;
    let ranOut = false;
    for (;;) {
      tap.drain();
      if (windowOf().to !== undefined) break;
      ranOut = sandbox.carts().size >= s.syncBacklog;
      if (ranOut || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const { upserts, from, to } = windowOf();
    const tooLong = from === undefined || to === undefined;
    const inWindow = tooLong ? [] : upserts.filter((u) => u.atMs >= from.atMs && u.atMs < to.atMs);
    const carts = inWindow.filter((u) => u.status === 200).reduce((n, u) => n + u.inputs, 0);
    const windowMs = tooLong ? Number.NaN : to.atMs - from.atMs;
    const rate = (carts * 1000) / windowMs;
    const tooMany = [...tap.statuses.entries()]
      .filter(([status]) => status === 429)
      .reduce((n, [, c]) => n + c, 0);
    const upserted = upserts.filter((u) => u.status === 200);
    const meanBatch = upserted.reduce((n, u) => n + u.inputs, 0) / Math.max(1, upserted.length);
    const first10s = upserts.filter((u) => u.atMs < startedAt + WINDOW_MS).length;
    // Requests the sandbox counts against the same token's rolling window but that are not cart upserts.
    const othersNearStart = tap.others.filter(
      (o) => o.atMs >= startedAt - WINDOW_MS && o.atMs < startedAt + WINDOW_MS,
    );
    const limitedUpserts = upserts.filter((u) => u.status === 429);
    const firstLimited = limitedUpserts[0];

    ctx.log(`sync: ${int(rate)} carts/s over ${(windowMs / 1000).toFixed(1)} s, ${tooMany} × 429`);
    ctx.note(
      `sync: backlog ingested in ${(backlog.elapsedMs / 1000).toFixed(1)} s (${int((backlog.ok * 1000) / backlog.elapsedMs)}/s); ` +
        `window ${(windowMs / 1000).toFixed(1)} s from ${((from?.atMs ?? NaN) - startedAt).toFixed(0)} ms after the first upsert: ` +
        `${int(carts)} carts in ${inWindow.length} requests; ${first10s} requests in the first 10 s; ` +
        `mean batch ${meanBatch.toFixed(1)} inputs; answers by status ${JSON.stringify(Object.fromEntries(tap.statuses))}; ` +
        `${othersNearStart.length} other requests (${[...new Set(othersNearStart.map((o) => `${o.method} ${o.path.split("?")[0] ?? ""}`))].join(", ") || "none"}) ` +
        `reached the sandbox in the 10 s before and after sending began, counted in the same rolling window as the upserts` +
        (firstLimited === undefined
          ? ""
          : `; the first 429 answered the upsert at ${(firstLimited.atMs - startedAt).toFixed(0)} ms, ` +
            `after ${upserts.filter((u) => u.atMs < firstLimited.atMs && u.status === 200).length} upserts`) +
        (tooLong
          ? ranOut
            ? "; the backlog was all written before the window closed — raise syncBacklog"
            : "; no upsert closed the window in time"
          : "") +
        ".",
    );
    return [
      {
        measure: `sync throughput, sandbox enforcing ${s.syncMaxRequestsPer10s} req / 10 s (${(s.syncWindowMs / 1000).toFixed(0)} s steady-state window)`,
        bridge: `${int(rate)} carts/s, ${tooMany} × 429`,
        baseline: `ceiling ${int(ceiling)} carts/s`,
        ratio: `${((rate / ceiling) * 100).toFixed(0)} % of ceiling`,
        target: `≥ ${int(SYNC_TARGET_PER_S)} carts/s, 0 × 429`,
        met: !tooLong && rate >= SYNC_TARGET_PER_S && tooMany === 0,
      },
    ];
  });
}
