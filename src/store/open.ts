import { StoreError, StoreSchemaError } from "../errors.ts";
import { openSqliteStore } from "./sqlite.ts";
import type { Store } from "./store.ts";

/**
 * Opens the store DATABASE_URL names: `sqlite:<path>` or `postgres://…`. `server` is the bridge itself
 * (as opposed to a CLI command run beside it).
 */
export async function openStore(databaseUrl: string, opts: { server?: boolean } = {}): Promise<Store> {
  if (databaseUrl.startsWith("sqlite:")) {
    try {
      return openSqliteStore(databaseUrl.slice("sqlite:".length), opts);
    } catch (cause) {
      if (cause instanceof StoreSchemaError) throw cause;
      if (cause instanceof StoreError) throw cause; // already names the file (e.g. held by another process)
      throw new StoreError(
        `could not open ${databaseUrl}: ${cause instanceof Error ? cause.message : String(cause)}`,
        {
          retryable: false,
          cause,
        },
      );
    }
  }
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    const { openPostgresStore } = await import("./postgres.ts");
    return openPostgresStore(databaseUrl);
  }
  throw new StoreError("DATABASE_URL must be sqlite:<path> or postgres://…", { retryable: false });
}
