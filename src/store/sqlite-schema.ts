import type { DatabaseSync } from "node:sqlite";
import { StoreSchemaError } from "../errors.ts";
import { reconcileMissedSchema, reconcileSchema } from "./reconcile-store.ts";
import { SQLITE_LINE_ITEMS_MIGRATION } from "./sqlite-line-items.ts";
import { SQLITE_ACTIVITY_MIGRATION } from "./sqlite-activity.ts";

/**
 * The SQLite schema and its migrations: the same versioned, recorded steps as PostgreSQL's
 * (`postgres-schema.ts`), kept in `schema_migrations` inside the file.
 *
 * A file written before migrations were recorded (v0.1.0) holds exactly the tables of version 1, made with
 * `IF NOT EXISTS`: migrating it records version 1 without touching its rows, then applies the rest. A file
 * recording a version this code does not know was written by a newer cartbridge: opening it stops with
 * StoreSchemaError (exit 78) rather than misreading it. The migration runs in one IMMEDIATE transaction, so
 * a crash half-way leaves the file as it was.
 *
 * Add a migration: append `{ version: n + 1, name, sql }` — never edit one that was released — and add the
 * same change to PostgreSQL's list.
 */
export interface SqliteMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: "initial schema (v0.1.0)",
    sql: `
CREATE TABLE IF NOT EXISTS deliveries (
  webhook_id  TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_received_at ON deliveries (received_at);

CREATE TABLE IF NOT EXISTS carts (
  key             TEXT PRIMARY KEY,
  shop            TEXT NOT NULL,
  state           TEXT NOT NULL,
  version         INTEGER NOT NULL,
  synced_version  INTEGER NOT NULL DEFAULT 0,
  pending_since   INTEGER,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT,
  hubspot_id      TEXT,
  updated_at      INTEGER NOT NULL
);

-- A cart's newest delivery, kept until the cart and its buyer are in HubSpot (for a dead letter). Its own
-- table keeps the carts rows small: sent marks and retries rewrite a cart row, never a 5 kB body.
CREATE TABLE IF NOT EXISTS cart_deliveries (
  cart_key   TEXT PRIMARY KEY,
  shop       TEXT NOT NULL,
  topic      TEXT NOT NULL,
  webhook_id TEXT,
  headers    TEXT NOT NULL,
  body       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS cart_deliveries_shop ON cart_deliveries (shop);
CREATE INDEX IF NOT EXISTS carts_pending ON carts (pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS carts_retry ON carts (next_attempt_at) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS carts_shop ON carts (shop);

CREATE TABLE IF NOT EXISTS dead_letters (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at  INTEGER NOT NULL,
  source      TEXT NOT NULL,
  topic       TEXT NOT NULL,
  shop        TEXT NOT NULL,
  webhook_id  TEXT,
  cart_key    TEXT,
  reason      TEXT NOT NULL,
  category    TEXT,
  headers     TEXT NOT NULL,
  body        BLOB
);
CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);
CREATE INDEX IF NOT EXISTS dead_letters_shop ON dead_letters (shop);

CREATE TABLE IF NOT EXISTS contact_links (
  cart_key        TEXT PRIMARY KEY,
  shop            TEXT NOT NULL,
  email           TEXT,
  firstname       TEXT,
  lastname        TEXT,
  phone           TEXT,
  stamp_time      INTEGER NOT NULL,
  stamp_rank      INTEGER NOT NULL,
  stamp_webhook   TEXT NOT NULL,
  version         INTEGER NOT NULL,
  synced_version  INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  lease_owner     TEXT,
  lease_until     INTEGER,
  last_error      TEXT,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_links_pending ON contact_links (updated_at) WHERE version > synced_version;
CREATE INDEX IF NOT EXISTS contact_links_shop ON contact_links (shop);
`,
  },
  { version: 2, name: "line sets and known line items (SPEC §10)", sql: SQLITE_LINE_ITEMS_MIGRATION },
  SQLITE_ACTIVITY_MIGRATION,
  { version: 4, name: "reconciliation", sql: reconcileSchema("INTEGER") },
  {
    version: 5,
    name: "when each cart was last sent (console cart lookup)",
    sql: "ALTER TABLE carts ADD COLUMN last_sent_at INTEGER;",
  },
  {
    version: 6,
    name: "how far the inbox of raw deliveries is applied (SQLite only)",
    sql: `CREATE TABLE inbox_applied (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  segment   INTEGER NOT NULL,
  position  INTEGER NOT NULL
);`,
  },
  {
    version: 7,
    // The sender's summary and claims walk the pending carts oldest first, passing over the claimed ones
    // (their claims live in memory): from the index alone, not one table row per cart passed over.
    name: "the pending carts' index covers what is due and its key (SQLite only)",
    sql: `DROP INDEX carts_pending;
CREATE INDEX carts_pending ON carts (pending_since, next_attempt_at, key) WHERE pending_since IS NOT NULL;`,
  },
  { version: 8, name: "last missed change per shop (reconciliation)", sql: reconcileMissedSchema("INTEGER") },
];

/** The newest schema version this code knows. */
export const SQLITE_SCHEMA_VERSION = Math.max(...SQLITE_MIGRATIONS.map((m) => m.version));

/** Applies the migrations the file lacks, in one transaction; throws StoreSchemaError for a newer file. */
export function migrateSqlite(db: DatabaseSync): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    )`);
    const rows = db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[];
    const done = new Set(rows.map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    if (newest > SQLITE_SCHEMA_VERSION) {
      throw new StoreSchemaError(newest, SQLITE_SCHEMA_VERSION);
    }
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const m of SQLITE_MIGRATIONS) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
    }
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}
