import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { it } from "node:test";
import { startCheckpointer } from "../../src/store/sqlite-checkpointer.ts";

/**
 * The checkpoint thread must not fail quietly: with automatic checkpoints off, checkpoints that keep failing
 * would let the WAL grow without bound, and a last checkpoint that did not happen must not look done.
 */
it("a last checkpoint that cannot run makes stop() fail instead of passing quietly", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-ckpt-"));
  const path = join(dir, "store.db");
  const db = new DatabaseSync(path, { timeout: 5000 });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("CREATE TABLE t (a)");
  db.exec("INSERT INTO t VALUES (1)");
  const failures: Error[] = [];
  // No periodic checkpoint in this test: only the last one, at stop().
  const checkpointer = startCheckpointer(path, { intervalMs: 3_600_000, onFailure: (e) => failures.push(e) });
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // Another connection holds the file exclusively: the last checkpoint cannot run.
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  db.exec("BEGIN EXCLUSIVE");
  db.exec("INSERT INTO t VALUES (2)");
  await assert.rejects(checkpointer.stop(), /the last WAL checkpoint failed/);
  assert.deepEqual(failures, [], "a failure while stopping is stop()'s to report");
});
