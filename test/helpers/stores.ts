import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import pg from "pg";
import { openPostgresStore } from "../../src/store/postgres.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { Store } from "../../src/store/store.ts";

/**
 * Store factories for tests that must hold for every adapter (pg-boss style: one suite, several backends).
 *
 * - sqlite: a fresh database file in a fresh temp dir per `open()`.
 * - postgres: a fresh schema per `open()` in the server at TEST_DATABASE_URL (default
 *   postgres://postgres@127.0.0.1:5432/postgres, what `scripts/start-postgres.sh` starts). Stores reach it
 *   through `?options=-c search_path=<schema>`. When no server answers, postgres tests skip and say why;
 *   with REQUIRE_POSTGRES=1 they fail instead (CI).
 *
 * `cleanup()` removes what the factory made (temp dirs, schemas); call it after closing every store.
 */
export interface StoreFactory {
  readonly name: "sqlite" | "postgres";
  /** Why this backend cannot run here; undefined when it can. */
  readonly unavailable: string | undefined;
  /** A store on a fresh, empty database. */
  open(): Promise<Store>;
  /** DATABASE_URL of a fresh, empty database, for bridges run as child processes (`sqlite:…`, `postgres://…`). */
  freshUrl(): Promise<string>;
  /** `count` stores on one fresh database, each with its own connection(s) — like replicas sharing it. */
  openReplicas(count: number): Promise<Store[]>;
  /**
   * Makes the server drop every connection of the stores this factory opened (a failover, a restart);
   * undefined for backends without a server.
   */
  readonly dropConnections: (() => Promise<number>) | undefined;
  cleanup(): Promise<void>;
}

export const DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

export function testDatabaseUrl(): string {
  return process.env["TEST_DATABASE_URL"] || DEFAULT_TEST_DATABASE_URL;
}

export function postgresRequired(): boolean {
  return process.env["REQUIRE_POSTGRES"] === "1";
}

/** Every factory; probes PostgreSQL once (a short connect) to know whether it can run. */
export async function storeFactories(): Promise<StoreFactory[]> {
  return [createSqliteFactory(), await createPostgresFactory(testDatabaseUrl())];
}

/**
 * Skips the test when `factory` cannot run here, naming why — or fails it under REQUIRE_POSTGRES=1.
 * Returns true when the test should go on.
 */
export function usable(t: TestContext, factory: StoreFactory): boolean {
  if (factory.unavailable === undefined) return true;
  if (factory.name === "postgres" && postgresRequired()) {
    assert.fail(`REQUIRE_POSTGRES=1 but ${factory.unavailable}`);
  }
  t.skip(factory.unavailable);
  return false;
}

function createSqliteFactory(): StoreFactory {
  const dirs: string[] = [];
  const fresh = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-store-"));
    dirs.push(dir);
    return join(dir, "store.db");
  };
  return {
    name: "sqlite",
    unavailable: undefined,
    open: () => Promise.resolve(openSqliteStore(fresh())),
    freshUrl: () => Promise.resolve(`sqlite:${fresh()}`),
    openReplicas(count) {
      const path = fresh();
      return Promise.resolve(Array.from({ length: count }, () => openSqliteStore(path)));
    },
    dropConnections: undefined,
    cleanup() {
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

async function createPostgresFactory(baseUrl: string): Promise<StoreFactory> {
  const where = redact(baseUrl);
  const unavailable = await probe(baseUrl).then(
    () => undefined,
    (error: unknown) =>
      `PostgreSQL not reachable at ${where}: ${error instanceof Error ? error.message : String(error)} ` +
      "(start one with scripts/start-postgres.sh or set TEST_DATABASE_URL)",
  );
  const schemas: string[] = [];
  // Names this process's connections, so dropConnections() touches no one else's.
  const applicationName = `cartbridge_test_${process.pid}`;

  async function freshSchemaUrl(): Promise<string> {
    const schema = `${applicationName}_${randomBytes(4).toString("hex")}`;
    await withAdmin(baseUrl, (client) => client.query(`CREATE SCHEMA ${schema}`));
    schemas.push(schema);
    const url = new URL(baseUrl);
    url.searchParams.set("options", `-c search_path=${schema}`);
    url.searchParams.set("application_name", applicationName);
    return url.toString();
  }

  return {
    name: "postgres",
    unavailable,
    async open() {
      return openPostgresStore(await freshSchemaUrl(), { maxConnections: 4 });
    },
    freshUrl: freshSchemaUrl,
    async openReplicas(count) {
      const url = await freshSchemaUrl();
      // All at once, like replicas starting together: each migrates, the advisory lock serialises them.
      const opened = await Promise.allSettled(
        Array.from({ length: count }, () => openPostgresStore(url, { maxConnections: 4 })),
      );
      const stores = opened.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
      const failed = opened.find((o) => o.status === "rejected");
      if (failed !== undefined) {
        await Promise.all(stores.map((s) => s.close()));
        throw failed.reason;
      }
      return stores;
    },
    async dropConnections() {
      return withAdmin(baseUrl, async (client) => {
        const result = await client.query(
          "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1",
          [applicationName],
        );
        return result.rowCount ?? 0;
      });
    },
    async cleanup() {
      const dropping = schemas.splice(0);
      if (dropping.length === 0) return;
      await withAdmin(baseUrl, async (client) => {
        for (const schema of dropping) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      });
    },
  };
}

async function probe(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
