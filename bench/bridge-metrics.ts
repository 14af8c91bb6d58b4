/**
 * The bridge's own view of a run, from its Prometheus /metrics: group commits (how many, how large, how
 * long), the event loop's delay (prom-client's monitor, reset at every scrape, so a scrape before a run and
 * one after cover exactly the run) and its memory. Used in the notes as evidence of what limits a figure.
 */
import { mb, ms } from "./stats.ts";

export type MetricSample = ReadonlyMap<string, number>;

export interface Scraped {
  readonly metrics: MetricSample;
  readonly tookMs: number;
}

/** Parses the text format: "name{labels} value" lines into a map keyed by "name{labels}". */
function parse(text: string): MetricSample {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

export async function scrapeBridge(url: string): Promise<Scraped | undefined> {
  const started = performance.now();
  try {
    const res = await fetch(`${url}/metrics`);
    const text = await res.text();
    return { metrics: parse(text), tookMs: performance.now() - started };
  } catch {
    return undefined;
  }
}

export function metric(m: MetricSample | undefined, name: string): number {
  return m?.get(name) ?? Number.NaN;
}

/**
 * prom-client's event-loop figures come from a `monitorEventLoopDelay` histogram with its default 10 ms
 * resolution, and Node records the whole time between two of its timer's runs: an idle loop reads 10 ms. The
 * delay itself is that less the interval (measured on an idle process: p50 10.0 ms, p99 11.1 ms).
 */
export const LOOP_SAMPLING_MS = 10;

/** The event loop's delay (ms) from a scrape's `nodejs_eventloop_lag_<which>_seconds`, less the sampling interval. */
export function loopDelayMs(m: MetricSample | undefined, which: "p99" | "max"): number {
  return Math.max(0, metric(m, `nodejs_eventloop_lag_${which}_seconds`) * 1000 - LOOP_SAMPLING_MS);
}

/** Group commits between two scrapes, and the event loop's delay up to the second one. */
export function describeRun(before: MetricSample | undefined, after: MetricSample | undefined): string {
  const delta = (name: string) => metric(after, name) - (before === undefined ? 0 : metric(before, name));
  const commits = delta("store_group_commit_deliveries_count");
  const deliveries = delta("store_group_commit_deliveries_sum");
  const commitSeconds = delta("store_group_commit_duration_seconds_sum");
  const lagP99 = loopDelayMs(after, "p99");
  const lagMax = loopDelayMs(after, "max");
  return (
    `bridge metrics for the run: ${commits.toFixed(0)} group commits, ${(deliveries / commits).toFixed(1)} deliveries ` +
    `per commit, ${ms((commitSeconds * 1000) / commits)} per commit (${ms((commitSeconds * 1000) / Math.max(1, deliveries))} ` +
    `per delivery) spent committing; event-loop delay p99 ${ms(lagP99)}, max ${ms(lagMax)} (beyond prom-client's 10 ms sampling interval)`
  );
}

export function describeMemory(m: MetricSample | undefined): string {
  const rss = metric(m, "process_resident_memory_bytes");
  const heapTotal = metric(m, "nodejs_heap_size_total_bytes");
  const external = metric(m, "nodejs_external_memory_bytes");
  return (
    `RSS ${mb(rss)} = V8 heap ${mb(heapTotal)} reserved (${mb(metric(m, "nodejs_heap_size_used_bytes"))} used; ` +
    `young generation ${mb(metric(m, 'nodejs_heap_space_size_total_bytes{space="new"}'))}, old ` +
    `${mb(metric(m, 'nodejs_heap_space_size_total_bytes{space="old"}'))}) + external ${mb(external)} + ` +
    `${mb(rss - heapTotal - external)} other (code, SQLite, allocator)`
  );
}
