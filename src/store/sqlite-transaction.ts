import type { DatabaseSync } from "node:sqlite";
import { StoreError } from "../errors.ts";
import { isSqliteUnavailable } from "./sqlite-errors.ts";

/**
 * How a transaction commits. `durable` (acknowledged deliveries, erasures, dead letters) fsyncs at commit.
 * `relaxed` is the sender's bookkeeping (claims, sent marks, retries): WAL with synchronous=NORMAL survives a
 * process crash, and what a power loss could undo is only a cart sent again — an idempotent upsert.
 */
export type CommitMode = "durable" | "relaxed";

/**
 * Runs `fn` in one IMMEDIATE transaction and returns its result; a failure rolls back and surfaces as
 * StoreError (retryable when the database is unavailable, not when the work itself failed).
 */
export type SqliteTransaction = <T>(what: string, fn: () => T, mode?: CommitMode) => T;

/** The transaction helper of one connection (it remembers whether synchronous=FULL still has to come back). */
export function createSqliteTransaction(db: DatabaseSync): SqliteTransaction {
  /** Whether synchronous may still be NORMAL (a relaxed transaction ran and FULL was not restored yet). */
  let syncRelaxed = false;

  function restoreSync(mode: CommitMode): void {
    if (mode !== "relaxed") return;
    try {
      db.exec("PRAGMA synchronous = FULL");
      syncRelaxed = false;
    } catch {
      // syncRelaxed stays set: the next durable transaction restores FULL first, or fails (503, never 200).
    }
  }

  return function transaction<T>(what: string, fn: () => T, mode: CommitMode = "durable"): T {
    try {
      if (mode === "relaxed") {
        syncRelaxed = true;
        db.exec("PRAGMA synchronous = NORMAL");
      } else if (syncRelaxed) {
        // An earlier relaxed transaction could not restore FULL: a durable commit must not run without it.
        db.exec("PRAGMA synchronous = FULL");
        syncRelaxed = false;
      }
      db.exec("BEGIN IMMEDIATE");
    } catch (cause) {
      restoreSync(mode);
      throw new StoreError(`could not begin ${what}`, { retryable: true, cause });
    }
    try {
      const result = fn();
      db.exec("COMMIT");
      return result;
    } catch (cause) {
      try {
        if (db.isTransaction) db.exec("ROLLBACK");
      } catch {
        // The connection is unusable; the original error is what matters.
      }
      throw new StoreError(`${what} failed`, { retryable: isSqliteUnavailable(cause), cause });
    } finally {
      restoreSync(mode);
    }
  };
}
