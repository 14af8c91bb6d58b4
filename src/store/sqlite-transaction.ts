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

/**
 * The transaction helper of one connection. It sets synchronous only when the mode changes (FULL at open),
 * so runs of relaxed commits (the inbox's applier, the sender) pay no PRAGMA each.
 */
export function createSqliteTransaction(db: DatabaseSync): SqliteTransaction {
  /** The level synchronous was last set to; unknown after a failed PRAGMA, so it is set again. */
  let level: CommitMode | undefined = "durable";

  return function transaction<T>(what: string, fn: () => T, mode: CommitMode = "durable"): T {
    try {
      if (level !== mode) {
        level = undefined;
        // A durable commit never runs without FULL: when this fails, so does the transaction (503, never 200).
        db.exec(mode === "relaxed" ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL");
        level = mode;
      }
      db.exec("BEGIN IMMEDIATE");
    } catch (cause) {
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
    }
  };
}
