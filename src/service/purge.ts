import type { Logger } from "pino";
import type { Store } from "../store/store.ts";

const PURGE_EVERY_MS = 60 * 60_000;

/**
 * Removes deliveries and dead letters older than the retention now and then every hour. Returns the
 * function that stops it.
 */
export function startPurging(store: Store, retentionDays: number, log: Logger): () => void {
  const purge = async (): Promise<void> => {
    try {
      const removed = await store.purgeExpired(Date.now() - retentionDays * 86_400_000);
      if (removed > 0) log.info({ removed }, "expired deliveries and dead letters purged");
    } catch (error) {
      log.warn({ err: error }, "purge failed");
    }
  };
  void purge();
  const purgeTimer = setInterval(() => void purge(), PURGE_EVERY_MS);
  purgeTimer.unref();
  return () => clearInterval(purgeTimer);
}
