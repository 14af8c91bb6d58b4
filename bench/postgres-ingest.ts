/**
 * Ingest throughput of the bridge on PostgreSQL: one replica, then two replicas (two bridge child processes
 * on the same fresh schema, the connections split evenly between them), each configuration after its own
 * warm-up, with the same generator, the same signed ~5 kB deliveries (every one a new cart, its own webhook
 * id) and the same sandbox HubSpot as the SQLite ingest measure. Shown against the bare Express baseline the
 * ingest measure took in this run when it ran; otherwise as absolute figures.
 *
 * The database is a fresh schema in the server at TEST_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres, what scripts/start-postgres.sh starts), made and dropped by the
 * test store factory. When no server answers, the measure is skipped and its row says why.
 */
import { storeFactories } from "../test/helpers/stores.ts";
import { describeRun, metric, scrapeBridge, type Scraped } from "./bridge-metrics.ts";
import { bridgeIn, sandboxIn, type BenchContext } from "./context.ts";
import { presign } from "./deliveries.ts";
import { runLoad, type LoadResult } from "./load.ts";
import type { Bridge } from "./processes.ts";
import type { Row } from "./report.ts";
import { withScope } from "./scope.ts";
import { int, mb, ms, pct, percentiles } from "./stats.ts";

/** Deliveries pre-signed per configuration and second (beyond this they are signed on demand; noted). */
const PRESIGN_PER_S = 4_000;
/** Replica r sends changes from r × this on: disjoint carts, webhook ids and markers across replicas. */
const SEQ_SPAN = 10_000_000;

interface Outcome {
  readonly replicas: number;
  readonly perS: number;
  readonly p50: number;
  readonly p99: number;
  readonly perReplica: readonly number[];
  readonly statuses: Record<string, number>;
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

/** `connections` split as evenly as possible over `n` replicas. */
function split(connections: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(connections / n) + (i < connections % n ? 1 : 0));
}

async function measureReplicas(ctx: BenchContext, databaseUrl: string, replicas: number): Promise<Outcome> {
  const s = ctx.settings;
  return withScope(async (scope) => {
    const sandbox = await sandboxIn(scope, { recordRequests: false });
    // One after the other: each migrates on start (an advisory lock serialises that anyway).
    const bridges: Bridge[] = [];
    for (let r = 0; r < replicas; r++) {
      bridges.push(
        await bridgeIn(ctx, scope, `postgres-${replicas}r-${r}`, sandbox.url, { DATABASE_URL: databaseUrl }),
      );
    }
    const connections = split(s.connections, replicas);
    const seconds = (s.warmupMs + s.postgresRunMs) / 1000;
    const sources = bridges.map((_, r) =>
      presign(Math.ceil((seconds * PRESIGN_PER_S) / replicas), (seq) => seq, {
        first: r * SEQ_SPAN,
        beyond: "sign",
      }),
    );
    const next = bridges.map((_, r) => r * SEQ_SPAN);

    /** Every replica loaded at once, each with its share of the connections, for `durationMs`. */
    const run = async (durationMs: number, what: string): Promise<LoadResult[]> => {
      const results = await Promise.all(
        bridges.map((bridge, r) =>
          runLoad({
            url: bridge.url,
            source: sources[r] ?? sources[0]!,
            connections: connections[r] ?? 1,
            durationMs,
            firstSeq: next[r] ?? 0,
          }),
        ),
      );
      results.forEach((res, r) => (next[r] = (next[r] ?? 0) + res.sent));
      const ok = results.reduce((n, res) => n + res.ok, 0);
      const elapsed = Math.max(...results.map((res) => res.elapsedMs));
      ctx.log(
        `postgres ${replicas} replica${replicas === 1 ? "" : "s"} ${what}: ${int((ok * 1000) / elapsed)}/s over ${(elapsed / 1000).toFixed(1)} s`,
      );
      return results;
    };

    await run(s.warmupMs, "warm-up");
    const before = await Promise.all(bridges.map((b) => scrapeBridge(b.url)));
    const results = await run(s.postgresRunMs, "run");
    const after = await Promise.all(bridges.map((b) => scrapeBridge(b.url)));

    const ok = results.reduce((n, res) => n + res.ok, 0);
    const elapsed = Math.max(...results.map((res) => res.elapsedMs));
    const [p50 = NaN, p99 = NaN] = percentiles(concat(results.map((res) => res.latenciesMs)), [50, 99]);
    const statuses: Record<string, number> = {};
    for (const res of results)
      for (const [status, n] of Object.entries(res.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
    const late = sources.reduce((n, src) => n + src.signedOnDemand(), 0);
    const evidence = bridges.map((b, r) => {
      const a: Scraped | undefined = after[r];
      return (
        `replica ${r + 1} (${connections[r]} connections, peak RSS ${mb(b.peakRssBytes())}): ` +
        `${describeRun(before[r]?.metrics, a?.metrics)}; carts pending for HubSpot at the end ` +
        `${int(metric(a?.metrics, "carts_pending"))}`
      );
    });
    ctx.note(
      `postgres, ${replicas} replica${replicas === 1 ? "" : "s"}: ${evidence.join("; ")}. ` +
        `Answers ${JSON.stringify(statuses)}.` +
        (late > 0 ? ` ${int(late)} deliveries were signed during the run (pre-signed list exhausted).` : ""),
    );
    return {
      replicas,
      perS: (ok * 1000) / elapsed,
      p50,
      p99,
      perReplica: results.map((res) => (res.ok * 1000) / res.elapsedMs),
      statuses,
    };
  });
}

export async function measurePostgresIngest(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  const measure = (replicas: number): string =>
    `ingest throughput on PostgreSQL, ${replicas} replica${replicas === 1 ? "" : "s"}, ${s.connections} connections` +
    (replicas === 1 ? "" : ` (${split(s.connections, replicas).join(" + ")})`) +
    ", closed loop (deliveries/s answered 200; answer latency p50 / p99)";

  const postgres = (await storeFactories()).find((f) => f.name === "postgres");
  if (postgres === undefined) throw new Error("bench: the store factories have no postgres factory");
  if (postgres.unavailable !== undefined) {
    ctx.log(`postgres: skipped — ${postgres.unavailable}`);
    ctx.note(`postgres: skipped — ${postgres.unavailable}.`);
    return [1, 2].map((replicas) => ({
      measure: measure(replicas),
      bridge: "skipped: PostgreSQL not reachable (see notes)",
      baseline: "–",
      ratio: "–",
      target: "–",
      met: undefined,
    }));
  }

  const outcomes: Outcome[] = [];
  try {
    for (const replicas of [1, 2])
      outcomes.push(await measureReplicas(ctx, await postgres.freshUrl(), replicas));
  } finally {
    await postgres.cleanup();
  }

  const ingest = ctx.shared.ingest;
  const sameLoad = ingest !== undefined && ingest.connections === s.connections;
  if (ingest === undefined)
    ctx.note("postgres: the ingest measure did not run, so there is no Express baseline to compare with.");
  ctx.note(
    'postgres: the PostgreSQL server is not a child of the bench, so its CPU counts as "other processes" ' +
      "in the noise figure for this measure (on a 2-core machine it shares the cores with the bridges and the generator).",
  );
  const rows: Row[] = [];
  for (const o of outcomes) {
    const ratio = sameLoad ? o.perS / ingest.expressPerS : NaN;
    rows.push({
      measure: measure(o.replicas),
      bridge:
        `${int(o.perS)}/s` +
        (o.replicas === 1 ? "" : ` (${o.perReplica.map((r) => `${int(r)}/s`).join(" + ")})`) +
        `, p50 / p99 ${ms(o.p50)} / ${ms(o.p99)}`,
      baseline: sameLoad
        ? `${int(ingest.expressPerS)}/s (bare Express, ingest measure); SQLite bridge ${int(ingest.bridgePerS)}/s`
        : "–",
      ratio: sameLoad
        ? `${pct(ratio)} of baseline (SQLite bridge ${pct(ingest.bridgePerS / ingest.expressPerS)})`
        : "–",
      // SPEC §8's ingest target is the SQLite bridge's; this row is informational.
      target: "–",
      met: undefined,
    });
  }
  return rows;
}
