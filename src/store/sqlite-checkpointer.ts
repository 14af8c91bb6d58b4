import { Worker } from "node:worker_threads";

/**
 * Moves SQLite's WAL checkpoints off the thread that answers Shopify. With automatic checkpoints, every
 * ~1,000 pages one unlucky commit copies the WAL into the database and fsyncs it (tens of ms, all
 * requests waiting). Here a worker thread with its own connection runs PASSIVE checkpoints every
 * `intervalMs`: they never block writers, and the WAL is reset once they have caught up.
 *
 * Under writes that never pause they never catch up (frames keep arriving while they copy), so SQLite never
 * starts the WAL over and the file grows without bound (3.6 GB in a 200,000-delivery bench run). Once the
 * WAL is past `walLimitBytes`, the thread follows the PASSIVE checkpoint with a RESTART one: it copies the
 * few frames written since (holding writers off for that long only) and makes the next writer start the WAL
 * from its beginning; the writer's `journal_size_limit` then cuts the file back.
 *
 * Between checkpoints the thread also fdatasyncs the WAL every `walSyncMs` while it is being written. The
 * store's relaxed commits (synchronous=NORMAL) leave their frames in the page cache, tens of MB a second
 * under load; synced only by the next checkpoint, before an applied inbox segment goes, or by the kernel's
 * writeback, they reached the disk in bursts of several MB that the inbox's fdatasync, which every answer
 * waits for, queued behind. In small pieces they do not: bench/results.md, "seventh session" (warm p99 at
 * 1,000/s 1–5 ms lower in small alternated sets). No durability relies on it, and it writes the same pages,
 * sooner (with a partly filled last page again at each sync). A failed sync turns the syncing off with a
 * warning; the checkpoints go on.
 *
 * After an erasure the store asks for a TRUNCATE checkpoint (`truncateSoon`): the WAL still holds the pages
 * as they were before it, and personal data must not outlive its erasure there either.
 */
export interface Checkpointer {
  /** Non-zero while a checkpoint runs (shared with the thread): writers wait for it to clear (sqlite-gate.ts). */
  readonly busy: Int32Array;
  /** How many times the thread has fdatasync'ed the WAL between checkpoints so far (tests read it). */
  walSyncs(): number;
  /**
   * After an erasure: the next checkpoint that can copies everything and truncates the WAL to nothing, so
   * the pages as they were before the erasure are gone from the WAL file too (not only overwritten later).
   */
  truncateSoon(): void;
  stop(): Promise<void>;
}

/** The WAL size past which checkpoints restart it (and the size the writer cuts the file back to). */
export const WAL_LIMIT_BYTES = 64 * 1024 * 1024;

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const { statSync, openSync, fstatSync, fdatasyncSync, closeSync } = require("node:fs");
const db = new DatabaseSync(workerData.path, { timeout: workerData.busyTimeoutMs });
db.exec("PRAGMA cache_size = -512");
// A failed checkpoint is not retried quietly: the WAL would grow without bound. The error ends the thread
// and the parent hears of it (automatic checkpoints come back on).
const checkpoint = (mode) => db.exec("PRAGMA wal_checkpoint(" + mode + ")");
const walSize = () => {
  try {
    return statSync(workerData.path + "-wal").size;
  } catch {
    return 0;
  }
};
// While a checkpoint runs the bridge's writers wait (asynchronously, sqlite-gate.ts): a PASSIVE one then
// copies every frame and the next writer starts the WAL over, and a RESTART never holds a commit off.
const busy = new Int32Array(workerData.busy);
const walSyncs = new Int32Array(workerData.walSyncs);
const truncate = new Int32Array(workerData.truncate);
// The WAL through a descriptor of its own, opened once it exists and kept (SQLite locks the database and
// its -shm file, never the WAL, so closing it drops no lock of SQLite's). Synced only when its size or
// mtime moved since the last sync, so an idle bridge asks the disk for nothing; a write that lands in the
// same clock tick as the last look waits for the next checkpoint's sync instead.
let wal;
let synced = "";
// (Node closes what a worker opened when it ends, however it ends.)
const closeWal = () => {
  if (wal === undefined) return;
  closeSync(wal);
  wal = undefined;
};
const syncWal = () => {
  if (wal === undefined) {
    try {
      wal = openSync(workerData.path + "-wal", "r");
    } catch (error) {
      if (error.code === "ENOENT") return;
      throw error;
    }
  }
  const st = fstatSync(wal, { bigint: true });
  const seen = st.size + ":" + st.mtimeNs;
  if (seen === synced) return;
  fdatasyncSync(wal);
  synced = seen;
  Atomics.add(walSyncs, 0, 1);
};
// TRUNCATE waits for readers and holds writers off like RESTART, with the same short busy timeout; until it
// runs to the end (busy 0) it is asked for again at each interval.
const truncateWal = () => {
  db.exec("PRAGMA busy_timeout = 50");
  try {
    const result = db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get();
    if (result !== undefined && Number(result.busy) === 0) Atomics.store(truncate, 0, 0);
  } finally {
    db.exec("PRAGMA busy_timeout = " + workerData.busyTimeoutMs);
  }
};
const run = () => {
  checkpoint("PASSIVE");
  if (Atomics.load(truncate, 0) === 1) {
    truncateWal();
    return;
  }
  if (walSize() > workerData.walLimitBytes) {
    // RESTART holds the writer lock while it waits for readers: with a short busy timeout it gives up at
    // once instead (SQLITE_BUSY is a result, not an error) and is tried again next time, so it never holds
    // the bridge's commits off for long.
    db.exec("PRAGMA busy_timeout = 50");
    try {
      checkpoint("RESTART");
    } finally {
      db.exec("PRAGMA busy_timeout = " + workerData.busyTimeoutMs);
    }
  }
};
const timer = setInterval(() => {
  Atomics.store(busy, 0, 1);
  try {
    run();
  } finally {
    Atomics.store(busy, 0, 0);
  }
}, workerData.intervalMs);
const walTimer =
  workerData.walSyncMs > 0
    ? setInterval(() => {
        try {
          syncWal();
        } catch (error) {
          clearInterval(walTimer);
          try {
            closeWal();
          } catch {}
          parentPort.postMessage({ walSyncFailed: String(error && error.message) });
        }
      }, workerData.walSyncMs)
    : undefined;
parentPort.on("message", () => {
  clearInterval(timer);
  clearInterval(walTimer);
  try {
    checkpoint("PASSIVE");
    db.close();
  } finally {
    closeWal();
  }
  process.exit(0);
});
`;

/**
 * Starts the checkpointer; `onFailure` runs once if the worker fails or dies (the caller turns automatic
 * checkpoints back on). A failure of the last checkpoint while stopping makes `stop()` reject.
 */
export function startCheckpointer(
  path: string,
  opts: {
    intervalMs?: number;
    /** How often the WAL is fdatasync'ed between checkpoints while it is written (default 50 ms; 0: never). */
    walSyncMs?: number;
    walLimitBytes?: number;
    /** How long the thread's connection waits for a lock (default 5 s). */
    busyTimeoutMs?: number;
    onFailure: (error: Error) => void;
  },
): Checkpointer {
  const busy = new Int32Array(new SharedArrayBuffer(4));
  const walSyncs = new Int32Array(new SharedArrayBuffer(4));
  const truncate = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      busy: busy.buffer,
      walSyncs: walSyncs.buffer,
      truncate: truncate.buffer,
      path,
      intervalMs: opts.intervalMs ?? 500,
      walSyncMs: opts.walSyncMs ?? 50,
      walLimitBytes: opts.walLimitBytes ?? WAL_LIMIT_BYTES,
      busyTimeoutMs: opts.busyTimeoutMs ?? 5000,
    },
    // It only runs pragmas and an fdatasync: a small heap keeps its share of the process's memory small.
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1, codeRangeSizeMb: 2 },
  });
  worker.unref();
  let stopping = false;
  let failure: Error | undefined;
  const exited = new Promise<number>((resolve) => worker.once("exit", resolve));
  worker.once("error", (error: Error) => {
    failure = error;
  });
  worker.on("message", (msg: { walSyncFailed?: string }) => {
    if (msg.walSyncFailed === undefined) return;
    process.emitWarning(
      `syncing the SQLite WAL between checkpoints failed (${msg.walSyncFailed}); turned off`,
    );
  });
  void exited.then((code) => {
    if (stopping) return;
    opts.onFailure(failure ?? new Error(`the checkpoint thread exited with code ${code}`));
  });
  return {
    busy,
    walSyncs: () => Atomics.load(walSyncs, 0),
    truncateSoon: () => void Atomics.store(truncate, 0, 1),
    async stop() {
      stopping = true;
      Atomics.store(busy, 0, 0);
      // Referenced while stopping: the process must not end before the last checkpoint does.
      worker.ref();
      worker.postMessage("stop");
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited,
        new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 2000))),
      ]);
      clearTimeout(timer);
      await worker.terminate();
      if (code === undefined && failure === undefined) {
        // Slow, not failed: what it did not copy stays in the WAL, which the next open reads.
        process.emitWarning("the last WAL checkpoint did not finish within 2 s; the WAL keeps the rest");
        return;
      }
      if (code !== 0) {
        const why = failure?.message ?? `exit code ${code}`;
        throw new Error(`the last WAL checkpoint failed: ${why}`, { cause: failure });
      }
    },
  };
}
