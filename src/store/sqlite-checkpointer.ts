import { Worker } from "node:worker_threads";

/**
 * Moves SQLite's WAL checkpoints off the thread that answers Shopify. With automatic checkpoints, every
 * ~1,000 pages one unlucky commit copies the WAL into the database and fsyncs it (tens of ms, all
 * requests waiting). Here a worker thread with its own connection runs PASSIVE checkpoints every
 * `intervalMs`: they never block writers, and the WAL is reset once they have caught up.
 */
export interface Checkpointer {
  stop(): Promise<void>;
}

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const db = new DatabaseSync(workerData.path, { timeout: 5000 });
db.exec("PRAGMA cache_size = -512");
// A failed checkpoint is not retried quietly: the WAL would grow without bound. The error ends the thread
// and the parent hears of it (automatic checkpoints come back on).
const checkpoint = (mode) => db.exec("PRAGMA wal_checkpoint(" + mode + ")");
const timer = setInterval(() => checkpoint("PASSIVE"), workerData.intervalMs);
parentPort.on("message", () => {
  clearInterval(timer);
  checkpoint("PASSIVE");
  db.close();
  process.exit(0);
});
`;

/**
 * Starts the checkpointer; `onFailure` runs once if the worker fails or dies (the caller turns automatic
 * checkpoints back on). A failure of the last checkpoint while stopping makes `stop()` reject.
 */
export function startCheckpointer(
  path: string,
  opts: { intervalMs?: number; onFailure: (error: Error) => void },
): Checkpointer {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { path, intervalMs: opts.intervalMs ?? 500 },
    // It only runs a pragma: a small heap keeps its share of the process's memory small.
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1, codeRangeSizeMb: 2 },
  });
  worker.unref();
  let stopping = false;
  let failure: Error | undefined;
  const exited = new Promise<number>((resolve) => worker.once("exit", resolve));
  worker.once("error", (error: Error) => {
    failure = error;
  });
  void exited.then((code) => {
    if (stopping) return;
    opts.onFailure(failure ?? new Error(`the checkpoint thread exited with code ${code}`));
  });
  return {
    async stop() {
      stopping = true;
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
      if (code !== 0) {
        const why = failure?.message ?? (code === undefined ? "not done within 2 s" : `exit code ${code}`);
        throw new Error(`the last WAL checkpoint failed: ${why}`, { cause: failure });
      }
    },
  };
}
