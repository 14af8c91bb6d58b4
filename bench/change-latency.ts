/**
 * Change → HubSpot latency at a fixed 500 deliveries/s: for every change, from the moment the generator
 * sent it to the moment the sandbox received the upsert that carried it (or a newer value of the same
 * cart). Each change's total price is its marker, so the upsert inputs say which change they carry.
 *
 * Two runs, each against a fresh bridge and sandbox:
 * - distinct carts: every change a new cart, so batches fill (100 carts) long before the interval ends;
 * - hot carts: the changes go round a few carts (fewer than a batch), so nothing fills a batch and the
 *   flush interval alone decides when they leave — the case the target is about.
 */
import { bridgeIn, sandboxIn, type BenchContext } from "./context.ts";
import { cartKey, presign } from "./deliveries.ts";
import { runLoad } from "./load.ts";
import { waitReady } from "./processes.ts";
import type { Row } from "./report.ts";
import { tapSandbox, type SandboxTap } from "./sandbox.ts";
import { withScope } from "./scope.ts";
import { int, ms, percentiles } from "./stats.ts";

export const CHANGE_MARGIN_MS = 500;

/** When each cart's values landed: per key, (arrival, newest change carried), in arrival order. */
function landings(tap: SandboxTap): Map<string, Array<readonly [atMs: number, seq: number]>> {
  const byKey = new Map<string, Array<readonly [number, number]>>();
  const ok = tap.upserts.filter((u) => u.status === 200).sort((a, b) => a.atMs - b.atMs);
  for (const u of ok) {
    for (const [key, seq] of u.carts ?? []) {
      if (seq === undefined) continue;
      let list = byKey.get(key);
      if (list === undefined) byKey.set(key, (list = []));
      list.push([u.atMs, seq]);
    }
  }
  return byKey;
}

interface RunResult {
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
  readonly missing: number;
  readonly changes: number;
}

async function run(ctx: BenchContext, label: string, carts: number | undefined): Promise<RunResult> {
  const s = ctx.settings;
  return withScope(async (scope) => {
    const sandbox = await sandboxIn(scope);
    const tap = tapSandbox(sandbox, { keepInputs: true });
    scope.defer(() => tap.stop());
    const bridge = await bridgeIn(ctx, scope, `change-${label}`, sandbox.url);
    await waitReady(bridge.url);

    const warmup = Math.ceil((s.warmupMs / 1000) * s.changeRatePerS);
    const measured = Math.ceil((s.changeMs / 1000) * s.changeRatePerS);
    // Warm-up changes go to carts of their own, so they never count as a landing of a measured change.
    const cartOf = (seq: number) =>
      seq < warmup ? 1_000_000_000 + seq : carts === undefined ? seq : (seq - warmup) % carts;
    const source = presign(warmup + measured + 10, cartOf);
    await runLoad({
      url: bridge.url,
      source,
      connections: s.connections,
      durationMs: s.warmupMs,
      count: warmup,
      ratePerS: s.changeRatePerS,
    });
    const r = await runLoad({
      url: bridge.url,
      source,
      connections: s.connections,
      durationMs: s.changeMs + 1000,
      count: measured,
      ratePerS: s.changeRatePerS,
      firstSeq: warmup,
    });
    // Wait for the last changes to land: an interval, a send, and slack.
    const lastSeq = warmup + r.sent - 1;
    const deadline = Date.now() + s.flushIntervalMs + 10_000;
    while (Date.now() < deadline) {
      tap.drain();
      const last = landings(tap).get(cartKey(cartOf(lastSeq)));
      if (last !== undefined && last.some(([, seq]) => seq >= lastSeq)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    tap.drain();

    const landed = landings(tap);
    const latencies: number[] = [];
    let missing = 0;
    for (let i = 0; i < r.sent; i++) {
      const seq = warmup + i;
      const sentAt = r.sentAtMs[i] ?? Number.NaN;
      const hit = landed
        .get(cartKey(cartOf(seq)))
        ?.find(([atMs, carried]) => carried >= seq && atMs >= sentAt);
      if (hit === undefined) missing++;
      else latencies.push(hit[0] - sentAt);
    }
    const [p50 = NaN, p95 = NaN, max = NaN] = percentiles(latencies, [50, 95, 100]);
    const requests = tap.upserts.length;
    ctx.log(
      `change → HubSpot (${label}): p50 ${ms(p50)}, p95 ${ms(p95)}, max ${ms(max)}, ${missing} missing`,
    );
    ctx.note(
      `change → HubSpot, ${label}: ${int(r.sent)} changes at ${int((r.sent * 1000) / r.elapsedMs)}/s ` +
        `(answers ${JSON.stringify(r.statuses)}), ${requests} cart upserts during the run and warm-up, ` +
        `max ${ms(max)}${missing > 0 ? `, ${missing} changes never seen in HubSpot` : ""}.`,
    );
    return { p50, p95, max, missing, changes: r.sent };
  });
}

export async function measureChangeLatency(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  const target = s.flushIntervalMs + CHANGE_MARGIN_MS;
  const row = (what: string, r: RunResult): Row => ({
    measure: `change → HubSpot at ${int(s.changeRatePerS)}/s, ${what}, p50 / p95`,
    bridge: `${ms(r.p50)} / ${ms(r.p95)}`,
    baseline: `FLUSH_INTERVAL_MS = ${int(s.flushIntervalMs)} ms`,
    ratio: `p95 = interval ${r.p95 >= s.flushIntervalMs ? "+" : "−"} ${ms(Math.abs(r.p95 - s.flushIntervalMs))}`,
    target: `p95 ≤ ${int(target)} ms`,
    met: r.missing === 0 && r.p95 <= target,
  });
  const distinct = await run(ctx, "distinct carts", undefined);
  const hot = await run(ctx, `${s.hotCarts} hot carts`, s.hotCarts);
  return [row("every change a new cart", distinct), row(`changes spread over ${s.hotCarts} carts`, hot)];
}
