import pg from "pg";
import { StoreError, StoreSchemaError } from "../errors.ts";
import { createPostgresActivity } from "./postgres-activity.ts";
import { asError, createPostgresConnection, describeUrl, isRetryable } from "./postgres-connection.ts";
import { createPostgresContacts } from "./postgres-contacts.ts";
import { createPostgresDeadLetters } from "./postgres-dead-letters.ts";
import { createPostgresIngest } from "./postgres-ingest.ts";
import { createPostgresLedger } from "./postgres-ledger.ts";
import { createPostgresLineItems } from "./postgres-line-items.ts";
import { createPostgresPrivacy } from "./postgres-privacy.ts";
import { createPostgresRateBudget } from "./postgres-rate-budget.ts";
import { createPostgresReconcileStore } from "./postgres-reconcile.ts";
import { migrate } from "./postgres-schema.ts";
import { optionalNumber, toDeadLetter } from "./rows.ts";
import type { SharedRateBudget, Store, StoreStats } from "./store.ts";

/**
 * The PostgreSQL store: the same port as sqlite.ts, with the same semantics, for any number of replicas
 * sharing one database. This file opens the pool, migrates, and assembles the parts behind the port:
 *
 * - postgres-connection.ts: the pool's query and transaction helpers, `run` (retries, error classification)
 * - postgres-schema.ts: schema and migrations
 * - postgres-ingest.ts: ingest of a group (load, the shared plan of ingest-plan.ts, save)
 * - postgres-ledger.ts: the cart send ledger (claims, leases, fenced write-backs)
 * - postgres-contacts.ts: the contact lane's claims and write-backs
 * - postgres-line-items.ts: the line item lane (line-items.ts)
 * - postgres-privacy.ts: privacy requests and retention
 * - postgres-dead-letters.ts: dead letters for the admin API
 * - postgres-rate-budget.ts: the send budget the replicas share
 * - postgres-activity.ts, postgres-reconcile.ts: the console's and reconciliation's rows
 * - postgres-sql.ts: what the statements share (database clock, lease fence, key-order lock)
 *
 * Concurrency, in short (READ COMMITTED throughout):
 * - Ingest locks the rows of the carts it merges, in key order, creating a placeholder row for a cart not
 *   seen before, merges in JS (`mergeEvent`, `mergeContact`) and writes back with multi-row statements
 *   before COMMIT. Concurrent ingests of one cart from several replicas serialise on its row.
 * - Everything else that updates several carts locks them in key order too, and touches a contact link
 *   only while holding its cart's row, so nothing deadlocks with an ingest; a deadlock or serialization
 *   failure that happens anyway is retried (the transaction was rolled back whole).
 * - Claims take `FOR UPDATE SKIP LOCKED` over the due rows and stamp a lease (owner, until): a claimed cart
 *   is neither due for anyone else nor waited on; when its holder dies the lease runs out and another
 *   replica's claim takes it over.
 *
 * Round trips: the pool's connections pipeline their queries, so BEGIN travels with the first statement
 * and COMMIT with the last. An ingest group costs two round trips whatever its size; every other call one.
 */

/** PostgreSQL is shared by replicas, so it always has the shared send budget. */
export type PostgresStore = Store & Required<SharedRateBudget>;

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10). */
  readonly maxConnections?: number;
  /** Server-side limit per statement, lock waits included (default 30 s). */
  readonly statementTimeoutMs?: number;
  /** Told when an idle pooled connection failed (the pool replaces it); by default ignored. */
  readonly onIdleConnectionError?: (error: Error) => void;
}

/** Opens (and migrates) the PostgreSQL store at `url`. Throws StoreError when it cannot. */
export async function openPostgresStore(
  url: string,
  opts: PostgresStoreOptions = {},
): Promise<PostgresStore> {
  const where = describeUrl(url);
  // Settings in the URL (…?statement_timeout=5000&application_name=x) win over these defaults.
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.maxConnections ?? 10,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    // A replica that stalls inside a transaction must not hold cart locks for long.
    idle_in_transaction_session_timeout: 60_000,
    connectionTimeoutMillis: 10_000,
    application_name: "cartbridge",
    keepAlive: true,
    pipeline: true,
  });
  pool.on("error", (error) => opts.onIdleConnectionError?.(error));
  const connection = createPostgresConnection(pool);
  const { run, query } = connection;

  try {
    await connection.withClient((client) => migrate(client), false);
  } catch (cause) {
    await pool.end().catch(() => undefined);
    if (cause instanceof StoreSchemaError) throw cause;
    throw new StoreError(`could not open the PostgreSQL store at ${where}: ${asError(cause).message}`, {
      retryable: isRetryable(cause),
      cause,
    });
  }

  let closed = false;
  return {
    reconcile: createPostgresReconcileStore((name, text, values) =>
      run(name, () => query(name, text, values)),
    ),
    ...createPostgresLineItems(connection),
    activity: createPostgresActivity(query, toDeadLetter),
    ...createPostgresIngest(connection),
    ...createPostgresLedger(connection),
    ...createPostgresDeadLetters(connection),
    ...createPostgresContacts(connection),
    ...createPostgresPrivacy(connection),
    ...createPostgresRateBudget(connection),

    stats(_nowMs): Promise<StoreStats> {
      return run("stats", async () => {
        const row = (await query("cartbridge_stats", STATS, [])).rows[0] ?? {};
        return {
          pendingCarts: Number(row["pending"] ?? 0),
          oldestPendingSinceMs: optionalNumber(row["oldest"]),
          deadLetters: Number(row["dead"] ?? 0),
          carts: Number(row["carts"] ?? 0),
        };
      });
    },

    async ping() {
      await run("ping", () => query("cartbridge_ping", "SELECT 1", []));
    },

    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

const STATS = `
SELECT (SELECT count(*) FROM carts WHERE pending_since IS NOT NULL) AS pending,
  (SELECT min(pending_since) FROM carts WHERE pending_since IS NOT NULL) AS oldest,
  (SELECT count(*) FROM dead_letters) AS dead,
  (SELECT count(*) FROM carts) AS carts`;
