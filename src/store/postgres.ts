import pg from "pg";
import { StoreError, StoreSchemaError } from "../errors.ts";
import type { CartState } from "../sync/merge.ts";
import { planIngest } from "./ingest-plan.ts";
import { LOCK_CARTS, WRITE_CARTS, lockParams, readLocked, writeParams } from "./postgres-ingest.ts";
import { compareText, optionalNumber, optionalString, toClaimedContact, toDeadLetter } from "./rows.ts";
import { createPostgresActivity, purgeActivity, recordActivity } from "./postgres-activity.ts";
import { migrate } from "./postgres-schema.ts";
import { createPostgresReconcileStore } from "./postgres-reconcile.ts";
import {
  createPostgresLineItems,
  ingestLineSetsStatement,
  MARK_LINE_SET_PENDING,
  REDACT_LINE_SETS,
} from "./postgres-line-items.ts";
import * as sql from "./postgres-sql.ts";
import type {
  ClaimedCart,
  DataSubject,
  IngestItem,
  IngestOutcome,
  PendingSummary,
  RejectedCart,
  SharedRateBudget,
  SentCart,
  Store,
  StoreStats,
  SubjectRecords,
} from "./store.ts";

/**
 * The PostgreSQL store: the same port as sqlite.ts, with the same semantics, for any number of replicas
 * sharing one database. Schema and migrations: postgres-schema.ts; ingest: postgres-ingest.ts; the other
 * statements: postgres-sql.ts.
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

type Row = Record<string, unknown>;

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

  try {
    await withClient((client) => migrate(client), false);
  } catch (cause) {
    await pool.end().catch(() => undefined);
    if (cause instanceof StoreSchemaError) throw cause;
    throw new StoreError(`could not open the PostgreSQL store at ${where}: ${asError(cause).message}`, {
      retryable: isRetryable(cause),
      cause,
    });
  }

  let closed = false;

  /** Runs one store operation; deadlocks and serialization failures (rolled back whole) are retried. */
  async function run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (cause) {
        if (attempt < 4 && isRetriedInPlace(cause)) continue;
        if (cause instanceof StoreError) throw cause;
        throw new StoreError(`${what} failed: ${asError(cause).message}`, {
          retryable: isRetryable(cause),
          cause,
        });
      }
    }
  }

  /**
   * A pooled connection for `fn`. A transaction `fn` leaves open is rolled back; a connection that broke
   * (or errored while checked out, which pg reports as an 'error' event) is dropped, not pooled again.
   */
  async function withClient<T>(fn: (client: pg.PoolClient) => Promise<T>, rollback: boolean): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    const onLost = (error: Error): void => {
      broken = error;
    };
    client.on("error", onLost);
    try {
      return await fn(client);
    } catch (error) {
      if (breaksConnection(error)) broken ??= asError(error);
      else if (rollback) await client.query("ROLLBACK").catch((e: unknown) => (broken = asError(e)));
      throw error;
    } finally {
      client.off("error", onLost);
      client.release(broken);
    }
  }

  /** One statement on a pooled connection (prepared once per connection, by name). */
  function query(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<Row>> {
    return withClient((client) => client.query<Row>({ name, text, values }), false);
  }

  /** Statements as one transaction in one round trip: BEGIN, each, COMMIT written at once. */
  function transaction(statements: readonly pg.QueryConfig[]): Promise<pg.QueryResult<Row>[]> {
    return withClient(async (client) => {
      const results = await Promise.all([
        client.query("BEGIN"),
        ...statements.map((s) => client.query<Row>(s)),
        client.query("COMMIT"),
      ]);
      return results.slice(1, -1) as pg.QueryResult<Row>[];
    }, true);
  }

  function ingest(items: readonly IngestItem[]): Promise<IngestOutcome[]> {
    return withClient(async (client) => {
      const [, locked] = await Promise.all([
        client.query("BEGIN"),
        client.query<Row>({ name: "cartbridge_lock_carts", text: LOCK_CARTS, values: lockParams(items) }),
      ]);
      const plan = planIngest(items, readLocked(locked.rows), Date.now());
      const lineSets = ingestLineSetsStatement(items, plan.outcomes, Date.now());
      const activity = recordActivity(items, plan.outcomes);
      await Promise.all([
        client.query({ name: "cartbridge_write_carts", text: WRITE_CARTS, values: writeParams(plan) }),
        ...(lineSets === undefined ? [] : [client.query(lineSets)]),
        ...(activity === undefined ? [] : [client.query(activity)]),
        client.query("COMMIT"),
      ]);
      return plan.outcomes;
    }, true);
  }

  const lockCarts = (keys: readonly string[]): pg.QueryConfig => ({
    name: "cartbridge_lock_carts_by_key",
    text: sql.LOCK_CARTS_BY_KEY,
    values: [[...keys]],
  });

  const clearSentDeliveries = (keys: readonly string[]): pg.QueryConfig => ({
    name: "cartbridge_clear_sent_deliveries",
    text: sql.CLEAR_SENT_DELIVERIES,
    values: [[...keys]],
  });

  /** `written`: HubSpot has the carts (their last-sent time moves); false for rejections settled here. */
  const markSentStatement = (sent: readonly SentCart[], owner: string, written = true): pg.QueryConfig => ({
    name: "cartbridge_mark_sent",
    text: sql.MARK_SENT,
    values: [
      sent.map((c) => c.key),
      sent.map((c) => c.version),
      sent.map((c) => c.hubspotId ?? null),
      owner,
      written,
    ],
  });

  const subjectParams = (subject: DataSubject): unknown[] => [
    subject.shopDomain,
    subject.email?.toLowerCase() ?? null,
    subject.phone ?? null,
  ];

  const store: PostgresStore = {
    reconcile: createPostgresReconcileStore((name, text, values) =>
      run(name, () => query(name, text, values)),
    ),
    ...createPostgresLineItems({ run, query, transaction }),
    activity: createPostgresActivity(query, toDeadLetter),

    ingestBatch(items) {
      if (items.length === 0) return Promise.resolve([]);
      return run("ingest", () => ingest(items));
    },

    pendingSummary(nowMs, cap): Promise<PendingSummary> {
      return run("pending summary", async () => {
        const row =
          (await query("cartbridge_pending_summary", sql.PENDING_SUMMARY, [nowMs, cap])).rows[0] ?? {};
        return {
          dueCount: Number(row["due"] ?? 0),
          oldestDueSinceMs: optionalNumber(row["oldest"]),
          nextRetryAtMs: optionalNumber(row["retry"]),
        };
      });
    },

    claimDue({ limit, nowMs, leaseMs, owner }) {
      if (limit <= 0) return Promise.resolve([]);
      return run("claim", async () => {
        const { rows } = await query("cartbridge_claim", sql.CLAIM, [nowMs, limit, owner, leaseMs]);
        rows.sort(
          (a, b) =>
            Number(a["pending_since"]) - Number(b["pending_since"]) || compareText(a["key"], b["key"]),
        );
        return rows.map((row): ClaimedCart => ({
          key: String(row["key"]),
          version: Number(row["version"]),
          attempts: Number(row["attempts"]),
          state: JSON.parse(String(row["state"])) as CartState,
          hubspotId: optionalString(row["hubspot_id"]),
        }));
      });
    },

    async markSent(carts: readonly SentCart[], owner) {
      if (carts.length === 0) return [];
      const sent = newestPerKey(carts, (c) => c.key);
      const keys = sent.map((c) => c.key);
      const [, , marked] = await run("mark sent", () =>
        transaction([
          lockCarts(keys),
          { name: "cartbridge_repend_unheld", text: sql.REPEND_UNHELD, values: [keys, owner] },
          markSentStatement(sent, owner),
        ]),
      );
      const markedKeys = new Set((marked?.rows ?? []).map((row) => String(row["key"])));
      return sent.filter((c) => markedKeys.has(c.key));
    },

    async markFailed(keys, owner, { nextAttemptAtMs, error }) {
      if (keys.length === 0) return;
      await run("mark failed", () =>
        transaction([
          lockCarts(keys),
          // As in markSent: a lost claim's failed write may still have landed after a newer one.
          { name: "cartbridge_repend_unheld", text: sql.REPEND_UNHELD, values: [[...keys], owner] },
          {
            name: "cartbridge_mark_failed",
            text: sql.MARK_FAILED,
            values: [[...keys], owner, nextAttemptAtMs, error],
          },
        ]),
      );
    },

    async renewClaims(keys, owner, { leaseMs }) {
      if (keys.length === 0) return [];
      const { rows } = await run("renew claims", () =>
        query("cartbridge_renew", sql.RENEW, [[...keys], owner, leaseMs]),
      );
      return rows.map((row) => String(row["key"]));
    },

    async release(keys, owner) {
      if (keys.length === 0) return;
      await run("release", () => query("cartbridge_release", sql.RELEASE, [[...keys], owner]));
    },

    async markRejected(carts: readonly RejectedCart[], owner, nowMs) {
      if (carts.length === 0) return;
      const newest = newestPerKey(carts, (c) => c.key);
      await run("mark rejected", () =>
        transaction([
          lockCarts(carts.map((c) => c.key)),
          {
            name: "cartbridge_dead_letter_rejected_carts",
            text: sql.DEAD_LETTER_REJECTED_CARTS,
            values: [
              carts.map((c) => c.key),
              carts.map((c) => c.reason),
              carts.map((c) => c.category ?? null),
              nowMs,
              owner,
            ],
          },
          // A lost claim's rejection is dropped: HubSpot wrote nothing, the new owner sends the cart.
          markSentStatement(
            newest.map((c) => ({ key: c.key, version: c.version, hubspotId: undefined })),
            owner,
            false,
          ),
        ]),
      );
    },

    listDeadLetters({ limit, afterId }) {
      return run("list dead letters", async () => {
        const { rows } = await query("cartbridge_list_dead_letters", sql.LIST_DEAD_LETTERS, [
          afterId ?? 0,
          limit,
        ]);
        return rows.map(toDeadLetter);
      });
    },

    getDeadLetters(ids) {
      if (ids.length === 0) return Promise.resolve([]);
      return run("get dead letters", async () => {
        const { rows } = await query("cartbridge_get_dead_letters", sql.GET_DEAD_LETTERS, [[...ids]]);
        const byId = new Map(rows.map((row) => [Number(row["id"]), toDeadLetter(row)]));
        return ids.flatMap((id) => byId.get(id) ?? []);
      });
    },

    async deleteDeadLetters(ids) {
      if (ids.length === 0) return;
      await run("delete dead letters", () =>
        query("cartbridge_delete_dead_letters", sql.DELETE_DEAD_LETTERS, [[...ids]]),
      );
    },

    async markPending(key, nowMs) {
      await run("mark pending", () =>
        transaction([
          { name: "cartbridge_mark_pending", text: sql.MARK_PENDING, values: [key, nowMs] },
          { name: "cartbridge_mark_line_set_pending", text: MARK_LINE_SET_PENDING, values: [key, nowMs] },
        ]),
      );
    },

    claimContactsDue({ limit, nowMs, leaseMs, owner }) {
      if (limit <= 0) return Promise.resolve([]);
      return run("claim contacts", async () => {
        const { rows } = await query("cartbridge_claim_contacts", sql.CLAIM_CONTACTS, [
          nowMs,
          limit,
          owner,
          leaseMs,
        ]);
        rows.sort(
          (a, b) =>
            Number(a["updated_at"]) - Number(b["updated_at"]) || compareText(a["cart_key"], b["cart_key"]),
        );
        return rows.map(toClaimedContact);
      });
    },

    async markContactsSent(contacts, owner) {
      if (contacts.length === 0) return;
      const sent = newestPerKey(contacts, (c) => c.cartKey);
      const keys = sent.map((c) => c.cartKey);
      await run("mark contacts sent", () =>
        transaction([
          lockCarts(keys),
          {
            name: "cartbridge_mark_contacts_sent",
            text: sql.MARK_CONTACTS_SENT,
            values: [keys, sent.map((c) => c.version), owner],
          },
          clearSentDeliveries(keys),
        ]),
      );
    },

    async markContactsFailed(keys, owner, { nextAttemptAtMs, error }) {
      if (keys.length === 0) return;
      await run("mark contacts failed", () =>
        transaction([
          lockCarts(keys),
          {
            name: "cartbridge_mark_contacts_failed",
            text: sql.MARK_CONTACTS_FAILED,
            values: [[...keys], owner, nextAttemptAtMs, error],
          },
        ]),
      );
    },

    async releaseContacts(keys, owner) {
      if (keys.length === 0) return;
      await run("release contacts", () =>
        transaction([
          lockCarts(keys),
          { name: "cartbridge_release_contacts", text: sql.RELEASE_CONTACTS, values: [[...keys], owner] },
        ]),
      );
    },

    async markContactsRejected(contacts, owner, nowMs) {
      if (contacts.length === 0) return;
      const keys = contacts.map((c) => c.cartKey);
      await run("mark contacts rejected", () =>
        transaction([
          lockCarts(keys),
          {
            name: "cartbridge_dead_letter_rejected_contacts",
            text: sql.DEAD_LETTER_REJECTED_CONTACTS,
            values: [
              keys,
              contacts.map((c) => c.reason),
              contacts.map((c) => c.category ?? null),
              nowMs,
              owner,
            ],
          },
          // Forget the buyer entirely, so a replay of the dead letter links it again.
          { name: "cartbridge_delete_contacts", text: sql.DELETE_CONTACTS, values: [keys, owner] },
          clearSentDeliveries(keys),
        ]),
      );
    },

    redact(subject): Promise<SubjectRecords> {
      const p = subjectParams(subject);
      return run("redact", async () => {
        const [, contacts, deadLetters, deliveries, carts] = await transaction([
          { name: "cartbridge_lock_subject_carts", text: sql.LOCK_SUBJECT_CARTS, values: p },
          { name: "cartbridge_redact_contacts", text: sql.REDACT_CONTACTS, values: p },
          { name: "cartbridge_redact_dead_letters", text: sql.REDACT_DEAD_LETTERS, values: p },
          { name: "cartbridge_redact_deliveries", text: sql.REDACT_DELIVERIES, values: p },
          { name: "cartbridge_redact_carts", text: sql.REDACT_CARTS, values: p },
          { name: "cartbridge_redact_line_sets", text: REDACT_LINE_SETS, values: p },
        ]);
        return {
          carts: carts?.rowCount ?? 0,
          contacts: contacts?.rowCount ?? 0,
          deadLetters: deadLetters?.rowCount ?? 0,
          pendingDeliveries: deliveries?.rowCount ?? 0,
        };
      });
    },

    describeSubject(subject): Promise<SubjectRecords> {
      return run("describe subject", async () => {
        const row =
          (await query("cartbridge_describe_subject", sql.DESCRIBE_SUBJECT, subjectParams(subject)))
            .rows[0] ?? {};
        return {
          carts: Number(row["carts"] ?? 0),
          contacts: Number(row["contacts"] ?? 0),
          deadLetters: Number(row["dead_letters"] ?? 0),
          pendingDeliveries: Number(row["deliveries"] ?? 0),
        };
      });
    },

    purgeExpired(beforeMs) {
      return run(
        "purge",
        async () =>
          Number((await query("cartbridge_purge", sql.PURGE, [beforeMs])).rows[0]?.["n"] ?? 0) +
          (await purgeActivity(query, beforeMs)),
      );
    },

    stats(_nowMs): Promise<StoreStats> {
      return run("stats", async () => {
        const row = (await query("cartbridge_stats", sql.STATS, [])).rows[0] ?? {};
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

    takeRateSlot(nowMs, maxPerWindow, windowMs) {
      return run("take rate slot", async () => {
        const { rows } = await query("cartbridge_take_rate_slot", sql.TAKE_RATE_SLOT, [
          "hubspot",
          nowMs,
          maxPerWindow,
          windowMs,
        ]);
        const row = rows[0] ?? {};
        if (row["granted"] === true) return 0;
        const sent = ((row["sent_at"] as unknown[] | null) ?? []).map(Number);
        const blocking = sent[sent.length - Math.max(1, Math.floor(maxPerWindow))] ?? nowMs;
        return Math.min(windowMs, Math.max(1, blocking + windowMs - nowMs));
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
  return store;
}

/** One entry per key, the highest version winning (the callers never repeat a key; be exact anyway). */
function newestPerKey<T extends { readonly version: number }>(
  items: readonly T[],
  keyOf: (item: T) => string,
): T[] {
  const byKey = new Map<string, T>();
  for (const item of items) {
    const seen = byKey.get(keyOf(item));
    if (seen === undefined || item.version > seen.version) byKey.set(keyOf(item), item);
  }
  return [...byKey.values()];
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** The connection is gone: a socket error, a lost link, or the server ending the session. */
function breaksConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && SQLSTATE.test(code)) return code.startsWith("08") || code.startsWith("57P");
  if (typeof code === "string") return true; // ECONNRESET, EPIPE, ETIMEDOUT, …
  return /Connection terminated|not queryable/i.test(asError(error).message);
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Deadlock or serialization failure: the transaction was rolled back whole, so running it again is safe. */
function isRetriedInPlace(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | null)?.code;
  return code === "40P01" || code === "40001";
}

/**
 * Whether trying again later may work: lost or refused connections, timeouts, a server shutting down or
 * short of resources, lock conflicts. Not: SQL errors, constraint violations, bugs, a closed store.
 */
function isRetryable(cause: unknown): boolean {
  if (cause instanceof StoreError) return cause.retryable;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === "string" && SQLSTATE.test(code)) {
    return ["08", "40", "53", "57", "58"].includes(code.slice(0, 2)) || code === "55P03";
  }
  if (typeof code === "string") return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND, …
  // No code: a lost link or a pool that could not connect in time may pass; a bug or a closed store not.
  return breaksConnection(cause) || /timeout/i.test(asError(cause).message);
}

/** host:port/database, never the password. */
function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port === "" ? "" : `:${u.port}`}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}
