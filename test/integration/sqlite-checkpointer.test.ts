import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { it, type TestContext } from "node:test";
import { startCheckpointer, type Checkpointer } from "../../src/store/sqlite-checkpointer.ts";

/**
 * The checkpoint thread must not fail quietly: with automatic checkpoints off, checkpoints that keep failing
 * would let the WAL grow without bound, and a last checkpoint that did not happen must not look done.
 */
it("a last checkpoint that cannot run makes stop() fail instead of passing quietly", async (t) => {
  // No periodic checkpoint in this test: only the last one, at stop().
  // No waiting for locks: the refusal is SQLite's answer at once, not a slow checkpoint.
  const { db, checkpointer, failures } = storeWithCheckpointer(
    t,
    ["PRAGMA journal_mode = WAL", "CREATE TABLE t (a)", "INSERT INTO t VALUES (1)"],
    { intervalMs: 3_600_000, busyTimeoutMs: 0 },
  );
  // Another connection holds the file exclusively: the last checkpoint cannot run.
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  db.exec("BEGIN EXCLUSIVE");
  db.exec("INSERT INTO t VALUES (2)");
  await assert.rejects(checkpointer.stop(), /the last WAL checkpoint failed: .*(locked|busy)/i);
  assert.deepEqual(failures, [], "a failure while stopping is stop()'s to report");
});

/**
 * Under writes that never pause, PASSIVE checkpoints never catch up with the end of the WAL (new frames arrive
 * while they copy), so SQLite never starts the WAL over: it grew to 3.6 GB in a 200,000-delivery bench run.
 * Past `walLimitBytes` the thread finishes the job with a RESTART checkpoint, and the writer's
 * `journal_size_limit` (set by the store at open) cuts the file back when the WAL starts over.
 */
it("keeps the WAL bounded while writes never pause", async (t) => {
  const limit = 1024 * 1024;
  const { path, db, failures } = storeWithCheckpointer(
    t,
    [...WRITER, `PRAGMA journal_size_limit = ${limit}`, "CREATE TABLE t (a BLOB)"],
    { intervalMs: 20, walLimitBytes: limit },
  );
  const insert = db.prepare("INSERT INTO t VALUES (?)");
  const row = Buffer.alloc(4096, 7);
  let largest = 0;
  const started = Date.now();
  const until = started + 3000;
  // 16 commits of 4 kB back to back, then the loop does other work for a moment (as the bridge parses
  // requests between group commits): tens of MB/s of WAL, far more than the thread copies between looks.
  while (Date.now() < until) {
    for (let i = 0; i < 16; i++) insert.run(row);
    // The thread takes a moment to start: measure from the second second on.
    if (Date.now() - started > 1000) largest = Math.max(largest, walSize(path));
    await new Promise((r) => setTimeout(r, 1));
  }
  const written = Number((db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n) * row.length;
  assert.ok(written > 40 * limit, `the test wrote ${written} bytes: enough to outgrow the limit many times`);
  assert.ok(walSize(path) <= 8 * limit, `WAL ${walSize(path)} bytes at the end (limit ${limit})`);
  assert.ok(largest <= 16 * limit, `the WAL peaked at ${largest} bytes (limit ${limit})`);
  assert.deepEqual(failures, []);
});

/**
 * The store's commits leave their WAL frames in the page cache; the thread fdatasyncs the WAL every
 * `walSyncMs` while it is written, so they reach the disk in small pieces rather than in the bursts of a
 * checkpoint's sync (which the inbox's fdatasync, and every answer, would queue behind). An idle WAL is not
 * synced again: an idle bridge asks the disk for nothing. This test counts the thread's syncs; the next one
 * shows a sync is a real fdatasync of the WAL's file (it fails where that cannot be done); what they do to
 * the answers' latency is the bench's to measure (bench/results.md, "seventh session").
 */
it("fdatasyncs the WAL between checkpoints while it is written, and not while it is idle", async (t) => {
  // No periodic checkpoint in this test: every sync counted is the WAL's own.
  const { db, checkpointer, failures } = storeWithCheckpointer(t, [...WRITER, "CREATE TABLE t (a BLOB)"], {
    intervalMs: 3_600_000,
    walSyncMs: 20,
  });
  const insert = db.prepare("INSERT INTO t VALUES (?)");
  const write = async (): Promise<void> => {
    insert.run(Buffer.alloc(4096, 1));
    await sleep(5);
  };

  // The thread takes a moment to start (longer on a loaded machine): write until its first sync.
  const deadline = Date.now() + 10_000;
  while (checkpointer.walSyncs() === 0 && Date.now() < deadline) await write();
  assert.ok(checkpointer.walSyncs() > 0, "the WAL was synced while it was written");

  const before = checkpointer.walSyncs();
  const until = Date.now() + 400;
  while (Date.now() < until) await write();
  const whileWriting = checkpointer.walSyncs() - before;
  // 400 ms of commits every ~5 ms with a sync due every 20 ms: about 20; a loaded machine may skip some.
  assert.ok(whileWriting >= 5, `${whileWriting} WAL syncs in 400 ms of writes (one due every 20 ms)`);

  // Idle: once the last change is synced (the count holds for ten intervals), it stays put.
  let settled = checkpointer.walSyncs();
  for (let still = 0; still < 10 && Date.now() < deadline;) {
    await sleep(20);
    const now = checkpointer.walSyncs();
    still = now === settled ? still + 1 : 0;
    settled = now;
  }
  await sleep(400);
  assert.equal(checkpointer.walSyncs(), settled, "an unchanged WAL is not synced again");
  assert.deepEqual(failures, []);
});

/**
 * The WAL sync is a help, not a duty: when it fails, the thread says so once and stops syncing, and the
 * checkpoints go on (ending the thread would bring SQLite's automatic checkpoints back onto the event loop).
 * Here the WAL's name leads to /dev/null, which opens but cannot be synced (EINVAL). The database is not in
 * WAL mode, and the name is made only once the thread's connection is open (SQLite refuses to open a database
 * beside such a WAL), so SQLite never looks at it: the thread does not checkpoint until it stops.
 */
it(
  "a WAL that cannot be synced turns the syncing off with a warning; the checkpoint thread goes on",
  { skip: existsSync("/proc/self/fd") && existsSync("/dev/null") ? false : "needs /proc and /dev/null" },
  async (t) => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on("warning", onWarning);
    t.after(() => process.off("warning", onWarning));
    const { path, checkpointer, failures } = storeWithCheckpointer(t, ["CREATE TABLE t (a)"], {
      intervalMs: 3_600_000,
      walSyncMs: 10,
    });
    const deadline = Date.now() + 10_000;
    while (descriptorsOn(path) < 2 && Date.now() < deadline) await sleep(10); // the thread's connection
    symlinkSync("/dev/null", `${path}-wal`);
    while (warnings.length === 0 && Date.now() < deadline) await sleep(10);
    assert.match(warnings.join("\n"), /syncing the SQLite WAL between checkpoints failed \(.*\); turned off/);
    await sleep(300); // 30 more sync intervals
    assert.equal(warnings.length, 1, "said once");
    assert.deepEqual(failures, [], "the checkpoint thread is still running");
    assert.equal(checkpointer.walSyncs(), 0);
  },
);

/** A WAL writer as the store's: no automatic checkpoints, commits that do not sync the WAL themselves. */
const WRITER = ["PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0", "PRAGMA synchronous = NORMAL"];

/**
 * A database in a fresh directory, set up with `setup`, and a checkpoint thread on it whose failures are
 * collected; the thread is stopped, the connection closed and the directory removed after the test.
 */
function storeWithCheckpointer(
  t: TestContext,
  setup: readonly string[],
  opts: Omit<Parameters<typeof startCheckpointer>[1], "onFailure">,
): { path: string; db: DatabaseSync; checkpointer: Checkpointer; failures: Error[] } {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-ckpt-"));
  const path = join(dir, "store.db");
  const db = new DatabaseSync(path, { timeout: 5000 });
  for (const sql of setup) db.exec(sql);
  const failures: Error[] = [];
  const checkpointer = startCheckpointer(path, { ...opts, onFailure: (e) => failures.push(e) });
  t.after(async () => {
    await checkpointer.stop().catch(() => {}); // a test may have stopped it already
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, db, checkpointer, failures };
}

/** How many of this process's descriptors are open on `file`. */
function descriptorsOn(file: string): number {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}
