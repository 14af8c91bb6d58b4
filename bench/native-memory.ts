/**
 * What the bridge's resident memory is made of, from Linux's own accounts rather than the process's: its
 * mappings in /proc/<pid>/smaps grouped by kind, and the garbage collector's time from /metrics. The memory
 * measure takes a breakdown whenever the RSS reaches a new high, so the note describes the peak itself.
 *
 * Glossary of the groups (heuristic where marked, since smaps names no owner for anonymous memory):
 * - **code**: file-backed pages of the node binary and shared libraries (touched code and read-only data).
 * - **V8 pages**: anonymous read-write mappings of exactly 256 kB, V8's page size (heuristic: V8 maps its
 *   heap in such pages; pooled pages V8 has freed but not yet unmapped count here, not in its heap figures).
 * - **malloc main**: the `[heap]` segment (glibc's main arena: SQLite's page cache, Buffers, V8's malloced
 *   zones on the main thread).
 * - **other anonymous**: everything else anonymous (heuristic: glibc's per-thread arenas, mapped large
 *   allocations, thread stacks, V8's code range).
 * - **SQLite shm**: the WAL index (`-shm`), mapped by every connection; it grows with the WAL.
 */
import { readFileSync, statSync } from "node:fs";
import { metric, type MetricSample } from "./bridge-metrics.ts";
import { procMemoryBytes } from "./processes.ts";
import { mb, ms } from "./stats.ts";

export interface NativeBreakdown {
  readonly rssBytes: number;
  readonly codeBytes: number;
  readonly v8PagesBytes: number;
  readonly mallocMainBytes: number;
  readonly otherAnonBytes: number;
  readonly sqliteShmBytes: number;
  readonly otherFileBytes: number;
  readonly threads: number;
}

export interface RssSampler {
  /** [ms since the start, VmRSS bytes], every `everyMs`. */
  readonly samples: ReadonlyArray<readonly [number, number]>;
  /** The breakdown taken at the highest VmRSS sampled so far. */
  readonly atHigh: NativeBreakdown | undefined;
  stop(): void;
}

/**
 * Samples `pid`'s VmRSS every `everyMs` and, at every new high, what it is made of (reading smaps takes a
 * few ms of the bench's own time, only then).
 */
export function sampleRss(pid: number, everyMs = 500): RssSampler {
  const samples: Array<readonly [number, number]> = [];
  const started = Date.now();
  let atHigh: NativeBreakdown | undefined;
  let highest = 0;
  const timer = setInterval(() => {
    const rss = procMemoryBytes(pid, "VmRSS");
    if (rss === undefined) return;
    if (rss > highest) {
      highest = rss;
      atHigh = nativeBreakdown(pid) ?? atHigh;
    }
    samples.push([Date.now() - started, rss]);
  }, everyMs);
  return {
    samples,
    get atHigh() {
      return atHigh;
    },
    stop: () => clearInterval(timer),
  };
}

const V8_PAGE_KB = 256;
const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/;

/** The breakdown of `pid`'s resident memory now; undefined where /proc is not readable (or it is gone). */
export function nativeBreakdown(pid: number): NativeBreakdown | undefined {
  let smaps: string;
  let status: string;
  try {
    smaps = readFileSync(`/proc/${pid}/smaps`, "utf8");
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = { code: 0, v8: 0, main: 0, anon: 0, shm: 0, file: 0 };
  let group: keyof typeof kb = "anon";
  for (const line of smaps.split("\n")) {
    const head = HEADER.exec(line);
    if (head !== null) {
      const sizeKb = (parseInt(head[2] ?? "0", 16) - parseInt(head[1] ?? "0", 16)) / 1024;
      const name = head[4] ?? "";
      group =
        name === "[heap]"
          ? "main"
          : name.endsWith("-shm")
            ? "shm"
            : name.startsWith("/")
              ? /\/(node|[^/]*\.so[^/]*)$/.test(name)
                ? "code"
                : "file"
              : name === "" && sizeKb === V8_PAGE_KB && head[3] === "rw-p"
                ? "v8"
                : "anon";
      continue;
    }
    if (line.startsWith("Rss:")) kb[group] += Number(/(\d+)/.exec(line)?.[1] ?? 0);
  }
  const total = Object.values(kb).reduce((a, b) => a + b, 0);
  return {
    rssBytes: total * 1024,
    codeBytes: kb.code * 1024,
    v8PagesBytes: kb.v8 * 1024,
    mallocMainBytes: kb.main * 1024,
    otherAnonBytes: kb.anon * 1024,
    sqliteShmBytes: kb.shm * 1024,
    otherFileBytes: kb.file * 1024,
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN),
  };
}

export function describeBreakdown(b: NativeBreakdown): string {
  return (
    `RSS ${mb(b.rssBytes)} = code ${mb(b.codeBytes)} + V8 pages ${mb(b.v8PagesBytes)} + malloc main arena ` +
    `${mb(b.mallocMainBytes)} + other anonymous ${mb(b.otherAnonBytes)} (thread arenas, stacks, large ` +
    `allocations) + SQLite shm ${mb(b.sqliteShmBytes)} + other files ${mb(b.otherFileBytes)}; ${b.threads} threads`
  );
}

/** Garbage collection time in a scrape (prom-client's nodejs_gc_duration_seconds), per 1,000 deliveries. */
export function describeGc(m: MetricSample | undefined, deliveries: number): string {
  const seconds = (kind: string) => metric(m, `nodejs_gc_duration_seconds_sum{kind="${kind}"}`);
  const count = (kind: string) => metric(m, `nodejs_gc_duration_seconds_count{kind="${kind}"}`);
  const per1000 = (kind: string) => ms((seconds(kind) * 1000 * 1000) / Math.max(1, deliveries));
  return (
    `GC: ${count("minor")} minor (${per1000("minor")} per 1,000 deliveries), ${count("major")} major ` +
    `(${per1000("major")}), ${count("incremental")} incremental marking steps (${per1000("incremental")})`
  );
}

/** Size of a file in bytes; undefined when it does not exist. */
export function fileBytes(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}
