import type { PostgresConnection } from "./postgres-connection.ts";
import type { SharedRateBudget } from "./store.ts";

/**
 * The send budget all replicas share (see SharedRateBudget in store.ts): one `rate_budgets` row holding the
 * send times of the current window, updated under its row lock by one statement.
 */
export function createPostgresRateBudget({ run, query }: PostgresConnection): Required<SharedRateBudget> {
  return {
    takeRateSlot(nowMs, maxPerWindow, windowMs) {
      return run("take rate slot", async () => {
        const { rows } = await query("cartbridge_take_rate_slot", TAKE_RATE_SLOT, [
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
  };
}

/** The window's send times, pruned and sorted, plus the new one when there is room; under the row's lock. */
const TAKE_RATE_SLOT = `
INSERT INTO rate_budgets AS b (name, sent_at, granted)
VALUES ($1::text, CASE WHEN $3::bigint > 0 THEN ARRAY[$2::bigint] ELSE '{}'::bigint[] END, $3::bigint > 0)
ON CONFLICT (name) DO UPDATE SET
  granted = (SELECT count(*) FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint) < $3::bigint,
  sent_at = CASE WHEN (SELECT count(*) FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint) < $3::bigint
    THEN array(SELECT t FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint ORDER BY t) || $2::bigint
    ELSE array(SELECT t FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint ORDER BY t) END
RETURNING granted, sent_at`;
