/**
 * What the numbers were measured on, and how much of the machine something else used meanwhile (on a shared
 * 2-core box a concurrent build or test run moves every figure; the table says when that happened).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  readonly git: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  let git = "unknown";
  try {
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty =
      execFileSync("git", ["status", "--porcelain", "--", "src"], { encoding: "utf8" }).trim() !== "";
    git = dirty ? `${rev} + uncommitted changes in src/` : rev;
  } catch {
    // not a git checkout
  }
  return {
    cpu: list[0]?.model.trim() ?? "unknown",
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    os: `${process.platform} ${readKernel()}`,
    git,
  };
}

function readKernel(): string {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return "";
  }
}

/** CPU time (in clock ticks) the whole machine and this benchmark's processes had used at one instant. */
export interface CpuSnapshot {
  readonly atMs: number;
  readonly machineBusy: number;
  readonly machineTotal: number;
  readonly ours: number;
}

function procTicks(pid: number | "self", withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at field 3.
    const fields = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    const [utime = 0, stime = 0, cutime = 0, cstime = 0] = fields.slice(11, 15);
    return utime + stime + (withChildren ? cutime + cstime : 0);
  } catch {
    return 0;
  }
}

/** `livePids`: the benchmark's children still running (exited ones are counted in our own cutime). */
export function cpuSnapshot(livePids: readonly number[]): CpuSnapshot | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const [, ...nums] = line.trim().split(/\s+/);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
      nums.map(Number);
    const busy = user + nice + system + irq + softirq + steal;
    const ours = procTicks("self", true) + livePids.reduce((sum, pid) => sum + procTicks(pid, false), 0);
    return { atMs: Date.now(), machineBusy: busy, machineTotal: busy + idle + iowait, ours };
  } catch {
    return undefined;
  }
}

/** The share of the machine's CPU capacity that other processes used between two snapshots (0–1). */
export function otherCpuShare(a: CpuSnapshot | undefined, b: CpuSnapshot | undefined): number | undefined {
  if (a === undefined || b === undefined || b.machineTotal <= a.machineTotal) return undefined;
  const other = b.machineBusy - a.machineBusy - (b.ours - a.ours);
  return Math.max(0, other / (b.machineTotal - a.machineTotal));
}

export function loadAverage1m(): number {
  return loadavg()[0] ?? 0;
}
