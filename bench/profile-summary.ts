/**
 * Reads a V8 `.cpuprofile` (from `--cpu-prof`) and summarises where the time went: self time by function
 * and by area (our code by file, dependencies by package, Node internals, GC, idle). Used by
 * `npm run bench -- --profile` and on its own: `node bench/profile-summary.ts <file.cpuprofile> [top]`.
 */
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Where a frame's code lives: "src/store/sqlite.ts", "express", "node:internal", "(garbage collector)"… */
function area(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  if (url.startsWith("node:")) return url.startsWith("node:internal") ? "node:internal" : url;
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = path.slice(nm + "node_modules/".length).split("/");
    return rest[0]?.startsWith("@") === true ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? path);
  }
  return relative(ROOT, path);
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly byArea: ReadonlyArray<readonly [string, number]>;
  readonly byFunction: ReadonlyArray<readonly [string, number]>;
}

export function summariseProfile(file: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  let totalMs = 0;
  for (const [id, timeMs] of self) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = area(url, functionName);
    const name = `${functionName || "(anonymous)"} ${where}${url === "" ? "" : `:${lineNumber + 1}`}`;
    areas.set(where, (areas.get(where) ?? 0) + timeMs);
    functions.set(name, (functions.get(name) ?? 0) + timeMs);
    totalMs += timeMs;
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { totalMs, byArea: sorted(areas), byFunction: sorted(functions) };
}

export function formatProfile(summary: ProfileSummary, top = 25): string {
  const busy = ([name]: readonly [string, number]) => !name.startsWith("(idle)");
  const busyMs = summary.totalMs - (summary.byArea.find(([a]) => a === "(idle)")?.[1] ?? 0);
  const line = ([name, t]: readonly [string, number]) =>
    `${t.toFixed(0).padStart(8)} ms ${((t / busyMs) * 100).toFixed(1).padStart(5)} %  ${name}`;
  return [
    `profile: ${summary.totalMs.toFixed(0)} ms sampled (the whole process: start-up, the run, shutdown), ` +
      `${busyMs.toFixed(0)} ms busy; percentages are of busy time`,
    "self time by area:",
    ...summary.byArea.filter(busy).slice(0, top).map(line),
    "self time by function:",
    ...summary.byFunction.filter(busy).slice(0, top).map(line),
  ].join("\n");
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === import.meta.filename) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write("usage: node bench/profile-summary.ts <file.cpuprofile> [top]\n");
    process.exitCode = 64;
  } else {
    process.stdout.write(`${formatProfile(summariseProfile(file), Number(top ?? 25))}\n`);
  }
}
