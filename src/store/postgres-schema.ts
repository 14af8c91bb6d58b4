import { POSTGRES_LINE_ITEMS_MIGRATION } from "./postgres-line-items.ts";
import type pg from "pg";
import { StoreError, StoreSchemaError } from "../errors.ts";
import { reconcileMissedSchema, reconcileSchema } from "./reconcile-store.ts";
import { ACTIVITY_MIGRATION } from "./postgres-activity.ts";

/**
 * The PostgreSQL schema and its migrations.
 *
 * Several replicas may start at once against one database, so `migrate` takes a transaction-scoped
 * advisory lock before it looks at anything: the first replica creates or upgrades the schema while the
 * others wait, then find every migration applied and do nothing. DDL is transactional in PostgreSQL, so a
 * replica that dies half-way leaves no half-made schema. A database recording a version newer than this code
 * knows was migrated by a newer release: starting on it throws StoreSchemaError (exit 78) instead of misreading
 * it (replicas already running during a rolling deploy are not affected; they checked when they started).
 *
 * Tables live in the connection's current schema (`search_path`), so one database can hold several
 * independent bridges: `postgres://…/db?options=-c%20search_path%3Dcartbridge` (the schema must exist).
 *
 * Times are epoch milliseconds in BIGINT columns (node-postgres returns BIGINT as a string; the adapter
 * converts), state and headers are JSON text, bodies BYTEA.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    sql: `
CREATE TABLE IF NOT EXISTS deliveries (
  webhook_id  TEXT PRIMARY KEY,
  received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_received_at ON deliveries (received_at);

-- Every ingest updates its carts' rows (twice: lock, then write), so leave room for HOT updates.
CREATE TABLE IF NOT EXISTS carts (
  key             TEXT PRIMARY KEY,
  shop            TEXT NOT NULL,
  state           TEXT NOT NULL,
  version         BIGINT NOT NULL,
  synced_version  BIGINT NOT NULL DEFAULT 0,
  pending_since   BIGINT,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  lease_owner     TEXT,
  lease_until     BIGINT,
  last_error      TEXT,
  hubspot_id      TEXT,
  last_topic      TEXT,
  last_webhook_id TEXT,
  last_headers    TEXT,
  last_body       BYTEA,
  updated_at      BIGINT NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS carts_pending ON carts (pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS carts_shop ON carts (shop);

CREATE TABLE IF NOT EXISTS dead_letters (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at  BIGINT NOT NULL,
  source      TEXT NOT NULL,
  topic       TEXT NOT NULL,
  shop        TEXT NOT NULL,
  webhook_id  TEXT,
  cart_key    TEXT,
  reason      TEXT NOT NULL,
  category    TEXT,
  headers     TEXT NOT NULL,
  body        BYTEA
);
CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);
CREATE INDEX IF NOT EXISTS dead_letters_shop ON dead_letters (shop);

-- One row per shared request budget: the send times (epoch ms) inside its rolling window, oldest first,
-- and whether the last request for a slot got one. Updated by one statement under the row's lock.
CREATE TABLE IF NOT EXISTS rate_budgets (
  name    TEXT PRIMARY KEY,
  sent_at BIGINT[] NOT NULL,
  granted BOOLEAN NOT NULL
);
`,
  },
  {
    version: 2,
    name: "contact links",
    sql: `
-- The buyer a cart is linked to (personal data: erased once sent; the stamp stays).
CREATE TABLE IF NOT EXISTS contact_links (
  cart_key        TEXT PRIMARY KEY,
  shop            TEXT NOT NULL,
  email           TEXT,
  firstname       TEXT,
  lastname        TEXT,
  phone           TEXT,
  stamp_time      BIGINT NOT NULL,
  stamp_rank      INTEGER NOT NULL,
  stamp_webhook   TEXT NOT NULL,
  version         BIGINT NOT NULL,
  synced_version  BIGINT NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  lease_owner     TEXT,
  lease_until     BIGINT,
  last_error      TEXT,
  updated_at      BIGINT NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS contact_links_pending ON contact_links (updated_at) WHERE version > synced_version;
CREATE INDEX IF NOT EXISTS contact_links_shop ON contact_links (shop);
`,
  },
  {
    version: 3,
    name: "retry index",
    sql: `
-- The earliest retry among backing-off carts, without scanning every pending cart.
CREATE INDEX IF NOT EXISTS carts_retry ON carts (next_attempt_at) WHERE pending_since IS NOT NULL;
`,
  },
  { version: 4, name: "line sets and known line items (SPEC §10)", sql: POSTGRES_LINE_ITEMS_MIGRATION },
  ACTIVITY_MIGRATION,
  { version: 6, name: "reconciliation", sql: reconcileSchema("BIGINT") },
  {
    version: 7,
    name: "when each cart was last sent (console cart lookup)",
    sql: "ALTER TABLE carts ADD COLUMN IF NOT EXISTS last_sent_at BIGINT;",
  },
  { version: 8, name: "last missed change per shop (reconciliation)", sql: reconcileMissedSchema("BIGINT") },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));

/** Applies the migrations this database lacks; safe to run from several processes at once. */
export async function migrate(client: pg.ClientBase): Promise<void> {
  await client.query("BEGIN");
  try {
    const schema = await client.query<{ name: string | null }>("SELECT current_schema() AS name");
    const name = schema.rows[0]?.name ?? null;
    if (name === null) {
      throw new StoreError("no schema to create tables in: the search_path names none that exists", {
        retryable: false,
      });
    }
    // Keyed by schema, so bridges in different schemas of one database do not wait for each other.
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('cartbridge.migrate:' || $1, 0))", [
      name,
    ]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
    const applied = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
    const done = new Set(applied.rows.map((r) => r.version));
    const newest = Math.max(0, ...done);
    if (newest > SCHEMA_VERSION) throw new StoreSchemaError(newest, SCHEMA_VERSION);
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        m.version,
        m.name,
      ]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
