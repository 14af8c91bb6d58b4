/**
 * SQLite result codes (the primary code, the low byte of an extended one) that say the database as a whole
 * cannot do the work now and may later: busy or locked by another connection, out of memory, read-only,
 * I/O errors, disk full, cannot open the file. Any other error (a constraint, SQL, or a bug in the work
 * itself) belongs to what was being written, and retrying it unchanged would fail the same way.
 */
const UNAVAILABLE_CODES = new Set([5, 6, 7, 8, 10, 13, 14, 15]);

/** Whether a node:sqlite error says the store is unavailable (retryable) rather than the input is at fault. */
export function isSqliteUnavailable(cause: unknown): boolean {
  const errcode = (cause as { errcode?: unknown } | null)?.errcode;
  return typeof errcode === "number" && UNAVAILABLE_CODES.has(errcode & 0xff);
}
