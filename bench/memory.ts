/**
 * Peak RSS of the bridge process (VmHWM from /proc) through N deliveries at full speed, while it also syncs
 * to its sandbox (190 requests / 10 s). Changes go round N / 4 carts, so most carts are changed several
 * times, as a shop's are. The baseline is the bare Express server's peak under the ingest measure's load.
 * Every few seconds the bridge's own /metrics is scraped, so the notes can say what the resident memory is
 * made of (V8 heap, external buffers, the rest: SQLite, code, allocator) and what a scrape costs meanwhile.
 */
import { describeMemory, metric, scrapeBridge, type Scraped } from "./bridge-metrics.ts";
import { bridgeIn, sandboxIn, type BenchContext } from "./context.ts";
import { onDemand } from "./deliveries.ts";
import { runLoad } from "./load.ts";
import { describeBreakdown, describeGc, fileBytes, sampleRss } from "./native-memory.ts";
import type { Row } from "./report.ts";
import { withScope } from "./scope.ts";
import { int, mb, ms } from "./stats.ts";

export const MEMORY_TARGET_BYTES = 200 * 1024 * 1024;
const SPEC_DELIVERIES = 200_000;
const SCRAPE_EVERY_MS = 5_000;

export function measureMemory(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  const n = s.memoryDeliveries;
  const carts = Math.max(1, Math.floor(n / 4));
  return withScope(async (scope) => {
    const sandbox = await sandboxIn(scope, { recordRequests: false, maxRequestsPer10s: 190 });
    const bridge = await bridgeIn(ctx, scope, "memory", sandbox.url, { HUBSPOT_MAX_REQUESTS_PER_10S: "190" });
    const sampler = sampleRss(bridge.pid);
    scope.defer(() => sampler.stop());
    const { samples } = sampler;
    const scrapes: Scraped[] = [];
    const scraper = setInterval(() => {
      void scrapeBridge(bridge.url).then((sc) => sc !== undefined && scrapes.push(sc));
    }, SCRAPE_EVERY_MS);
    scope.defer(() => clearInterval(scraper));

    const r = await runLoad({
      url: bridge.url,
      source: onDemand((seq) => seq % carts),
      connections: s.connections,
      durationMs: 600_000,
      count: n,
      onProgress: (answered) =>
        ctx.log(`memory: ${int(answered)} deliveries, RSS ${mb(samples.at(-1)?.[1])}`),
      progressEveryMs: 10_000,
    });
    sampler.stop();
    clearInterval(scraper);
    const last = await scrapeBridge(bridge.url);
    if (last !== undefined) scrapes.push(last);
    const peak = bridge.peakRssBytes();
    const rssOf = (sc: Scraped) => metric(sc.metrics, "process_resident_memory_bytes");
    const atPeak = scrapes.reduce<Scraped | undefined>(
      (best, sc) => (best === undefined || rssOf(sc) > rssOf(best) ? sc : best),
      undefined,
    );
    const slowest = Math.max(...scrapes.map((sc) => sc.tookMs));
    const atQuarters = [0.25, 0.5, 0.75, 1].map((q) =>
      mb(samples[Math.min(samples.length - 1, Math.floor(q * samples.length) - 1)]?.[1]),
    );
    ctx.log(`memory: peak RSS ${mb(peak)} through ${int(r.sent)} deliveries`);
    ctx.note(
      `memory: ${int(r.sent)} deliveries over ${int(carts)} carts in ${(r.elapsedMs / 1000).toFixed(1)} s ` +
        `(${int((r.ok * 1000) / r.elapsedMs)}/s, answers ${JSON.stringify(r.statuses)}); RSS at the end of each quarter ` +
        `${atQuarters.join(", ")}; peak (VmHWM) ${mb(peak)}.` +
        (atPeak === undefined ? "" : ` At the largest scraped RSS: ${describeMemory(atPeak.metrics)}.`) +
        (sampler.atHigh === undefined
          ? ""
          : ` At the highest sampled RSS (smaps): ${describeBreakdown(sampler.atHigh)}.`) +
        (last === undefined ? "" : ` ${describeGc(last.metrics, r.sent)}.`) +
        ` WAL at the end ${mb(fileBytes(`${bridge.dbPath}-wal`))}.` +
        ` A /metrics scrape took up to ${ms(slowest)} (${scrapes.length} scrapes).` +
        (n < SPEC_DELIVERIES
          ? ` Quick mode: ${int(n)} deliveries, not the SPEC's ${int(SPEC_DELIVERIES)} (use --full).`
          : ""),
    );
    return [
      {
        measure: `peak RSS through ${int(n)} deliveries${n < SPEC_DELIVERIES ? " (quick mode; SPEC: 200,000)" : ""}`,
        bridge: mb(peak),
        baseline: `${mb(ctx.shared.expressPeakRssBytes)} (bare Express, ingest run)`,
        ratio:
          ctx.shared.expressPeakRssBytes === undefined || peak === undefined
            ? "–"
            : `${(peak / ctx.shared.expressPeakRssBytes).toFixed(1)}× baseline`,
        target: `≤ ${mb(MEMORY_TARGET_BYTES)}`,
        met: peak !== undefined && r.ok === r.sent && peak <= MEMORY_TARGET_BYTES,
      },
    ];
  });
}
