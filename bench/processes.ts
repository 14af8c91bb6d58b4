/**
 * The processes a measure runs against: the bridge (`node src/main.ts serve`, durable SQLite in a temp dir,
 * HubSpot = the fake sandbox) and the bare Express baseline, each a child process with its own port; and
 * their memory as Linux reports it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FakeHubSpotOptions } from "../test/fakes/hubspot-server.ts";
import { bridgeEnv, freePort, spawnBridge } from "../test/helpers/child.ts";
import { waitFor } from "../test/helpers/wait.ts";

export interface Served {
  readonly url: string;
  readonly pid: number;
  /** Peak resident set so far (VmHWM), in bytes. */
  peakRssBytes(): number | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

export interface BridgeOptions {
  readonly hubspotUrl: string;
  /** Environment on top of the bench defaults (FLUSH_INTERVAL_MS=1000, LOG_LEVEL=info, contacts and line items off). */
  readonly env?: Record<string, string>;
  /** Write a V8 CPU profile of the bridge into this directory (`--cpu-prof`). */
  readonly cpuProfileDir?: string;
}

export interface Bridge extends Served {
  readonly output: () => string;
  /** The SQLite file (its WAL is `${dbPath}-wal`). */
  readonly dbPath: string;
}

/** The number after `<field>:` in /proc/<pid>/<file>; undefined where /proc (or the field) is not there. */
function procField(pid: number, file: "status" | "io", field: string): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/${file}`, "utf8");
    const found = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1];
    return found === undefined ? undefined : Number(found);
  } catch {
    return undefined;
  }
}

/** VmHWM or VmRSS of `pid` from /proc, in bytes; undefined where /proc is not available. */
export function procMemoryBytes(pid: number, field: "VmHWM" | "VmRSS"): number | undefined {
  const kB = procField(pid, "status", field);
  return kB === undefined ? undefined : kB * 1024;
}

/**
 * Bytes `pid` has caused to be written to storage so far (`write_bytes` of /proc/<pid>/io: page-cache
 * writes counted when made, whether or not synced yet); undefined where /proc is not available.
 */
export function procWrittenBytes(pid: number): number | undefined {
  return procField(pid, "io", "write_bytes");
}

function stopper(proc: ChildProcess, exited: Promise<unknown>): (graceMs?: number) => Promise<void> {
  let stopping: Promise<void> | undefined;
  return (graceMs = 15_000) => {
    stopping ??= (async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
}

/** Store directories of bridges still running (removed on stop, or by `removeBridgeDirs` on interrupt). */
const liveDirs = new Set<string>();
const BENCH_DB = "bench.db";

export function removeBridgeDirs(): void {
  for (const dir of liveDirs) removeLiveDir(dir);
}

function removeLiveDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

export async function startBridge(opts: BridgeOptions): Promise<Bridge> {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-bench-"));
  liveDirs.add(dir);
  const port = await freePort();
  const env = bridgeEnv({
    hubspotUrl: opts.hubspotUrl,
    dbPath: join(dir, BENCH_DB),
    port,
    env: {
      FLUSH_INTERVAL_MS: "1000",
      LOG_LEVEL: "info",
      HUBSPOT_SYNC_CONTACTS: "false",
      // The cart targets are measured on carts alone (contacts and line items share the budget); the line
      // item burst (line-items-burst.ts) turns line items on.
      HUBSPOT_SYNC_LINE_ITEMS: "false",
      ...opts.env,
      ...(opts.cpuProfileDir === undefined
        ? {}
        : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${opts.cpuProfileDir}` }),
    },
  });
  if (opts.cpuProfileDir !== undefined) mkdirSync(opts.cpuProfileDir, { recursive: true });
  let child;
  try {
    child = await spawnBridge(env);
  } catch (error) {
    removeLiveDir(dir);
    throw error;
  }
  const { proc } = child;
  const pid = proc.pid ?? -1;
  const stop = stopper(proc, child.exited);
  let lastPeak: number | undefined;
  return {
    url: child.url,
    pid,
    output: child.output,
    dbPath: join(dir, BENCH_DB),
    peakRssBytes: () => (lastPeak = procMemoryBytes(pid, "VmHWM") ?? lastPeak),
    async stop(graceMs) {
      try {
        await stop(graceMs);
      } finally {
        removeLiveDir(dir);
      }
    },
  };
}

const BASELINE = fileURLToPath(new URL("./baseline-express.ts", import.meta.url));

/** Bare Express; `durable`: its answers wait for each body's fdatasync in an inbox (the disk's floor). */
export async function startExpressBaseline(opts: { durable?: boolean } = {}): Promise<Served> {
  const dir = opts.durable === true ? mkdtempSync(join(tmpdir(), "cartbridge-bench-floor-")) : undefined;
  if (dir !== undefined) liveDirs.add(dir);
  const removeDir = (): void => {
    if (dir !== undefined) removeLiveDir(dir);
  };
  try {
    const served = await startListening("express baseline", BASELINE, dir ? { DURABLE_DIR: dir } : {});
    return {
      ...served,
      async stop(graceMs) {
        try {
          await served.stop(graceMs);
        } finally {
          removeDir();
        }
      },
    };
  } catch (error) {
    removeDir();
    throw error;
  }
}

const SANDBOX = fileURLToPath(new URL("./sandbox-process.ts", import.meta.url));

/** The HubSpot sandbox in a process of its own (bench/sandbox-process.ts says why). */
export function startSandboxProcess(opts: FakeHubSpotOptions = {}): Promise<Served> {
  return startListening("HubSpot sandbox", SANDBOX, { SANDBOX_OPTIONS: JSON.stringify(opts) });
}

/** `node <script>` with PORT set (a free port, which it may ignore), ready once it prints "listening <port>". */
async function startListening(what: string, script: string, env: Record<string, string>): Promise<Served> {
  const port = await freePort();
  const proc = spawn(process.execPath, [script], {
    env: { PATH: process.env["PATH"] ?? "", PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
  proc.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const stop = stopper(proc, exited);
  const pid = proc.pid ?? -1;
  let listening: string | undefined;
  try {
    await waitFor(
      () => {
        if (proc.exitCode !== null) throw new Error(`${what} exited early:\n${output}`);
        listening = /listening (\d+)/.exec(output)?.[1];
        return listening !== undefined;
      },
      { what, timeoutMs: 20_000 },
    );
  } catch (error) {
    await stop(1000);
    throw error;
  }
  let lastPeak: number | undefined;
  return {
    url: `http://127.0.0.1:${listening}`,
    pid,
    peakRssBytes: () => (lastPeak = procMemoryBytes(pid, "VmHWM") ?? lastPeak),
    stop,
  };
}

/** Waits until the bridge's /readyz answers 200 (it has read the sandbox's cart properties). */
export async function waitReady(url: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      try {
        const res = await fetch(`${url}/readyz`);
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    { what: "bridge /readyz", timeoutMs, intervalMs: 50 },
  );
}
