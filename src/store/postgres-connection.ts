import type pg from "pg";
import { StoreError } from "../errors.ts";

/**
 * How the PostgreSQL store talks to its pool: one pooled connection per call, statements prepared once per
 * connection by name, a transaction's statements pipelined, and every store operation wrapped in `run`, which
 * retries what PostgreSQL rolled back whole and turns everything else into a StoreError that says whether
 * trying again later may work.
 */

/** A result row: column name → value as node-postgres decodes it (BIGINT as a string). */
export type Row = Record<string, unknown>;

/** One named (prepared) statement on a pooled connection. */
export type Query = (name: string, text: string, values: unknown[]) => Promise<pg.QueryResult<Row>>;

export interface PostgresConnection {
  /** Runs one store operation; deadlocks and serialization failures (rolled back whole) are retried. */
  readonly run: <T>(what: string, fn: () => Promise<T>) => Promise<T>;
  /** One statement on a pooled connection (prepared once per connection, by name). */
  readonly query: Query;
  /** Statements as one transaction in one round trip: BEGIN, each, COMMIT written at once. */
  readonly transaction: (statements: readonly pg.QueryConfig[]) => Promise<pg.QueryResult<Row>[]>;
  /**
   * A pooled connection for `fn`. A transaction `fn` leaves open is rolled back (when `rollback`); a
   * connection that broke (or errored while checked out, which pg reports as an 'error' event) is dropped,
   * not pooled again.
   */
  readonly withClient: <T>(fn: (client: pg.PoolClient) => Promise<T>, rollback: boolean) => Promise<T>;
}

export function createPostgresConnection(pool: pg.Pool): PostgresConnection {
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

  function query(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<Row>> {
    return withClient((client) => client.query<Row>({ name, text, values }), false);
  }

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

  return { run, query, transaction, withClient };
}

export function asError(value: unknown): Error {
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
export function isRetryable(cause: unknown): boolean {
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
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port === "" ? "" : `:${u.port}`}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}
