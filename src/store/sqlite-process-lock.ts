import { realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { StoreError } from "../errors.ts";

/**
 * One bridge process per SQLite file (SPEC §6): the SQLite store keeps its cart claims in memory and, at
 * start-up, clears contact claims it assumes a dead predecessor left, so a second process on the same file
 * would send carts twice and steal the first one's claims. The second process must stop at start.
 *
 * How: the bridge holds an exclusive SQLite lock on a side file, `<store>.lock`, for as long as it runs (a
 * connection in `locking_mode = EXCLUSIVE` that wrote once keeps its lock until it closes). Why this way:
 * - node:sqlite has no flock, but SQLite's own locks are POSIX advisory locks held by the kernel for the
 *   process: they go when the process goes, however it goes (SIGKILL and OOM kills included), so a crash
 *   never leaves a stale lock behind and nothing has to judge whether an old holder is still alive.
 * - A pid file would need exactly that judgement, which pid reuse defeats (a restarted container's bridge
 *   is pid 1 again, like the dead one).
 * - The lock is on a side file, not on the store: the store's other connections (the checkpointer thread,
 *   `cartbridge status` and `dead-letters` run beside the bridge, read-only inspection) keep working.
 * Like every SQLite lock it needs a local file system (not NFS), which the store needs anyway.
 */
export interface ProcessLock {
  readonly path: string;
  release(): void;
}

/**
 * Locks `<store>.lock` and, when the store file is a symbolic link, also the lock beside the file it points
 * to: two paths to one file are one store. Both are named by their directory's real path, so a relative path,
 * or one through a linked directory, names each lock file once (the same file locked twice by one process
 * through two names would refuse the process itself).
 */
export function lockSqliteFile(storePath: string): ProcessLock {
  const locks: ProcessLock[] = [];
  try {
    for (const path of new Set([inRealDirectory(storePath), resolvedPath(storePath)]))
      locks.push(lockOne(path, storePath));
  } catch (error) {
    for (const lock of locks) lock.release();
    throw error;
  }
  return {
    path: (locks[0] as ProcessLock).path,
    release() {
      for (const lock of locks) lock.release();
    },
  };
}

/** The path with its directory's symbolic links resolved (the file itself left as named). */
function inRealDirectory(storePath: string): string {
  try {
    return join(realpathSync(dirname(storePath)), basename(storePath));
  } catch {
    return storePath;
  }
}

/** The store file's real path (every link resolved); as `inRealDirectory` while the file does not exist. */
function resolvedPath(storePath: string): string {
  try {
    return realpathSync(storePath);
  } catch {
    return inRealDirectory(storePath);
  }
}

function lockOne(lockedPath: string, storePath: string): ProcessLock {
  const path = `${lockedPath}.lock`;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { timeout: 0 });
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.exec("CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY, pid INTEGER, since TEXT)");
    db.prepare("INSERT OR REPLACE INTO holder (id, pid, since) VALUES (1, ?, ?)").run(
      process.pid,
      new Date().toISOString(),
    );
    db.exec("COMMIT");
  } catch (cause) {
    if (db?.isOpen === true) db.close();
    if (isBusy(cause)) {
      throw new StoreError(
        `another cartbridge process is already serving ${storePath} (it holds ${path}): run one process ` +
          "per SQLite file (several replicas need PostgreSQL)",
        { retryable: false, cause },
      );
    }
    throw new StoreError(
      `could not lock ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        retryable: false,
        cause,
      },
    );
  }
  const held = db;
  return {
    path,
    release() {
      if (held.isOpen) held.close();
    },
  };
}

function isBusy(error: unknown): boolean {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  // SQLITE_BUSY and SQLITE_LOCKED, with or without extended codes.
  if (typeof code === "number") return (code & 0xff) === 5 || (code & 0xff) === 6;
  return /database is locked|busy/i.test(error instanceof Error ? error.message : String(error));
}
