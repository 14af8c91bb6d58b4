/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import { mkdirSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { StoreError } from "../errors.ts";
import { optionalNumber, toDeadLetter } from "./rows.ts";
import { createSqliteActivity } from "./sqlite-activity.ts";
import { startCheckpointer, WAL_LIMIT_BYTES, type Checkpointer } from "./sqlite-checkpointer.ts";
import { createSqliteContacts, releaseSqliteContactClaims } from "./sqlite-contacts.ts";
import { createSqliteDeadLetters } from "./sqlite-dead-letters.ts";
import { createCheckpointGate, gateMethods } from "./sqlite-gate.ts";
import { createSqliteIngest, type SqliteIngest } from "./sqlite-ingest.ts";
import { createSqliteLedger } from "./sqlite-ledger.ts";
import { createSqliteLineItems, releaseSqliteLineClaims } from "./sqlite-line-items.ts";
import { createSqlitePrivacy } from "./sqlite-privacy.ts";
import { lockSqliteFile, type ProcessLock } from "./sqlite-process-lock.ts";
import { createSqliteReconcileStore } from "./sqlite-reconcile.ts";
import { migrateSqlite } from "./sqlite-schema.ts";
import { createSqliteTransaction, type SqliteTransaction } from "./sqlite-transaction.ts";
import type { InboxLedger, SentCart, Store, StoreStats } from "./store.ts";

/**
 * The embedded store (SQLite), assembled from one module per concern, each owning its statements:
 * sqlite-transaction.ts (durable / relaxed commits), sqlite-ingest.ts (a group of deliveries, through the
 * shared ingest plan), sqlite-ledger.ts (the cart send ledger and its in-memory claims), sqlite-contacts.ts,
 * sqlite-line-items.ts, sqlite-privacy.ts (erasure, data requests, retention), sqlite-dead-letters.ts,
 * sqlite-activity.ts (the console) and sqlite-reconcile.ts; the schema in sqlite-schema.ts.
 */

/**
 * Opens (and migrates) the embedded store at `path`: WAL, full fsync at commit, one writer.
 * `server: true` (the bridge itself, never a CLI tool) releases every contact claim left by a previous
 * process (SQLite serves one instance, so any found at start-up belongs to a process that died; cart claims
 * live in memory) and moves WAL checkpoints to a background thread. It also takes the file's process lock
 * (sqlite-process-lock.ts): a second bridge on the same file fails here with a clear StoreError.
 */
export function openSqliteStore(path: string, opts: { server?: boolean } = {}): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const lock: ProcessLock | undefined =
    opts.server === true && path !== ":memory:" ? lockSqliteFile(path) : undefined;
  let db: DatabaseSync;
  try {
    db = openMigrated(path);
  } catch (error) {
    lock?.release();
    throw error;
  }
  const checkpointer = opts.server === true ? startServing(db, path) : undefined;

  const transaction = createSqliteTransaction(db);
  const deadLetters = createSqliteDeadLetters(db, transaction);
  const lineItems = createSqliteLineItems(db, transaction, deadLetters);
  const activity = createSqliteActivity(db, toDeadLetter);
  const ingest = createSqliteIngest(db, transaction, { deadLetters, lineItems, activity });
  const inbox = checkpointer !== undefined ? createInboxLedger(db, transaction, path, ingest) : undefined;
  const store: Store = {
    reconcile: createSqliteReconcileStore(db, (what, fn) => transaction(what, fn, "relaxed")),
    ...lineItems,
    activity: activity.queries,
    ingestBatch: ingest.ingestBatch,
    ...(inbox !== undefined ? { inbox: inbox.ledger } : {}),
    ...createSqliteLedger(db, transaction, deadLetters, lineItems),
    ...deadLetters.port,
    ...createSqliteContacts(db, transaction, deadLetters),
    ...withWalTruncatedAfterErasures(
      createSqlitePrivacy(db, transaction, { lineItems, activity }),
      checkpointer,
    ),
    ...createSqliteHealth(db),

    async close() {
      try {
        await checkpointer?.stop();
      } finally {
        if (db.isOpen) db.close();
        await inbox?.closeFiles();
        lock?.release();
      }
    },
  };
  // The bridge's calls run one per turn of the loop, and wait (off it) while the checkpoint thread holds
  // the file (sqlite-gate.ts).
  const served =
    checkpointer === undefined
      ? store
      : gateMethods(store, createCheckpointGate(checkpointer.busy), new Set(["isOpen"]));
  return { ...served, markSent: markSentInChunks((carts, owner) => served.markSent(carts, owner)) };
}

/** Carts per sent-marks transaction: a whole batch's (100) would hold the event loop for a few ms. */
const MARK_CHUNK = 25;

/**
 * A batch's sent marks in transactions of MARK_CHUNK carts, each a call through the gate (a turn of the
 * loop of its own, sqlite-gate.ts). A failure part-way leaves the chunks before it marked: their carts are at
 * worst sent once more, which an upsert by the cart key makes harmless.
 */
function markSentInChunks(markSent: Store["markSent"]): Store["markSent"] {
  return async (carts, owner) => {
    if (carts.length <= MARK_CHUNK) return markSent(carts, owner);
    const marked: SentCart[] = [];
    for (let i = 0; i < carts.length; i += MARK_CHUNK) {
      marked.push(...(await markSent(carts.slice(i, i + MARK_CHUNK), owner)));
    }
    return marked;
  };
}

/**
 * Erasures (customers/redact, shop/redact, retention) zero the rows in the file (`secure_delete`), but the
 * WAL still holds the pages as they were until its frames are reused: the checkpoint thread is asked to
 * truncate it.
 */
function withWalTruncatedAfterErasures(
  privacy: Pick<Store, "redact" | "describeSubject" | "purgeExpired">,
  checkpointer: Checkpointer | undefined,
): Pick<Store, "redact" | "describeSubject" | "purgeExpired"> {
  return {
    ...privacy,
    async redact(subject) {
      const erased = await privacy.redact(subject);
      checkpointer?.truncateSoon();
      return erased;
    },
    async purgeExpired(beforeMs) {
      const removed = await privacy.purgeExpired(beforeMs);
      if (removed > 0) checkpointer?.truncateSoon();
      return removed;
    },
  };
}

/** The database at `path`, WAL, migrated; closed again when migrating fails. */
function openMigrated(path: string): DatabaseSync {
  const db = new DatabaseSync(path, { timeout: 5000 });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    // Deleted rows are overwritten with zeros, not left in free space: an erasure (customers/redact,
    // shop/redact, retention, a sent buyer) leaves no personal data readable in the file. SQLite's default
    // keeps deleted bytes until the page is reused.
    db.exec("PRAGMA secure_delete = ON");
    migrateSqlite(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * The bridge itself opens the file (`server: true`): claims left by a dead process are released, and WAL
 * checkpoints move to a background thread (not for `:memory:`), which is returned.
 */
function startServing(db: DatabaseSync, path: string): Checkpointer | undefined {
  releaseSqliteContactClaims(db);
  releaseSqliteLineClaims(db);
  if (path === ":memory:") return undefined;
  db.exec("PRAGMA wal_autocheckpoint = 0");
  // When the checkpoint thread makes the WAL start over, this connection (the writer) cuts the file back.
  db.exec(`PRAGMA journal_size_limit = ${WAL_LIMIT_BYTES}`);
  return startCheckpointer(path, {
    onFailure: (error) => {
      // Loud, and the WAL is bounded again: a failure to turn checkpoints back on ends the process.
      process.emitWarning(`SQLite checkpoint thread failed (${error.message}); automatic checkpoints are on`);
      if (db.isOpen) db.exec("PRAGMA wal_autocheckpoint = 1000");
    },
  });
}

/**
 * The bridge's file store acknowledges through an inbox of raw deliveries in `<file>-inbox/`
 * (store/inbox-file.ts): this is how far it is applied, recorded with each batch.
 */
function createInboxLedger(
  db: DatabaseSync,
  transaction: SqliteTransaction,
  path: string,
  ingest: SqliteIngest,
): { ledger: InboxLedger; closeFiles: () => Promise<void> } {
  const q = {
    get: db.prepare("SELECT segment, position FROM inbox_applied WHERE id = 1"),
    save: db.prepare(`INSERT INTO inbox_applied (id, segment, position) VALUES (1, ?, ?)
        ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, position = excluded.position`),
  };
  // Descriptors kept open until the database is closed: closing a descriptor of the database file drops
  // every POSIX lock this process holds on it, SQLite's own included (SQLite's "how to corrupt", 2.2).
  const files = new Map<string, Promise<FileHandle | undefined>>();
  const ledger: InboxLedger = {
    dir: `${path}-inbox`,
    isOpen: () => db.isOpen,
    async ingestFromInbox(items, applied) {
      return transaction(
        "ingest",
        () => {
          const outcomes = ingest.ingestInTransaction(items);
          q.save.run(applied.segment, applied.offset);
          return outcomes;
        },
        "relaxed",
      );
    },
    async appliedPosition() {
      const row = q.get.get() as Record<string, unknown> | undefined;
      return row === undefined
        ? undefined
        : { segment: Number(row["segment"]), offset: Number(row["position"]) };
    },
    async syncCommitted() {
      // Commits under synchronous=NORMAL are in the WAL (and what a checkpoint moved, in the database file,
      // synced by the checkpoint itself): an fdatasync of both makes every commit so far survive a power loss.
      for (const file of [`${path}-wal`, path]) await syncFile(files, file);
    },
  };
  return {
    ledger,
    async closeFiles() {
      const opened = [...files.values()];
      files.clear();
      await Promise.all(
        opened.map(async (f) => (await f.catch(() => undefined))?.close().catch(() => undefined)),
      );
    },
  };
}

/** fdatasync of `file` through a descriptor opened once (a missing WAL has nothing to sync). */
async function syncFile(files: Map<string, Promise<FileHandle | undefined>>, file: string): Promise<void> {
  let opening = files.get(file);
  if (opening === undefined) {
    opening = open(file, "r").catch((cause: unknown) => {
      files.delete(file); // tried again next time
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new StoreError(`could not open ${file} to sync it`, { retryable: true, cause });
    });
    files.set(file, opening);
  }
  const handle = await opening;
  if (handle === undefined) return;
  try {
    await handle.datasync();
  } catch (cause) {
    throw new StoreError(`could not sync ${file}`, { retryable: true, cause });
  }
}

/** What the health checks and metrics read: counts, and a cheap round trip. */
function createSqliteHealth(db: DatabaseSync): Pick<Store, "stats" | "ping"> {
  const q = {
    stats: db.prepare(`SELECT (SELECT count(*) FROM carts WHERE pending_since IS NOT NULL) AS pending,
        (SELECT min(pending_since) FROM carts WHERE pending_since IS NOT NULL) AS oldest,
        (SELECT count(*) FROM dead_letters) AS dead, (SELECT count(*) FROM carts) AS carts`),
    ping: db.prepare("SELECT 1"),
  };
  return {
    async stats(_nowMs): Promise<StoreStats> {
      const row = q.stats.get() as Record<string, unknown>;
      return {
        pendingCarts: Number(row["pending"]),
        oldestPendingSinceMs: optionalNumber(row["oldest"]),
        deadLetters: Number(row["dead"]),
        carts: Number(row["carts"]),
      };
    },

    async ping() {
      try {
        q.ping.get();
        return;
      } catch (cause) {
        throw new StoreError("store did not answer", { retryable: true, cause });
      }
    },
  };
}
