import type pg from "pg";
import type { PostgresConnection } from "./postgres-connection.ts";
import { DB_NOW_MS, NO_PENDING_LINK, held, lockCarts, newestPerKey } from "./postgres-sql.ts";
import { compareText, toClaimedContact } from "./rows.ts";
import type { Store } from "./store.ts";

/**
 * The contact lane on PostgreSQL: claims of buyer links (`contact_links`) due to be sent, and their
 * write-backs. Claims lease on the database's clock, as the cart ledger's do; every write-back locks the
 * links' carts in key order first (a link is touched only while its cart's row is held, so nothing deadlocks
 * with an ingest) and counts only for the claims this owner still holds.
 */
export type PostgresContacts = ContactClaims & ContactWriteBacks;

type ContactClaims = Pick<Store, "claimContactsDue" | "releaseContacts">;
type ContactWriteBacks = Pick<Store, "markContactsSent" | "markContactsFailed" | "markContactsRejected">;

export function createPostgresContacts(connection: PostgresConnection): PostgresContacts {
  return { ...contactClaims(connection), ...contactWriteBacks(connection) };
}

/** Leasing due buyers, and giving leases back unsent. */
function contactClaims({ run, query, transaction }: PostgresConnection): ContactClaims {
  return {
    claimContactsDue({ limit, nowMs, leaseMs, owner }) {
      if (limit <= 0) return Promise.resolve([]);
      return run("claim contacts", async () => {
        const { rows } = await query("cartbridge_claim_contacts", CLAIM_CONTACTS, [
          nowMs,
          limit,
          owner,
          leaseMs,
        ]);
        rows.sort(
          (a, b) =>
            Number(a["updated_at"]) - Number(b["updated_at"]) || compareText(a["cart_key"], b["cart_key"]),
        );
        return rows.map(toClaimedContact);
      });
    },

    async releaseContacts(keys, owner) {
      if (keys.length === 0) return;
      await run("release contacts", () =>
        transaction([
          lockCarts(keys),
          { name: "cartbridge_release_contacts", text: RELEASE_CONTACTS, values: [[...keys], owner] },
        ]),
      );
    },
  };
}

/** Write-backs of claimed buyers: sent, failed, rejected. */
function contactWriteBacks({ run, transaction }: PostgresConnection): ContactWriteBacks {
  return {
    async markContactsSent(contacts, owner) {
      if (contacts.length === 0) return;
      const sent = newestPerKey(contacts, (c) => c.cartKey);
      const keys = sent.map((c) => c.cartKey);
      await run("mark contacts sent", () =>
        transaction([
          lockCarts(keys),
          {
            name: "cartbridge_mark_contacts_sent",
            text: MARK_CONTACTS_SENT,
            values: [keys, sent.map((c) => c.version), owner],
          },
          clearSentDeliveries(keys),
        ]),
      );
    },

    async markContactsFailed(keys, owner, { nextAttemptAtMs, error }) {
      if (keys.length === 0) return;
      await run("mark contacts failed", () =>
        transaction([
          lockCarts(keys),
          {
            name: "cartbridge_mark_contacts_failed",
            text: MARK_CONTACTS_FAILED,
            values: [[...keys], owner, nextAttemptAtMs, error],
          },
        ]),
      );
    },

    async markContactsRejected(contacts, owner, nowMs) {
      if (contacts.length === 0) return;
      const keys = contacts.map((c) => c.cartKey);
      await run("mark contacts rejected", () =>
        transaction([
          lockCarts(keys),
          {
            name: "cartbridge_dead_letter_rejected_contacts",
            text: DEAD_LETTER_REJECTED_CONTACTS,
            values: [
              keys,
              contacts.map((c) => c.reason),
              contacts.map((c) => c.category ?? null),
              nowMs,
              owner,
            ],
          },
          // Forget the buyer entirely, so a replay of the dead letter links it again.
          { name: "cartbridge_delete_contacts", text: DELETE_CONTACTS, values: [keys, owner] },
          clearSentDeliveries(keys),
        ]),
      );
    },
  };
}

/** Forgets the kept delivery of `keys` once neither the cart nor its buyer waits to be sent. */
function clearSentDeliveries(keys: readonly string[]): pg.QueryConfig {
  return { name: "cartbridge_clear_sent_deliveries", text: CLEAR_SENT_DELIVERIES, values: [[...keys]] };
}

/** $4: the lease in ms, from the database's clock. */
const CLAIM_CONTACTS = `
UPDATE contact_links AS l SET lease_owner = $3, lease_until = ${DB_NOW_MS} + $4::bigint
FROM (
  SELECT d.cart_key, c.hubspot_id FROM contact_links AS d JOIN carts AS c ON c.key = d.cart_key
  WHERE d.version > d.synced_version AND d.email IS NOT NULL AND c.hubspot_id IS NOT NULL
    AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until < ${DB_NOW_MS})
  ORDER BY d.updated_at, d.cart_key
  LIMIT $2
  FOR UPDATE OF d SKIP LOCKED
) AS due
WHERE l.cart_key = due.cart_key
RETURNING l.cart_key, due.hubspot_id, l.version, l.attempts, l.email, l.firstname, l.lastname, l.phone,
  l.updated_at`;

/** After LOCK_CARTS_BY_KEY: HubSpot has these buyers; erase what is no longer pending (claims held only). */
const MARK_CONTACTS_SENT = `
UPDATE contact_links AS l SET
  synced_version = greatest(l.synced_version, u.version),
  email = CASE WHEN l.version <= u.version THEN NULL ELSE l.email END,
  firstname = CASE WHEN l.version <= u.version THEN NULL ELSE l.firstname END,
  lastname = CASE WHEN l.version <= u.version THEN NULL ELSE l.lastname END,
  phone = CASE WHEN l.version <= u.version THEN NULL ELSE l.phone END,
  attempts = 0, next_attempt_at = 0, last_error = NULL,
  lease_owner = NULL, lease_until = NULL
FROM unnest($1::text[], $2::bigint[]) AS u(cart_key, version)
WHERE l.cart_key = u.cart_key AND ${held("l", "$3")}`;

/** After LOCK_CARTS_BY_KEY. */
const MARK_CONTACTS_FAILED = `
UPDATE contact_links SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4,
  lease_owner = NULL, lease_until = NULL
WHERE cart_key = ANY($1::text[]) AND ${held("contact_links", "$2")}`;

/** After LOCK_CARTS_BY_KEY. */
const RELEASE_CONTACTS = `
UPDATE contact_links SET lease_owner = NULL, lease_until = NULL
WHERE cart_key = ANY($1::text[]) AND ${held("contact_links", "$2")}`;

/** A HubSpot dead letter per rejected buyer whose claim this owner ($5) holds, with its cart's newest delivery. */
const DEAD_LETTER_REJECTED_CONTACTS = `
INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
SELECT $4::bigint, 'hubspot', coalesce(c.last_topic, 'unknown'), coalesce(c.shop, split_part(r.key, ':', 1)),
  c.last_webhook_id, r.key, 'contact: ' || r.reason, r.category, coalesce(c.last_headers, '{}'), c.last_body
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(key, reason, category, ord)
LEFT JOIN carts AS c ON c.key = r.key
WHERE EXISTS (SELECT 1 FROM contact_links AS l WHERE l.cart_key = r.key AND ${held("l", "$5")})
ORDER BY r.ord`;

/** The buyers whose claims this owner ($2) holds. */
const DELETE_CONTACTS = `DELETE FROM contact_links AS l WHERE l.cart_key = ANY($1::text[]) AND ${held("l", "$2")}`;

/** Forgets the kept delivery of carts `$1` once neither the cart nor its buyer waits to be sent. */
const CLEAR_SENT_DELIVERIES = `
UPDATE carts AS c SET last_headers = NULL, last_body = NULL
WHERE c.key = ANY($1::text[]) AND c.version <= c.synced_version AND ${NO_PENDING_LINK}`;
