/**
 * `npm run bench`: every SPEC §8 target measured beside its baseline in one run, on loopback only, bounded
 * in time. Prints one table and writes it, with the machine and settings, to bench/results.md.
 *
 *   npm run bench                        quick mode (a few minutes on 2 cores)
 *   npm run bench -- --full              full mode (longer runs, memory through 200,000 deliveries)
 *   npm run bench -- --only=ingest,sync  a subset: verify, ingest, postgres, latency, burst, lines, change, sync,
 *                                        memory (always run in that order)
 *   npm run bench -- --profile           CPU-profile each bridge run (bench/out/profiles/) and summarise it
 *
 * Exit code 0 when every measure ran (targets met or not: this is a benchmark, not a test), 1 when a measure
 * could not run, 130 when interrupted. Child processes are stopped on every path.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { measureBurst } from "./burst.ts";
import { measureChangeLatency } from "./change-latency.ts";
import type { BenchContext } from "./context.ts";
import { buildDelivery } from "./deliveries.ts";
import { measureIngest } from "./ingest.ts";
import { measureLineItemBurst } from "./line-items-burst.ts";
import { measureFixedRateLatency } from "./latency.ts";
import { cpuSnapshot, loadAverage1m, machineInfo, otherCpuShare } from "./machine.ts";
import { measureMemory } from "./memory.ts";
import { measurePostgresIngest } from "./postgres-ingest.ts";
import { measureReconcile } from "./reconcile.ts";
import { removeBridgeDirs } from "./processes.ts";
import { markdownTable, resultsMarkdown, type Row } from "./report.ts";
import { parseSettings, type MeasureName } from "./settings.ts";
import { pct } from "./stats.ts";
import { measureSync } from "./sync.ts";
import { measureVerifyCost } from "./verify-cost.ts";

const RESULTS = fileURLToPath(new URL("./results.md", import.meta.url));
/** Above this share of the machine used by other processes during a measure, the notes flag it. */
const NOISY = 0.05;

const MEASURE_FNS: Record<MeasureName, (ctx: BenchContext) => Promise<Row[]>> = {
  verify: measureVerifyCost,
  ingest: measureIngest,
  postgres: measurePostgresIngest,
  latency: measureFixedRateLatency,
  burst: measureBurst,
  lines: measureLineItemBurst,
  change: measureChangeLatency,
  sync: measureSync,
  memory: measureMemory,
  reconcile: measureReconcile,
};

async function main(): Promise<number> {
  const settings = parseSettings(process.argv.slice(2), buildDelivery(0, 0).body.length);
  const startedAt = new Date();
  const machine = machineInfo();
  const notes: string[] = [];
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const ctx: BenchContext = {
    settings,
    log,
    note: (line) => notes.push(line),
    livePids: new Set(),
    shared: {},
  };

  const interrupt = (signal: NodeJS.Signals): void => {
    log(`bench: ${signal}; stopping child processes`);
    for (const pid of ctx.livePids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    removeBridgeDirs();
    process.exit(130);
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);

  log(`cartbridge bench, ${settings.mode} mode: ${settings.only.join(", ")}`);
  log(
    `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, load average ${loadAverage1m().toFixed(2)}`,
  );
  const rows: Row[] = [];
  let failed = 0;
  for (const name of settings.only) {
    log(`\n— ${name}`);
    const before = cpuSnapshot([...ctx.livePids]);
    const started = performance.now();
    try {
      rows.push(...(await MEASURE_FNS[name](ctx)));
    } catch (error) {
      failed++;
      const message = error instanceof Error ? error.message : String(error);
      log(`${name} failed: ${error instanceof Error ? (error.stack ?? message) : message}`);
      rows.push({
        measure: name,
        bridge: `failed: ${message.split("\n")[0] ?? ""}`,
        baseline: "–",
        ratio: "–",
        target: "–",
        met: false,
      });
    }
    const other = otherCpuShare(before, cpuSnapshot([...ctx.livePids]));
    const seconds = (performance.now() - started) / 1000;
    log(
      `${name}: ${seconds.toFixed(0)} s${other === undefined ? "" : `, other processes used ${pct(other)} of the machine`}`,
    );
    if (other !== undefined && other > NOISY) {
      notes.push(
        `${name}: other processes used ${pct(other)} of the machine's CPU during this measure; its figures are disturbed by that.`,
      );
    }
  }

  const elapsedS = (Date.now() - startedAt.getTime()) / 1000;
  const table = markdownTable(rows);
  process.stdout.write(`\n${table}\n\n`);
  for (const note of notes) process.stdout.write(`- ${note}\n`);
  writeFileSync(RESULTS, resultsMarkdown({ rows, notes, machine, settings, startedAt, elapsedS }));
  log(`\nwritten to ${RESULTS} (${elapsedS.toFixed(0)} s)`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
