import pg from "pg";
import { StoreError } from "../errors.ts";
import { mergeEvent, type CartState } from "../sync/merge.ts";
import { migrate } from "./postgres-schema.ts";
import type {
  ClaimedCart,
  DeadLetter,
  IngestItem,
  IngestOutcome,
  PendingSummary,
  RejectedCart,
  SentCart,
  Store,
  StoreStats,
} from "./store.ts";

/**
 * The PostgreSQL store: the same port as sqlite.ts, with the same semantics, for any number of replicas
 * sharing one database.
 *
 * Concurrency, in short (READ COMMITTED throughout):
 * - Ingest locks the rows of the carts it merges, in key order, with one upsert that also creates a
 *   placeholder row (version 0) for a cart not seen before — so a cart that two replicas see for the first
 *   time at once is still merged under one lock, and two ingests never deadlock on each other. It merges in
 *   JS (`mergeEvent`) and writes every cart back with one multi-row UPDATE before COMMIT.
 * - Every other multi-row update locks its rows in key order too, so it cannot deadlock with an ingest; a
 *   deadlock or serialization failure that happens anyway is retried (the transaction rolled back whole).
 * - Claims take `FOR UPDATE SKIP LOCKED` over the due carts and stamp a lease (owner, until): a claimed cart
 *   is neither due for anyone else nor waited on; when its holder dies the lease simply runs out.
 *
 * Round trips: the pool's connections pipeline their queries, so BEGIN travels with the first statement
 * and COMMIT with the last. An ingest group costs two round trips whatever its size; each other call one.
 */

export interface SharedRateBudget {
  /**
   * Takes a slot from the send budget every replica shares: at most `maxPerWindow` slots in any `windowMs`
   * (rolling). Returns 0 when the slot was taken, else how many ms to wait before asking again.
   */
  takeRateSlot(nowMs: number, maxPerWindow: number, windowMs: number): Promise<number>;
}

export type PostgresStore = Store & SharedRateBudget;

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10). */
  readonly maxConnections?: number;
  /** Server-side limit per statement, lock waits included (default 30 s). */
  readonly statementTimeoutMs?: number;
  /** Told when an idle pooled connection failed (the pool replaces it); by default ignored. */
  readonly onIdleConnectionError?: (error: Error) => void;
}

type Row = Record<string, unknown>;

/** The carts a group's events touch, locked (and created as version-0 placeholders when new), key order. */
const LOCK_CARTS = `
WITH new_deliveries AS (
  INSERT INTO deliveries (webhook_id, received_at)
  SELECT * FROM unnest($1::text[], $2::bigint[])
  ON CONFLICT (webhook_id) DO NOTHING
  RETURNING webhook_id
), wanted AS (
  SELECT DISTINCT ON (w.key) w.key, w.shop
  FROM unnest($3::text[], $4::text[], $5::text[]) AS w(key, shop, webhook_id)
  WHERE w.webhook_id IS NULL OR w.webhook_id IN (SELECT webhook_id FROM new_deliveries)
  ORDER BY w.key
), locked AS (
  INSERT INTO carts AS c (key, shop, state, version, updated_at)
  SELECT key, shop, '', 0, 0 FROM wanted ORDER BY key
  ON CONFLICT (key) DO UPDATE SET version = c.version
  RETURNING c.key, c.state, c.version
)
SELECT 'delivery' AS kind, webhook_id AS key, NULL AS state, NULL::bigint AS version FROM new_deliveries
UNION ALL
SELECT 'cart', key, state, version FROM locked`;

/** Dead letters of unmappable deliveries, unused placeholders, and the merged carts. */
const WRITE_CARTS = `
WITH dead AS (
  INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
  SELECT d.created_at, 'mapping', d.topic, d.shop, d.webhook_id, NULL, d.reason, 'UNMAPPABLE', d.headers, d.body
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[])
    WITH ORDINALITY AS d(created_at, topic, shop, webhook_id, reason, headers, body, ord)
  ORDER BY d.ord
  RETURNING 1
), unused AS (
  DELETE FROM carts WHERE key = ANY($8::text[]) AND version = 0
  RETURNING 1
)
UPDATE carts AS c SET
  state = u.state,
  version = u.version,
  updated_at = u.updated_at,
  pending_since = CASE WHEN u.version > c.version THEN coalesce(c.pending_since, u.pending_since) ELSE c.pending_since END,
  last_topic = CASE WHEN u.version > c.version THEN u.last_topic ELSE c.last_topic END,
  last_webhook_id = CASE WHEN u.version > c.version THEN u.last_webhook_id ELSE c.last_webhook_id END,
  last_headers = CASE WHEN u.version > c.version THEN u.last_headers ELSE c.last_headers END,
  last_body = CASE WHEN u.version > c.version THEN u.last_body ELSE c.last_body END
FROM unnest($9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::text[], $15::text[],
    $16::text[], $17::bytea[])
  AS u(key, state, version, updated_at, pending_since, last_topic, last_webhook_id, last_headers, last_body)
WHERE c.key = u.key`;

const CLAIM = `
UPDATE carts AS c SET lease_owner = $3, lease_until = $4
FROM (
  SELECT key FROM carts
  WHERE pending_since IS NOT NULL AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
  ORDER BY pending_since, key
  LIMIT $2
  FOR UPDATE SKIP LOCKED
) AS due
WHERE c.key = due.key
RETURNING c.key, c.version, c.attempts, c.state, c.hubspot_id, c.pending_since`;

/** Rows of `$1` locked in key order, so multi-row updates cannot deadlock with an ingest. */
const LOCK_KEYS = "(SELECT key FROM carts WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE)";

const MARK_SENT = `
UPDATE carts AS c SET
  synced_version = greatest(c.synced_version, u.version),
  pending_since = CASE WHEN c.version <= u.version THEN NULL ELSE c.pending_since END,
  last_headers = CASE WHEN c.version <= u.version THEN NULL ELSE c.last_headers END,
  last_body = CASE WHEN c.version <= u.version THEN NULL ELSE c.last_body END,
  attempts = 0, next_attempt_at = 0, last_error = NULL,
  hubspot_id = coalesce(u.hubspot_id, c.hubspot_id),
  lease_owner = CASE WHEN c.lease_owner = $4 THEN NULL ELSE c.lease_owner END,
  lease_until = CASE WHEN c.lease_owner = $4 THEN NULL ELSE c.lease_until END
FROM ${LOCK_KEYS} AS l, unnest($1::text[], $2::bigint[], $3::text[]) AS u(key, version, hubspot_id)
WHERE c.key = l.key AND u.key = l.key`;

const MARK_FAILED = `
UPDATE carts AS c SET attempts = c.attempts + 1, next_attempt_at = $3, last_error = $4,
  lease_owner = NULL, lease_until = NULL
FROM ${LOCK_KEYS} AS l
WHERE c.key = l.key AND c.lease_owner = $2`;

const RELEASE = `
UPDATE carts AS c SET lease_owner = NULL, lease_until = NULL
FROM ${LOCK_KEYS} AS l
WHERE c.key = l.key AND c.lease_owner = $2`;

const DEAD_LETTER_REJECTED = `
INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
SELECT $5, 'hubspot', coalesce(c.last_topic, 'unknown'), c.shop, c.last_webhook_id, r.key, r.reason, r.category,
  coalesce(c.last_headers, '{}'), c.last_body
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS r(key, version, reason, category, ord)
JOIN carts AS c ON c.key = r.key
ORDER BY r.ord`;

const PENDING_SUMMARY = `
SELECT
  count(*) FILTER (WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)) AS due,
  min(pending_since) FILTER (WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)) AS oldest,
  min(next_attempt_at) FILTER (WHERE next_attempt_at > $1) AS retry
FROM carts WHERE pending_since IS NOT NULL`;

const STATS = `
SELECT (SELECT count(*) FROM carts WHERE pending_since IS NOT NULL) AS pending,
  (SELECT min(pending_since) FROM carts WHERE pending_since IS NOT NULL) AS oldest,
  (SELECT count(*) FROM dead_letters) AS dead,
  (SELECT count(*) FROM carts WHERE version > 0) AS carts`;

const PURGE = `
WITH d AS (DELETE FROM deliveries WHERE received_at < $1 RETURNING 1),
  l AS (DELETE FROM dead_letters WHERE created_at < $1 RETURNING 1)
SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM l) AS n`;

/** The window's send times, pruned and sorted, plus the new one when there is room. */
const TAKE_RATE_SLOT = `
INSERT INTO rate_budgets AS b (name, sent_at, granted)
VALUES ($1, CASE WHEN $3 > 0 THEN ARRAY[$2::bigint] ELSE '{}'::bigint[] END, $3 > 0)
ON CONFLICT (name) DO UPDATE SET
  granted = (SELECT count(*) FROM unnest(b.sent_at) AS t WHERE t > $2 - $4) < $3,
  sent_at = CASE WHEN (SELECT count(*) FROM unnest(b.sent_at) AS t WHERE t > $2 - $4) < $3
    THEN array(SELECT t FROM unnest(b.sent_at) AS t WHERE t > $2 - $4 ORDER BY t) || $2::bigint
    ELSE array(SELECT t FROM unnest(b.sent_at) AS t WHERE t > $2 - $4 ORDER BY t) END
RETURNING granted, sent_at`;

/** Opens (and migrates) the PostgreSQL store at `url`. Throws StoreError when it cannot. */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
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
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await migrate(client);
    } catch (error) {
      broken = asError(error);
      throw error;
    } finally {
      client.release(broken);
    }
  } catch (cause) {
    await pool.end().catch(() => undefined);
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
        throw new StoreError(`${what} failed: ${asError(cause).message}`, { retryable: isRetryable(cause), cause });
      }
    }
  }

  /** One pooled connection for `fn`; a transaction `fn` leaves open is rolled back, a broken link dropped. */
  async function withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch (rollbackError) {
        broken = asError(rollbackError);
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }

  function query(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<Row>> {
    return pool.query<Row>({ name, text, values });
  }

  async function ingest(items: readonly IngestItem[]): Promise<IngestOutcome[]> {
    const lock = lockRequest(items);
    return withClient(async (client) => {
      const [, locked] = await Promise.all([
        client.query("BEGIN"),
        client.query<Row>({ name: "cartbridge_lock_carts", text: LOCK_CARTS, values: lock }),
      ]);
      const newDeliveries = new Set<string>();
      const carts = new Map<string, LockedCart>();
      for (const row of locked.rows) {
        const key = String(row["key"]);
        if (row["kind"] === "delivery") newDeliveries.add(key);
        else carts.set(key, { version: Number(row["version"]), state: parseState(row["state"]) });
      }
      const plan = planIngest(items, newDeliveries, carts);
      await Promise.all([
        client.query({ name: "cartbridge_write_carts", text: WRITE_CARTS, values: writeParams(plan) }),
        client.query("COMMIT"),
      ]);
      return plan.outcomes;
    });
  }

  const store: PostgresStore = {
    ingestBatch(items) {
      if (items.length === 0) return Promise.resolve([]);
      return run("ingest", () => ingest(items));
    },

    pendingSummary(nowMs): Promise<PendingSummary> {
      return run("pending summary", async () => {
        const row = (await query("cartbridge_pending_summary", PENDING_SUMMARY, [nowMs])).rows[0] ?? {};
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
        const rows = (await query("cartbridge_claim", CLAIM, [nowMs, limit, owner, nowMs + leaseMs])).rows;
        rows.sort(
          (a, b) => Number(a["pending_since"]) - Number(b["pending_since"]) || compareText(a["key"], b["key"]),
        );
        return rows.map(
          (row): ClaimedCart => ({
            key: String(row["key"]),
            version: Number(row["version"]),
            attempts: Number(row["attempts"]),
            state: JSON.parse(String(row["state"])) as CartState,
            hubspotId: optionalString(row["hubspot_id"]),
          }),
        );
      });
    },

    async markSent(carts: readonly SentCart[], owner) {
      if (carts.length === 0) return;
      const sent = newestPerKey(carts);
      await run("mark sent", () =>
        query("cartbridge_mark_sent", MARK_SENT, [
          sent.map((c) => c.key),
          sent.map((c) => c.version),
          sent.map((c) => c.hubspotId ?? null),
          owner,
        ]),
      );
    },

    async markFailed(keys, owner, { nextAttemptAtMs, error }) {
      if (keys.length === 0) return;
      await run("mark failed", () =>
        query("cartbridge_mark_failed", MARK_FAILED, [[...keys], owner, nextAttemptAtMs, error]),
      );
    },

    async release(keys, owner) {
      if (keys.length === 0) return;
      await run("release", () => query("cartbridge_release", RELEASE, [[...keys], owner]));
    },

    async markRejected(carts: readonly RejectedCart[], owner, nowMs) {
      if (carts.length === 0) return;
      const newest = newestPerKey(carts);
      await run("mark rejected", () =>
        withClient(async (client) => {
          // One round trip: lock, keep each cart's newest delivery as a dead letter, stop it being pending.
          await Promise.all([
            client.query("BEGIN"),
            client.query({ name: "cartbridge_lock_keys", text: `SELECT key FROM ${LOCK_KEYS} AS l`, values: [carts.map((c) => c.key)] }),
            client.query({
              name: "cartbridge_dead_letter_rejected",
              text: DEAD_LETTER_REJECTED,
              values: [
                carts.map((c) => c.key),
                carts.map((c) => c.version),
                carts.map((c) => c.reason),
                carts.map((c) => c.category ?? null),
                nowMs,
              ],
            }),
            client.query({
              name: "cartbridge_mark_sent",
              text: MARK_SENT,
              values: [newest.map((c) => c.key), newest.map((c) => c.version), newest.map(() => null), owner],
            }),
            client.query("COMMIT"),
          ]);
        }),
      );
    },

    listDeadLetters({ limit, afterId }) {
      return run("list dead letters", async () => {
        const result = await query(
          "cartbridge_list_dead_letters",
          "SELECT * FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
          [afterId ?? 0, limit],
        );
        return result.rows.map(toDeadLetter);
      });
    },

    getDeadLetters(ids) {
      if (ids.length === 0) return Promise.resolve([]);
      return run("get dead letters", async () => {
        const result = await query("cartbridge_get_dead_letters", "SELECT * FROM dead_letters WHERE id = ANY($1::bigint[])", [
          [...ids],
        ]);
        const byId = new Map(result.rows.map((row) => [Number(row["id"]), toDeadLetter(row)]));
        return ids.flatMap((id) => byId.get(id) ?? []);
      });
    },

    async deleteDeadLetters(ids) {
      if (ids.length === 0) return;
      await run("delete dead letters", () =>
        query("cartbridge_delete_dead_letters", "DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", [[...ids]]),
      );
    },

    async markPending(key, nowMs) {
      await run("mark pending", () =>
        query(
          "cartbridge_mark_pending",
          `UPDATE carts SET pending_since = coalesce(pending_since, $2), version = version + 1,
             attempts = 0, next_attempt_at = 0 WHERE key = $1`,
          [key, nowMs],
        ),
      );
    },

    purgeExpired(beforeMs) {
      return run("purge", async () => Number((await query("cartbridge_purge", PURGE, [beforeMs])).rows[0]?.["n"] ?? 0));
    },

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
      await run("ping", () => pool.query("SELECT 1"));
    },

    takeRateSlot(nowMs, maxPerWindow, windowMs) {
      return run("take rate slot", async () => {
        const result = await query("cartbridge_take_rate_slot", TAKE_RATE_SLOT, ["hubspot", nowMs, maxPerWindow, windowMs]);
        const row = result.rows[0] ?? {};
        if (row["granted"] === true) return 0;
        const sent = (row["sent_at"] as unknown[] | null ?? []).map(Number);
        const limit = Math.max(1, Math.floor(maxPerWindow));
        const oldestBlocking = sent[sent.length - limit] ?? nowMs;
        return Math.min(windowMs, Math.max(1, oldestBlocking + windowMs - nowMs));
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

interface LockedCart {
  readonly version: number;
  /** undefined: a placeholder this transaction created for a cart not seen before. */
  readonly state: CartState | undefined;
}

interface CartWrite {
  readonly key: string;
  state: CartState;
  version: number;
  updatedAt: number;
  pendingSince: number | null;
  last: IngestItem | undefined;
}

interface DeadLetterWrite {
  readonly item: IngestItem;
  readonly reason: string;
}

interface IngestPlan {
  readonly outcomes: IngestOutcome[];
  readonly deadLetters: DeadLetterWrite[];
  readonly carts: CartWrite[];
  /** Placeholders locked for an event that turned out to be a redelivery. */
  readonly unused: string[];
}

/** Parameters of LOCK_CARTS: the group's delivery ids (sorted, so concurrent groups insert in one order) and cart keys. */
function lockRequest(items: readonly IngestItem[]): unknown[] {
  const firstSeen = new Map<string, number>();
  const keys: string[] = [];
  const shops: string[] = [];
  const keyWebhookIds: (string | null)[] = [];
  for (const item of items) {
    const checked = item.webhookId !== undefined && item.replay !== true;
    if (checked && !firstSeen.has(item.webhookId)) firstSeen.set(item.webhookId, item.receivedAtMs);
    if (item.mapped.kind === "event") {
      keys.push(item.mapped.event.key);
      shops.push(item.mapped.event.shopDomain);
      // A replay or an id-less delivery is never a duplicate; the others count when their id is new.
      keyWebhookIds.push(checked ? (item.webhookId ?? null) : null);
    }
  }
  const ids = [...firstSeen.keys()].sort(compareText);
  return [ids, ids.map((id) => firstSeen.get(id)), keys, shops, keyWebhookIds];
}

/**
 * Replays the group in order against the locked carts, exactly as sqlite.ts commits it item by item: a
 * delivery id seen before (in the database or earlier in the group) is a duplicate; each event merges
 * into its cart; a change bumps the version and records the delivery as the cart's newest.
 */
function planIngest(
  items: readonly IngestItem[],
  newDeliveries: ReadonlySet<string>,
  locked: ReadonlyMap<string, LockedCart>,
): IngestPlan {
  const unseen = new Set(newDeliveries);
  const outcomes: IngestOutcome[] = [];
  const deadLetters: DeadLetterWrite[] = [];
  const carts = new Map<string, CartWrite>();
  for (const item of items) {
    if (item.webhookId !== undefined && item.replay !== true && !unseen.delete(item.webhookId)) {
      outcomes.push("duplicate");
      continue;
    }
    const mapped = item.mapped;
    switch (mapped.kind) {
      case "unhandled":
        outcomes.push("ignored");
        break;
      case "unkeyed":
        outcomes.push("unkeyed");
        break;
      case "invalid":
        deadLetters.push({ item, reason: mapped.reason });
        outcomes.push("dead_lettered");
        break;
      case "event": {
        const event = mapped.event;
        let cart = carts.get(event.key);
        if (cart === undefined) {
          const row = locked.get(event.key);
          if (row === undefined) {
            throw new StoreError(`cart ${event.key} was not locked for ingest`, { retryable: false });
          }
          cart = { key: event.key, state: row.state as CartState, version: row.version, updatedAt: 0, pendingSince: null, last: undefined };
          carts.set(event.key, cart);
          if (row.state === undefined) {
            const { state } = mergeEvent(undefined, event);
            Object.assign(cart, { state, version: 1, updatedAt: item.receivedAtMs, pendingSince: item.receivedAtMs, last: item });
            outcomes.push("applied");
            break;
          }
        }
        const { state, changed } = mergeEvent(cart.state, event);
        cart.state = state;
        cart.updatedAt = item.receivedAtMs;
        if (changed) {
          cart.version++;
          cart.pendingSince ??= item.receivedAtMs;
          cart.last = item;
        }
        outcomes.push(changed ? "applied" : "unchanged");
        break;
      }
    }
  }
  const unused = [...locked].filter(([key, row]) => row.state === undefined && !carts.has(key)).map(([key]) => key);
  return { outcomes, deadLetters, carts: [...carts.values()], unused };
}

function writeParams(plan: IngestPlan): unknown[] {
  const d = plan.deadLetters;
  const c = plan.carts;
  return [
    d.map((x) => x.item.receivedAtMs),
    d.map((x) => x.item.topic),
    d.map((x) => x.item.shopDomain),
    d.map((x) => x.item.webhookId ?? null),
    d.map((x) => x.reason),
    d.map((x) => JSON.stringify(x.item.headers)),
    d.map((x) => x.item.body),
    plan.unused,
    c.map((x) => x.key),
    c.map((x) => JSON.stringify(x.state)),
    c.map((x) => x.version),
    c.map((x) => x.updatedAt),
    c.map((x) => x.pendingSince),
    c.map((x) => x.last?.topic ?? null),
    c.map((x) => x.last?.webhookId ?? null),
    c.map((x) => (x.last === undefined ? null : JSON.stringify(x.last.headers))),
    c.map((x) => x.last?.body ?? null),
  ];
}

/** One entry per key, the highest version winning (the port's callers never repeat a key; be exact anyway). */
function newestPerKey<T extends { readonly key: string; readonly version: number }>(carts: readonly T[]): T[] {
  const byKey = new Map<string, T>();
  for (const c of carts) {
    const seen = byKey.get(c.key);
    if (seen === undefined || c.version > seen.version) byKey.set(c.key, c);
  }
  return [...byKey.values()];
}

function parseState(value: unknown): CartState | undefined {
  return typeof value === "string" && value !== "" ? (JSON.parse(value) as CartState) : undefined;
}

function toDeadLetter(row: Row): DeadLetter {
  return {
    id: Number(row["id"]),
    createdAtMs: Number(row["created_at"]),
    source: row["source"] === "hubspot" ? "hubspot" : "mapping",
    topic: String(row["topic"]),
    shopDomain: String(row["shop"]),
    webhookId: optionalString(row["webhook_id"]),
    cartKey: optionalString(row["cart_key"]),
    reason: String(row["reason"]),
    category: optionalString(row["category"]),
    headers: JSON.parse(String(row["headers"])) as Record<string, string>,
    body: Buffer.isBuffer(row["body"]) ? row["body"] : undefined,
  };
}

function optionalNumber(v: unknown): number | undefined {
  return v === null || v === undefined ? undefined : Number(v);
}

function optionalString(v: unknown): string | undefined {
  return v === null || v === undefined ? undefined : String(v);
}

/** Byte order, like the database's "C" collation would give; used only to make orders deterministic. */
function compareText(a: unknown, b: unknown): number {
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** Deadlock or serialization failure: the transaction was rolled back whole, so running it again is safe. */
function isRetriedInPlace(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | null)?.code;
  return code === "40P01" || code === "40001";
}

/**
 * Whether trying again later may work: lost or refused connections, timeouts, a server shutting down or
 * short of resources, lock conflicts. Not: SQL errors, constraint violations, a closed store.
 */
function isRetryable(cause: unknown): boolean {
  if (cause instanceof StoreError) return cause.retryable;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) {
    return ["08", "40", "53", "57", "58"].includes(code.slice(0, 2)) || code === "55P03";
  }
  if (typeof code === "string") return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND, …
  const message = asError(cause).message;
  return !/after calling end on the pool|Client was closed/i.test(message);
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
