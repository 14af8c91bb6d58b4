/**
 * HubSpot requests for a burst touching D distinct carts, all arriving within one flush interval, against
 * the least possible, ⌈D / 100⌉. The burst is sent as fast as the generator can (closed loop); the
 * sandbox's recorded cart upserts are counted once every cart has landed and one more interval has passed
 * (so a straggling extra request would be counted too).
 */
import { waitFor } from "../test/helpers/wait.ts";
import { bridgeIn, sandboxIn, type BenchContext } from "./context.ts";
import { presign } from "./deliveries.ts";
import { runLoad } from "./load.ts";
import { waitReady } from "./processes.ts";
import type { Row } from "./report.ts";
import { countUpserts, tapSandbox } from "./sandbox.ts";
import { withScope } from "./scope.ts";
import { int, ms } from "./stats.ts";

export function measureBurst(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  const d = s.burstCarts;
  const least = Math.ceil(d / 100);
  return withScope(async (scope) => {
    const sandbox = await sandboxIn(scope);
    const tap = tapSandbox(sandbox);
    scope.defer(() => tap.stop());
    const bridge = await bridgeIn(ctx, scope, "burst", sandbox.url);
    await waitReady(bridge.url);
    const source = presign(d, (seq) => seq);

    const r = await runLoad({
      url: bridge.url,
      source,
      connections: s.connections,
      durationMs: 30_000,
      count: d,
    });
    if (r.ok !== d)
      throw new Error(`burst: ${d - r.ok} deliveries were not answered 200 (${JSON.stringify(r.statuses)})`);
    const landed = await waitFor(() => sandbox.carts().size >= d, {
      what: `${d} carts in the sandbox`,
      timeoutMs: 15_000 + 2 * s.flushIntervalMs,
      intervalMs: 20,
    }).then(
      () => true,
      () => false,
    );
    await new Promise((resolve) => setTimeout(resolve, s.flushIntervalMs + 500));
    tap.drain();
    const requests = countUpserts(tap);
    const inputs = tap.upserts.reduce((n, u) => n + u.inputs, 0);
    const sizes = tap.upserts.map((u) => u.inputs).join(", ");
    ctx.log(`burst: ${d} carts in ${ms(r.elapsedMs)} → ${requests} upserts (${sizes})`);
    ctx.note(
      `burst: ${int(d)} deliveries sent in ${ms(r.elapsedMs)} (the flush interval is ${int(s.flushIntervalMs)} ms); ` +
        `${requests} cart upserts carrying ${int(inputs)} inputs (batch sizes ${sizes}); ` +
        `${sandbox.carts().size} carts in the sandbox${landed ? "" : " — not all landed"}` +
        (r.elapsedMs > s.flushIntervalMs
          ? `; the burst took longer than one flush interval, so the measure's condition did not hold (the ingest rate limits it)`
          : "") +
        ".",
    );
    return [
      {
        measure: `HubSpot requests for a burst of ${int(d)} distinct carts (sent in ${ms(r.elapsedMs)})`,
        bridge: `${requests} upserts`,
        baseline: `⌈D/100⌉ = ${least}`,
        ratio: `+${requests - least}`,
        target: `≤ ${least + 1}`,
        met: landed && requests <= least + 1,
      },
    ];
  });
}
