/**
 * Process-level helpers for the reliability suite: the bridge as a child process, its memory, what its
 * SQLite file holds, sending generated deliveries, a seeded random source, and tmpfs mounts for disk faults.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { readUnapplied } from "../../src/store/inbox-file.ts";
import { bridgeEnv, freePort, MAIN, NODE_FLAGS, type ChildBridge } from "./child.ts";
import type { GeneratedDelivery } from "./reliability-deliveries.ts";
import { buildDelivery } from "./shopify.ts";
import { waitFor } from "./wait.ts";

/** A positive integer from the environment, or `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

/** mulberry32: a small seeded PRNG, so a failing run can be repeated with RELIABILITY_SEED. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function suiteSeed(): number {
  return envInt("RELIABILITY_SEED", Math.floor(Math.random() * 2 ** 31) + 1);
}

/**
 * Starts `node src/main.ts serve` on a fresh port against `dbPath`; resolves when /healthz answers. Like
 * child.ts's spawnBridge, but the process is killed when it does not come up, so a failed start leaks nothing.
 */
export async function startChild(opts: {
  hubspotUrl: string;
  dbPath: string;
  env?: Record<string, string>;
  /** The process's working directory (a relative `dbPath` is read from it). */
  cwd?: string;
}): Promise<ChildBridge> {
  const env = bridgeEnv({
    hubspotUrl: opts.hubspotUrl,
    dbPath: opts.dbPath,
    port: await freePort(),
    env: opts.env ?? {},
  });
  const proc = spawn(process.execPath, [...NODE_FLAGS, MAIN, "serve"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  });
  let output = "";
  proc.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
  proc.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const child: ChildBridge = { proc, url: `http://127.0.0.1:${env["PORT"]}`, output: () => output, exited };
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`bridge exited early:\n${output}`);
        try {
          return (await fetch(`${child.url}/healthz`)).status === 200;
        } catch {
          return false;
        }
      },
      { what: "child bridge /healthz", timeoutMs: 20_000 },
    );
  } catch (error) {
    await killChild(child);
    throw error;
  }
  return child;
}

/** SIGKILLs the child (if still running) and waits for it to be gone. */
export async function killChild(child: ChildBridge | undefined): Promise<void> {
  if (child === undefined) return;
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGKILL");
  await child.exited;
}

/** VmHWM (peak resident set) and VmRSS of a live process, in MiB, from /proc/<pid>/status. */
export function memoryOf(pid: number): { hwmMiB: number; rssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { hwmMiB: kib("VmHWM") / 1024, rssMiB: kib("VmRSS") / 1024 };
}

export interface StoreContents {
  /**
   * Webhook ids of durable deliveries: committed to the database, or (a SQLite file's inbox) fsynced in the
   * inbox past the position the database has applied — the next start applies those first.
   */
  readonly deliveryIds: Set<string>;
  readonly carts: number;
  readonly deadLetters: number;
}

function readContents(db: DatabaseSync): StoreContents {
  const ids = (db.prepare("SELECT webhook_id FROM deliveries").all() as Array<{ webhook_id: string }>).map(
    (r) => r.webhook_id,
  );
  const count = (table: string): number =>
    Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
  return { deliveryIds: new Set(ids), carts: count("carts"), deadLetters: count("dead_letters") };
}

/**
 * What a stopped bridge left durable on disk: the database and its WAL are copied and opened elsewhere, so
 * SQLite's recovery runs on the copy and the next start still finds the files exactly as the crash left them.
 */
export function durableContents(dbPath: string): StoreContents {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-inspect-"));
  try {
    const copy = join(dir, "copy.db");
    copyFileSync(dbPath, copy);
    if (existsSync(`${dbPath}-wal`)) copyFileSync(`${dbPath}-wal`, `${copy}-wal`);
    const db = new DatabaseSync(copy);
    try {
      const contents = readContents(db);
      for (const id of unappliedInboxIds(dbPath, db)) contents.deliveryIds.add(id);
      return contents;
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Webhook ids of what the inbox beside `dbPath` holds past the position `db` says is applied. */
function unappliedInboxIds(dbPath: string, db: DatabaseSync): string[] {
  const dir = `${dbPath}-inbox`;
  if (!existsSync(dir)) return [];
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'inbox_applied'").get() !== undefined;
  const row = hasTable
    ? (db.prepare("SELECT segment, position FROM inbox_applied WHERE id = 1").get() as
        { segment: number; position: number } | undefined)
    : undefined;
  const applied = row === undefined ? undefined : { segment: row.segment, offset: row.position };
  const ids: string[] = [];
  for (const { records } of readUnapplied(dir, applied)) {
    for (const r of records) if (r.record.webhookId !== undefined) ids.push(r.record.webhookId);
  }
  return ids;
}

/** What a running bridge's store holds, through a read-only connection (WAL lets it read beside the writer). */
export function liveContents(dbPath: string): StoreContents {
  const db = new DatabaseSync(dbPath, { readOnly: true, timeout: 5000 });
  try {
    return readContents(db);
  } finally {
    db.close();
  }
}

/** Diagnostics for a failure message: the store's bookkeeping of some carts (never throws). */
export function cartRows(dbPath: string, keys: readonly string[]): string {
  try {
    const db = new DatabaseSync(dbPath, { readOnly: true, timeout: 5000 });
    try {
      const rows = keys.map((key) =>
        db
          .prepare(
            "SELECT key, version, synced_version, pending_since, attempts, next_attempt_at, last_error FROM carts WHERE key = ?",
          )
          .get(key),
      );
      return rows
        .map((r) => {
          const row = r as Record<string, unknown> | undefined;
          if (row === undefined) return "(not in the store)";
          return `${String(row["key"])}: version ${String(row["version"])}, synced ${String(row["synced_version"])}, pending since ${String(row["pending_since"])}, attempts ${String(row["attempts"])}, next attempt ${String(row["next_attempt_at"])}`;
        })
        .join("\n");
    } finally {
      db.close();
    }
  } catch (error) {
    return `(could not read the store: ${error instanceof Error ? error.message : String(error)})`;
  }
}

export interface SendResult {
  readonly delivery: GeneratedDelivery;
  /** HTTP status, or undefined when the connection failed (refused, reset by a crash). */
  readonly status: number | undefined;
  readonly outcome: string | undefined;
}

/** Sends one generated delivery as Shopify would (signed, with its webhook id and trigger time). */
export async function sendDelivery(url: string, delivery: GeneratedDelivery): Promise<SendResult> {
  const { headers, body } = buildDelivery({
    topic: delivery.topic,
    body: delivery.body,
    webhookId: delivery.webhookId,
    triggeredAt: delivery.triggeredAt,
  });
  try {
    const res = await fetch(`${url}/webhooks/shopify`, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let outcome: string | undefined;
    try {
      outcome = (JSON.parse(text) as { outcome?: string }).outcome;
    } catch {
      outcome = undefined;
    }
    return { delivery, status: res.status, outcome };
  } catch {
    return { delivery, status: undefined, outcome: undefined };
  }
}

/**
 * Sends `deliveries` with `concurrency` workers; stops taking new ones once `stopped()` is true.
 * `onResult` sees every answer as it arrives (the crash test uses it to pick its moment).
 */
export async function sendConcurrently(
  url: string,
  deliveries: readonly GeneratedDelivery[],
  opts: {
    concurrency: number;
    stopped?: () => boolean;
    /** Called just before each delivery goes out (it may be committed even if no answer comes back). */
    onSend?: (d: GeneratedDelivery) => void;
    onResult?: (r: SendResult) => void;
  },
): Promise<SendResult[]> {
  const results: SendResult[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < deliveries.length && !(opts.stopped?.() ?? false)) {
      const delivery = deliveries[next++];
      if (delivery === undefined) return;
      opts.onSend?.(delivery);
      const result = await sendDelivery(url, delivery);
      results.push(result);
      opts.onResult?.(result);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return results;
}

/** A tmpfs of `sizeBytes` mounted on a fresh directory, or the reason it cannot be. */
export function mountTmpfs(sizeBytes: number): { dir: string; unmount: () => void } | { skip: string } {
  if (process.platform !== "linux") return { skip: "tmpfs mounts need Linux" };
  if (process.getuid?.() !== 0) return { skip: "mounting a tmpfs needs root (CI runs as root)" };
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-tmpfs-"));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0755`, "tmpfs", dir], {
    encoding: "utf8",
  });
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return {
      skip: `mount -t tmpfs failed (${mounted.error?.message ?? mounted.stderr.trim()}): no CAP_SYS_ADMIN in this sandbox?`,
    };
  }
  return {
    dir,
    unmount() {
      const res = spawnSync("umount", [dir], { encoding: "utf8" });
      if (res.status !== 0) spawnSync("umount", ["-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
