/**
 * Ingest throughput and answer latency under the most load the generator can give: the bridge (durable
 * SQLite, its sandbox HubSpot at the default budget) against the bare Express baseline. Both servers run
 * side by side as child processes and take turns — warm-up, then alternating rounds of the same length
 * with the same connections — so drift in the machine's load hits both alike. Every delivery to the bridge
 * is a new cart (its heaviest path: a new row with the kept body); the baseline ignores bodies.
 */
import { describeRun, metric, scrapeBridge } from "./bridge-metrics.ts";
import { bridgeIn, expressIn, sandboxProcessIn, type BenchContext } from "./context.ts";
import { presign } from "./deliveries.ts";
import { runLoad, type LoadResult } from "./load.ts";
import type { Row } from "./report.ts";
import { withScope } from "./scope.ts";
import { int, mb, ms, pct, percentiles } from "./stats.ts";

/** Deliveries pre-signed for the bridge (beyond this they are signed on demand, and the notes say so). */
const PRESIGN_PER_S = 6_000;
export const INGEST_TARGET = 0.7;

interface Side {
  ok: number;
  elapsedMs: number;
  latencies: Float64Array[];
  statuses: Record<string, number>;
  rounds: number[];
}

function add(side: Side, r: LoadResult): void {
  side.ok += r.ok;
  side.elapsedMs += r.elapsedMs;
  side.latencies.push(r.latenciesMs);
  for (const [status, n] of Object.entries(r.statuses))
    side.statuses[status] = (side.statuses[status] ?? 0) + n;
  side.rounds.push((r.ok * 1000) / r.elapsedMs);
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

export function measureIngest(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  return withScope(async (scope) => {
    const sandbox = await sandboxProcessIn(ctx, scope);
    const bridge = await bridgeIn(ctx, scope, "ingest", sandbox.url);
    const express = await expressIn(ctx, scope);
    const floor = await expressIn(ctx, scope, { durable: true });

    const seconds = (s.warmupMs + s.ingestRounds * s.ingestRoundMs) / 1000;
    ctx.log(`ingest: pre-signing ${int(seconds * PRESIGN_PER_S)} deliveries`);
    const bridgeSource = presign(Math.ceil(seconds * PRESIGN_PER_S), (seq) => seq, { beyond: "sign" });
    const expressSource = presign(20_000, (seq) => seq, { beyond: "wrap" });

    let bridgeSeq = 0;
    let expressSeq = 0;
    const roundOf = async (
      target: "bridge" | "express" | "express + durable append",
      durationMs: number,
    ): Promise<LoadResult> => {
      const url = { bridge: bridge.url, express: express.url, "express + durable append": floor.url };
      const r = await runLoad({
        url: url[target],
        source: target === "bridge" ? bridgeSource : expressSource,
        connections: s.connections,
        durationMs,
        firstSeq: target === "bridge" ? bridgeSeq : expressSeq,
      });
      if (target === "bridge") bridgeSeq += r.sent;
      else expressSeq += r.sent;
      ctx.log(
        `ingest ${target}: ${int((r.ok * 1000) / r.elapsedMs)}/s over ${(r.elapsedMs / 1000).toFixed(1)} s`,
      );
      return r;
    };

    await roundOf("express", s.warmupMs);
    await roundOf("bridge", s.warmupMs);
    const before = await scrapeBridge(bridge.url);
    const sides: Record<"bridge" | "express", Side> = {
      bridge: { ok: 0, elapsedMs: 0, latencies: [], statuses: {}, rounds: [] },
      express: { ok: 0, elapsedMs: 0, latencies: [], statuses: {}, rounds: [] },
    };
    for (let round = 0; round < s.ingestRounds; round++) {
      const order = round % 2 === 0 ? (["bridge", "express"] as const) : (["express", "bridge"] as const);
      for (const target of order) add(sides[target], await roundOf(target, s.ingestRoundMs));
    }
    const after = await scrapeBridge(bridge.url);
    // The disk's share: bare Express whose answers wait for each body's fdatasync (one round, after).
    await roundOf("express + durable append", s.warmupMs);
    const floorRound = await roundOf("express + durable append", s.ingestRoundMs);
    const floorPerS = (floorRound.ok * 1000) / floorRound.elapsedMs;
    ctx.note(
      `ingest, ${describeRun(before?.metrics, after?.metrics)}; carts pending for HubSpot at the end ` +
        `${int(metric(after?.metrics, "carts_pending"))} (the /metrics scrape took ${ms(after?.tookMs ?? NaN)}).`,
    );
    ctx.shared.expressPeakRssBytes = express.peakRssBytes();
    ctx.log(
      `ingest: bridge peak RSS ${mb(bridge.peakRssBytes())}, express ${mb(ctx.shared.expressPeakRssBytes)}`,
    );

    const rate = (side: Side) => (side.ok * 1000) / side.elapsedMs;
    const [bp50 = NaN, bp99 = NaN] = percentiles(concat(sides.bridge.latencies), [50, 99]);
    const [ep50 = NaN, ep99 = NaN] = percentiles(concat(sides.express.latencies), [50, 99]);
    const ratio = rate(sides.bridge) / rate(sides.express);
    ctx.shared.ingest = {
      bridgePerS: rate(sides.bridge),
      expressPerS: rate(sides.express),
      connections: s.connections,
    };
    const rounds = (side: Side) => side.rounds.map((r) => int(r)).join(", ");
    ctx.note(
      `ingest: deliveries/s per round — bridge ${rounds(sides.bridge)}; express ${rounds(sides.express)}. ` +
        `Answers — bridge ${JSON.stringify(sides.bridge.statuses)}, express ${JSON.stringify(sides.express.statuses)}.` +
        (bridgeSource.signedOnDemand() > 0
          ? ` ${int(bridgeSource.signedOnDemand())} bridge deliveries were signed during the run (pre-signed list exhausted).`
          : ""),
    );
    return [
      {
        measure: `ingest throughput, ${s.connections} connections, closed loop (deliveries/s answered 200)`,
        bridge: `${int(rate(sides.bridge))}/s`,
        baseline: `${int(rate(sides.express))}/s (bare Express); ${int(floorPerS)}/s (${pct(floorPerS / rate(sides.express))}) with each body fdatasync'ed before the answer`,
        ratio: `${pct(ratio)} of baseline`,
        target: `≥ ${pct(INGEST_TARGET)} of baseline`,
        met: ratio >= INGEST_TARGET,
      },
      {
        measure: "answer latency at that load, p50 / p99",
        bridge: `${ms(bp50)} / ${ms(bp99)}`,
        baseline: `${ms(ep50)} / ${ms(ep99)}`,
        ratio: "–",
        target: "–",
        met: undefined,
      },
    ];
  });
}
