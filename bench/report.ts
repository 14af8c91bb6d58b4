/** The results table: one row per measured figure, the bridge beside its baseline and its target. */
import type { MachineInfo } from "./machine.ts";
import type { Settings } from "./settings.ts";

export interface Row {
  readonly measure: string;
  readonly bridge: string;
  readonly baseline: string;
  /** The bridge against the baseline (e.g. "74 % of baseline"), or "–". */
  readonly ratio: string;
  readonly target: string;
  /** undefined: informational, no target. */
  readonly met: boolean | undefined;
}

function cell(s: string): string {
  return s.replaceAll("|", "\\|").replaceAll("\n", " ");
}

export function markdownTable(rows: readonly Row[]): string {
  const verdict = (met: boolean | undefined): string => (met === undefined ? "" : met ? "met" : "**missed**");
  return [
    "| measure | bridge | baseline | bridge vs baseline | target (SPEC §8) | |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${[r.measure, r.bridge, r.baseline, r.ratio, r.target, verdict(r.met)].map(cell).join(" | ")} |`,
    ),
  ].join("\n");
}

export interface Report {
  readonly rows: readonly Row[];
  /** Per-measure remarks: settings actually used, noise, failures. */
  readonly notes: readonly string[];
  readonly machine: MachineInfo;
  readonly settings: Settings;
  readonly startedAt: Date;
  readonly elapsedS: number;
}

export function resultsMarkdown(report: Report): string {
  const { machine, settings } = report;
  const met = report.rows.filter((r) => r.met === true).length;
  const targets = report.rows.filter((r) => r.met !== undefined).length;
  return [
    "# cartbridge benchmark results",
    "",
    `Written by \`npm run bench${settings.mode === "full" ? " -- --full" : ""}\` (${settings.mode} mode) on ${report.startedAt.toISOString()}, ` +
      `in ${report.elapsedS.toFixed(0)} s. ${met} of ${targets} target rows met.`,
    "",
    `- machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB memory, ${machine.os}`,
    `- Node ${machine.node}; code at ${machine.git}`,
    `- settings: ${describeSettings(settings)}`,
    "",
    markdownTable(report.rows),
    "",
    "Notes:",
    "",
    ...report.notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
}

export function describeSettings(s: Settings): string {
  return [
    `load: ${s.connections} keep-alive connections (undici), each delivery a signed ${s.bodyBytes}-byte checkouts/update with its own webhook id`,
    `ingest: ${s.ingestRounds} alternating rounds of ${s.ingestRoundMs / 1000} s per server after ${s.warmupMs / 1000} s warm-up`,
    `PostgreSQL ingest: 1 replica, then 2 replicas sharing a fresh schema (connections split evenly), ${s.postgresRunMs / 1000} s each after ${s.warmupMs / 1000} s warm-up`,
    `fixed rate: ${s.fixedRatePerS}/s for ${s.fixedRateMs / 1000} s`,
    `burst: D = ${s.burstCarts}`,
    `change → HubSpot: ${s.changeRatePerS}/s for ${s.changeMs / 1000} s, FLUSH_INTERVAL_MS=${s.flushIntervalMs}`,
    `sync: ${s.syncBacklog} carts backlog, ${s.syncWindowMs / 1000} s window`,
    `memory: ${s.memoryDeliveries} deliveries`,
    `verifier: ${s.verifyIterations} deliveries`,
    "bridge: SQLite in a temp dir (answers once the raw delivery is fdatasync'ed in its inbox; batches applied behind, WAL, synchronous=NORMAL), LOG_LEVEL=info, HUBSPOT_SYNC_CONTACTS=false, HUBSPOT_SYNC_LINE_ITEMS=false (but in the line item burst)",
  ].join("; ");
}
