import { EMAIL_AFTER, EMAIL_BEFORE, PHONE_AFTER, PHONE_BEFORE } from "./subject-match.ts";

/**
 * The PostgreSQL store's statements, besides ingest (postgres-ingest.ts). Array parameters (`unnest`,
 * `= ANY`) make every call one statement, whatever the number of rows. Updates of several carts lock them
 * in key order first (LOCK_CARTS_BY_KEY or a sorted FOR UPDATE subquery), the order ingest uses, so they
 * cannot deadlock with it.
 */

/** Rows of the carts `$1` in key order. */
export const LOCK_CARTS_BY_KEY = "SELECT key FROM carts WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE";

const LOCKED_KEYS = "(SELECT key FROM carts WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE)";

/**
 * Leases are timed by the database's clock, never a replica's: `now()` in epoch ms (the transaction's start,
 * so every statement of one transaction sees the same instant). A write-back counts only while its claim
 * is held: same owner, lease not run out (HELD, with the owner in the parameter named).
 */
export const DB_NOW_MS = "(extract(epoch FROM now()) * 1000)::bigint";
export const held = (alias: string, owner: string): string =>
  `coalesce(${alias}.lease_owner = ${owner} AND ${alias}.lease_until >= ${DB_NOW_MS}, false)`;

/** The cart `c` has no buyer waiting to be sent (its kept delivery may still be needed for a dead letter). */
const NO_PENDING_LINK =
  "NOT EXISTS (SELECT 1 FROM contact_links AS p WHERE p.cart_key = c.key AND p.version > p.synced_version)";

/** $4: the lease in ms, from the database's clock. */
export const CLAIM = `
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
export const REPEND_UNHELD = `
UPDATE carts AS c SET version = c.version + 1, pending_since = coalesce(c.pending_since, ${DB_NOW_MS})
WHERE c.key = ANY($1::text[]) AND NOT ${held("c", "$2")}
RETURNING c.key`;

/** HubSpot has these versions: clear what is no longer pending, for the claims this owner still holds. */
export const MARK_SENT = `
UPDATE carts AS c SET
  synced_version = greatest(c.synced_version, u.version),
  pending_since = CASE WHEN c.version <= u.version THEN NULL ELSE c.pending_since END,
  last_headers = CASE WHEN c.version <= u.version AND ${NO_PENDING_LINK} THEN NULL ELSE c.last_headers END,
  last_body = CASE WHEN c.version <= u.version AND ${NO_PENDING_LINK} THEN NULL ELSE c.last_body END,
  attempts = 0, next_attempt_at = 0, last_error = NULL,
  hubspot_id = coalesce(u.hubspot_id, c.hubspot_id),
  last_sent_at = CASE WHEN $5::boolean THEN ${DB_NOW_MS} ELSE c.last_sent_at END,
  lease_owner = NULL, lease_until = NULL
FROM ${LOCKED_KEYS} AS l, unnest($1::text[], $2::bigint[], $3::text[]) AS u(key, version, hubspot_id)
WHERE c.key = l.key AND u.key = l.key AND ${held("c", "$4")}
RETURNING c.key, u.version, c.hubspot_id`;

export const MARK_FAILED = `
UPDATE carts AS c SET attempts = c.attempts + 1, next_attempt_at = $3, last_error = $4,
  lease_owner = NULL, lease_until = NULL
FROM ${LOCKED_KEYS} AS l
WHERE c.key = l.key AND ${held("c", "$2")}`;

export const RELEASE = `
UPDATE carts AS c SET lease_owner = NULL, lease_until = NULL
FROM ${LOCKED_KEYS} AS l
WHERE c.key = l.key AND ${held("c", "$2")}`;

/** $3: the lease in ms. Returns the keys whose claims this owner still held (and now holds for longer). */
export const RENEW = `
UPDATE carts AS c SET lease_until = ${DB_NOW_MS} + $3::bigint
FROM ${LOCKED_KEYS} AS l
WHERE c.key = l.key AND ${held("c", "$2")}
RETURNING c.key`;

/**
 * A HubSpot dead letter per rejected cart this owner ($5) still holds, with the cart's newest delivery
 * (none when the cart is unknown).
 */
export const DEAD_LETTER_REJECTED_CARTS = `
INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
SELECT $4::bigint, 'hubspot', coalesce(c.last_topic, 'unknown'), c.shop, c.last_webhook_id, r.key, r.reason,
  r.category, coalesce(c.last_headers, '{}'), c.last_body
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(key, reason, category, ord)
JOIN carts AS c ON c.key = r.key
WHERE ${held("c", "$5")}
ORDER BY r.ord`;

export const MARK_PENDING = `
UPDATE carts SET pending_since = coalesce(pending_since, $2), version = version + 1, attempts = 0,
  next_attempt_at = 0
WHERE key = $1`;

/**
 * Due carts counted up to $2 (the flusher only asks "a full batch yet?"), the oldest due change, and the
 * next retry; each walks an index a few rows deep instead of counting every pending cart.
 */
export const PENDING_SUMMARY = `
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM carts WHERE pending_since IS NOT NULL AND next_attempt_at <= $1
     AND (lease_until IS NULL OR lease_until < ${DB_NOW_MS}) ORDER BY pending_since LIMIT $2) AS d) AS due,
  (SELECT pending_since FROM carts WHERE pending_since IS NOT NULL AND next_attempt_at <= $1
     AND (lease_until IS NULL OR lease_until < ${DB_NOW_MS}) ORDER BY pending_since LIMIT 1) AS oldest,
  (SELECT min(next_attempt_at) FROM carts WHERE pending_since IS NOT NULL AND next_attempt_at > $1) AS retry`;

export const STATS = `
SELECT (SELECT count(*) FROM carts WHERE pending_since IS NOT NULL) AS pending,
  (SELECT min(pending_since) FROM carts WHERE pending_since IS NOT NULL) AS oldest,
  (SELECT count(*) FROM dead_letters) AS dead,
  (SELECT count(*) FROM carts) AS carts`;

/**
 * Everything personal or identifying older than $1: delivery ids, dead letters, buyer links (sent or not),
 * and kept bodies, pending carts' included (the merged state is what gets sent). A body is as old as the
 * delivery it came with: its id's receipt time (every CTE sees the rows as they were before the statement,
 * so `d` deleting the ids does not hide them from `b`), or the cart's last change when the id is unknown.
 * The carts are locked in key order, as everywhere else.
 */
export const PURGE = `
WITH b AS (
    UPDATE carts AS c SET last_body = NULL, last_headers = NULL
    FROM (SELECT key FROM carts AS e WHERE e.last_body IS NOT NULL AND coalesce(
        (SELECT received_at FROM deliveries AS w WHERE w.webhook_id = e.last_webhook_id), e.updated_at) < $1
      ORDER BY key FOR UPDATE) AS x
    WHERE c.key = x.key RETURNING 1),
  d AS (DELETE FROM deliveries WHERE received_at < $1 RETURNING 1),
  l AS (DELETE FROM dead_letters WHERE created_at < $1 RETURNING 1),
  c AS (DELETE FROM contact_links WHERE updated_at < $1 RETURNING 1)
SELECT (SELECT count(*) FROM b) + (SELECT count(*) FROM d) + (SELECT count(*) FROM l)
  + (SELECT count(*) FROM c) AS n`;

export const LIST_DEAD_LETTERS = "SELECT * FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2";
export const GET_DEAD_LETTERS = "SELECT * FROM dead_letters WHERE id = ANY($1::bigint[])";
export const DELETE_DEAD_LETTERS = "DELETE FROM dead_letters WHERE id = ANY($1::bigint[])";

// ---- Contact links (the buyer lane) ----

/** $4: the lease in ms, from the database's clock. */
export const CLAIM_CONTACTS = `
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
export const MARK_CONTACTS_SENT = `
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
export const MARK_CONTACTS_FAILED = `
UPDATE contact_links SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4,
  lease_owner = NULL, lease_until = NULL
WHERE cart_key = ANY($1::text[]) AND ${held("contact_links", "$2")}`;

/** After LOCK_CARTS_BY_KEY. */
export const RELEASE_CONTACTS = `
UPDATE contact_links SET lease_owner = NULL, lease_until = NULL
WHERE cart_key = ANY($1::text[]) AND ${held("contact_links", "$2")}`;

/** A HubSpot dead letter per rejected buyer whose claim this owner ($5) holds, with its cart's newest delivery. */
export const DEAD_LETTER_REJECTED_CONTACTS = `
INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
SELECT $4::bigint, 'hubspot', coalesce(c.last_topic, 'unknown'), coalesce(c.shop, split_part(r.key, ':', 1)),
  c.last_webhook_id, r.key, 'contact: ' || r.reason, r.category, coalesce(c.last_headers, '{}'), c.last_body
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(key, reason, category, ord)
LEFT JOIN carts AS c ON c.key = r.key
WHERE EXISTS (SELECT 1 FROM contact_links AS l WHERE l.cart_key = r.key AND ${held("l", "$5")})
ORDER BY r.ord`;

/** The buyers whose claims this owner ($2) holds. */
export const DELETE_CONTACTS = `DELETE FROM contact_links AS l WHERE l.cart_key = ANY($1::text[]) AND ${held("l", "$2")}`;

/** Forgets the kept delivery of carts `$1` once neither the cart nor its buyer waits to be sent. */
export const CLEAR_SENT_DELIVERIES = `
UPDATE carts AS c SET last_headers = NULL, last_body = NULL
WHERE c.key = ANY($1::text[]) AND c.version <= c.synced_version AND ${NO_PENDING_LINK}`;

// ---- Privacy requests: $1 shop, $2 lower-cased e-mail or NULL, $3 phone or NULL (both NULL: the whole shop) ----

const WHOLE_SHOP = "($2::text IS NULL AND $3::text IS NULL)";
const LINK_MATCH = `(${WHOLE_SHOP} OR lower(email) = $2::text OR phone = $3::text)`;

/**
 * Whether a kept body names the subject exactly, as subject-match.ts defines it (the same patterns): the
 * e-mail as a whole value, compared without case, or the phone as written. Bodies are bytes, so both
 * sides are compared in bytea's escape form, where ASCII stays as it is (a backslash doubles) and other
 * bytes become \ooo; every non-alphanumeric character of the value is escaped for the regular expression.
 */
function bodyMatch(column: string): string {
  const text = `encode(${column}, 'escape')`;
  const value = (param: string): string =>
    `regexp_replace(encode(convert_to(${param}, 'UTF8'), 'escape'), '([^a-zA-Z0-9])', '\\\\\\1', 'g')`;
  return `(${WHOLE_SHOP}
    OR ($2::text IS NOT NULL AND ${text} ~* ('${EMAIL_BEFORE}' || ${value("$2::text")} || '${EMAIL_AFTER}'))
    OR ($3::text IS NOT NULL AND ${text} ~ ('${PHONE_BEFORE}' || ${value("$3::text")} || '${PHONE_AFTER}')))`;
}

/** The carts whose buyer link or kept delivery names the subject, locked in key order. */
export const LOCK_SUBJECT_CARTS = `
SELECT key FROM carts
WHERE shop = $1 AND (${WHOLE_SHOP}
  OR key IN (SELECT cart_key FROM contact_links WHERE shop = $1 AND ${LINK_MATCH})
  OR (last_body IS NOT NULL AND ${bodyMatch("last_body")}))
ORDER BY key
FOR UPDATE`;

export const REDACT_CONTACTS = `DELETE FROM contact_links WHERE shop = $1 AND ${LINK_MATCH}`;
export const REDACT_DEAD_LETTERS = `DELETE FROM dead_letters WHERE shop = $1 AND ${bodyMatch("body")}`;
export const REDACT_DELIVERIES = `
UPDATE carts SET last_body = NULL, last_headers = NULL
WHERE shop = $1 AND last_body IS NOT NULL AND NOT ${WHOLE_SHOP} AND ${bodyMatch("last_body")}`;
export const REDACT_CARTS = `DELETE FROM carts WHERE shop = $1 AND ${WHOLE_SHOP}`;

export const DESCRIBE_SUBJECT = `
SELECT
  CASE WHEN ${WHOLE_SHOP} THEN (SELECT count(*) FROM carts WHERE shop = $1) ELSE 0 END AS carts,
  (SELECT count(*) FROM contact_links WHERE shop = $1 AND email IS NOT NULL AND ${LINK_MATCH}) AS contacts,
  (SELECT count(*) FROM dead_letters WHERE shop = $1 AND ${bodyMatch("body")}) AS dead_letters,
  (SELECT count(*) FROM carts WHERE shop = $1 AND last_body IS NOT NULL AND ${bodyMatch("last_body")}) AS deliveries`;

// ---- The shared rate budget ----

/** The window's send times, pruned and sorted, plus the new one when there is room; under the row's lock. */
export const TAKE_RATE_SLOT = `
INSERT INTO rate_budgets AS b (name, sent_at, granted)
VALUES ($1::text, CASE WHEN $3::bigint > 0 THEN ARRAY[$2::bigint] ELSE '{}'::bigint[] END, $3::bigint > 0)
ON CONFLICT (name) DO UPDATE SET
  granted = (SELECT count(*) FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint) < $3::bigint,
  sent_at = CASE WHEN (SELECT count(*) FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint) < $3::bigint
    THEN array(SELECT t FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint ORDER BY t) || $2::bigint
    ELSE array(SELECT t FROM unnest(b.sent_at) AS t WHERE t > $2::bigint - $4::bigint ORDER BY t) END
RETURNING granted, sent_at`;
