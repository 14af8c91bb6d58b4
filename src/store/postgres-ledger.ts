import type pg from "pg";
import type { CartState } from "../sync/merge.ts";
import type { PostgresConnection } from "./postgres-connection.ts";
import { MARK_LINE_SET_PENDING } from "./postgres-line-items.ts";
import { DB_NOW_MS, LOCKED_KEYS, NO_PENDING_LINK, held, lockCarts, newestPerKey } from "./postgres-sql.ts";
import { compareText, optionalNumber, optionalString } from "./rows.ts";
import {
  rejectionNote,
  type ClaimedCart,
  type PendingSummary,
  type RejectedCart,
  type SentCart,
  type Store,
} from "./store.ts";

/**
 * The cart send ledger on PostgreSQL: which carts are due, who holds them, and what HubSpot has.
 *
 * - A claim takes `FOR UPDATE SKIP LOCKED` over the due rows and stamps a lease (owner, until) on the
 *   database's clock: a claimed cart is neither due for anyone else nor waited on; when its holder dies the
 *   lease runs out and another replica's claim takes it over.
 * - Every write-back is fenced: it counts only while its claim is held (same owner, lease not run out;
 *   `held` in postgres-sql.ts). The ones that update several carts lock them in key order first, as ingest
 *   does, so they cannot deadlock with it.
 * - A sent or failed write whose claim was lost (it may have reached HubSpot after a newer one) makes the
 *   cart pending again under a new version (REPEND_UNHELD), so the current state is sent last; a lost
 *   claim's rejection is dropped (HubSpot wrote nothing; the new owner sends the cart).
 */
export type PostgresLedger = LedgerClaims & LedgerWriteBacks;

type LedgerClaims = Pick<Store, "pendingSummary" | "claimDue" | "renewClaims" | "release">;
type LedgerWriteBacks = Pick<Store, "markSent" | "markFailed" | "markRejected" | "markPending">;

export function createPostgresLedger(connection: PostgresConnection): PostgresLedger {
  return { ...ledgerClaims(connection), ...ledgerWriteBacks(connection) };
}

/** Reading and leasing due carts. */
function ledgerClaims({ run, query }: PostgresConnection): LedgerClaims {
  return {
    pendingSummary(nowMs, cap): Promise<PendingSummary> {
      return run("pending summary", async () => {
        const row = (await query("cartbridge_pending_summary", PENDING_SUMMARY, [nowMs, cap])).rows[0] ?? {};
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
        const { rows } = await query("cartbridge_claim", CLAIM, [nowMs, limit, owner, leaseMs]);
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

    async renewClaims(keys, owner, { leaseMs }) {
      if (keys.length === 0) return [];
      const { rows } = await run("renew claims", () =>
        query("cartbridge_renew", RENEW, [[...keys], owner, leaseMs]),
      );
      return rows.map((row) => String(row["key"]));
    },

    async release(keys, owner) {
      if (keys.length === 0) return;
      await run("release", () => query("cartbridge_release", RELEASE, [[...keys], owner]));
    },
  };
}

/** Settling claims: sent, failed, rejected; and making a cart pending again (a dead letter's replay). */
function ledgerWriteBacks({ run, transaction }: PostgresConnection): LedgerWriteBacks {
  return {
    async markSent(carts: readonly SentCart[], owner) {
      if (carts.length === 0) return [];
      const sent = newestPerKey(carts, (c) => c.key);
      const keys = sent.map((c) => c.key);
      const [, , marked] = await run("mark sent", () =>
        transaction([
          lockCarts(keys),
          { name: "cartbridge_repend_unheld", text: REPEND_UNHELD, values: [keys, owner] },
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
          { name: "cartbridge_repend_unheld", text: REPEND_UNHELD, values: [[...keys], owner] },
          {
            name: "cartbridge_mark_failed",
            text: MARK_FAILED,
            values: [[...keys], owner, nextAttemptAtMs, error],
          },
        ]),
      );
    },

    async markRejected(carts: readonly RejectedCart[], owner, nowMs) {
      if (carts.length === 0) return;
      const newest = newestPerKey(carts, (c) => c.key);
      await run("mark rejected", () =>
        transaction([
          lockCarts(carts.map((c) => c.key)),
          {
            name: "cartbridge_dead_letter_rejected_carts",
            text: DEAD_LETTER_REJECTED_CARTS,
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
            newest.map((c) => rejectionNote(c.reason)),
          ),
        ]),
      );
    },

    async markPending(key, nowMs) {
      await run("mark pending", () =>
        transaction([
          { name: "cartbridge_mark_pending", text: MARK_PENDING, values: [key, nowMs] },
          { name: "cartbridge_mark_line_set_pending", text: MARK_LINE_SET_PENDING, values: [key, nowMs] },
        ]),
      );
    },
  };
}

/**
 * HubSpot has the carts (their last-sent time moves), or, given `rejections` (one per cart), it refused
 * them: settled all the same, each with its rejection as the cart's last error.
 */
function markSentStatement(
  sent: readonly SentCart[],
  owner: string,
  rejections?: readonly string[],
): pg.QueryConfig {
  return {
    name: "cartbridge_mark_sent",
    text: MARK_SENT,
    values: [
      sent.map((c) => c.key),
      sent.map((c) => c.version),
      sent.map((c) => c.hubspotId ?? null),
      owner,
      rejections === undefined,
      rejections ?? sent.map(() => null),
    ],
  };
}

/** $4: the lease in ms, from the database's clock. */
const CLAIM = `
UPDATE carts AS c SET lease_owner = $3, lease_until = ${DB_NOW_MS} + $4::bigint
FROM (
  SELECT key FROM carts
  WHERE pending_since IS NOT NULL AND next_attempt_at <= $1
    AND (lease_until IS NULL OR lease_until < ${DB_NOW_MS})
  ORDER BY pending_since, key
  LIMIT $2
  FOR UPDATE SKIP LOCKED
) AS due
WHERE c.key = due.key
RETURNING c.key, c.version, c.attempts, c.state, c.hubspot_id, c.pending_since`;

/**
 * After LOCK_CARTS_BY_KEY, before MARK_SENT, in one transaction: a cart whose claim this owner no longer
 * holds (its lease ran out; another replica may have sent a newer version meanwhile, which this write may
 * have overtaken in HubSpot) is made pending again under a new version, so the current state is sent last.
 */
const REPEND_UNHELD = `
UPDATE carts AS c SET version = c.version + 1, pending_since = coalesce(c.pending_since, ${DB_NOW_MS})
WHERE c.key = ANY($1::text[]) AND NOT ${held("c", "$2")}
RETURNING c.key`;

/** HubSpot has these versions: clear what is no longer pending, for the claims this owner still holds. */
const MARK_SENT = `
UPDATE carts AS c SET
  synced_version = greatest(c.synced_version, u.version),
  pending_since = CASE WHEN c.version <= u.version THEN NULL ELSE c.pending_since END,
  last_headers = CASE WHEN c.version <= u.version AND ${NO_PENDING_LINK} THEN NULL ELSE c.last_headers END,
  last_body = CASE WHEN c.version <= u.version AND ${NO_PENDING_LINK} THEN NULL ELSE c.last_body END,
  attempts = 0, next_attempt_at = 0, last_error = u.error,
  hubspot_id = coalesce(u.hubspot_id, c.hubspot_id),
  last_sent_at = CASE WHEN $5::boolean THEN ${DB_NOW_MS} ELSE c.last_sent_at END,
  lease_owner = NULL, lease_until = NULL
FROM ${LOCKED_KEYS} AS l,
  unnest($1::text[], $2::bigint[], $3::text[], $6::text[]) AS u(key, version, hubspot_id, error)
WHERE c.key = l.key AND u.key = l.key AND ${held("c", "$4")}
RETURNING c.key, u.version, c.hubspot_id`;

const MARK_FAILED = `
UPDATE carts AS c SET attempts = c.attempts + 1, next_attempt_at = $3, last_error = $4,
  lease_owner = NULL, lease_until = NULL
FROM ${LOCKED_KEYS} AS l
WHERE c.key = l.key AND ${held("c", "$2")}`;

const RELEASE = `
UPDATE carts AS c SET lease_owner = NULL, lease_until = NULL
FROM ${LOCKED_KEYS} AS l
WHERE c.key = l.key AND ${held("c", "$2")}`;

/** $3: the lease in ms. Returns the keys whose claims this owner still held (and now holds for longer). */
const RENEW = `
UPDATE carts AS c SET lease_until = ${DB_NOW_MS} + $3::bigint
FROM ${LOCKED_KEYS} AS l
WHERE c.key = l.key AND ${held("c", "$2")}
RETURNING c.key`;

/**
 * A HubSpot dead letter per rejected cart this owner ($5) still holds, with the cart's newest delivery
 * (none when the cart is unknown).
 */
const DEAD_LETTER_REJECTED_CARTS = `
INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
SELECT $4::bigint, 'hubspot', coalesce(c.last_topic, 'unknown'), c.shop, c.last_webhook_id, r.key, r.reason,
  r.category, coalesce(c.last_headers, '{}'), c.last_body
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(key, reason, category, ord)
JOIN carts AS c ON c.key = r.key
WHERE ${held("c", "$5")}
ORDER BY r.ord`;

const MARK_PENDING = `
UPDATE carts SET pending_since = coalesce(pending_since, $2), version = version + 1, attempts = 0,
  next_attempt_at = 0
WHERE key = $1`;

/**
 * Due carts counted up to $2 (the flusher only asks "a full batch yet?"), the oldest due change, and the
 * next retry; each walks an index a few rows deep instead of counting every pending cart.
 */
const PENDING_SUMMARY = `
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM carts WHERE pending_since IS NOT NULL AND next_attempt_at <= $1
     AND (lease_until IS NULL OR lease_until < ${DB_NOW_MS}) ORDER BY pending_since LIMIT $2) AS d) AS due,
  (SELECT pending_since FROM carts WHERE pending_since IS NOT NULL AND next_attempt_at <= $1
     AND (lease_until IS NULL OR lease_until < ${DB_NOW_MS}) ORDER BY pending_since LIMIT 1) AS oldest,
  (SELECT min(next_attempt_at) FROM carts WHERE pending_since IS NOT NULL AND next_attempt_at > $1) AS retry`;
