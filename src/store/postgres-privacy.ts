import type { PostgresConnection } from "./postgres-connection.ts";
import { purgeActivity } from "./postgres-activity.ts";
import { REDACT_LINE_SETS } from "./postgres-line-items.ts";
import type { DataSubject, Store, SubjectRecords } from "./store.ts";
import { EMAIL_AFTER, EMAIL_BEFORE, PHONE_AFTER, PHONE_BEFORE } from "./subject-match.ts";

/**
 * Privacy requests and retention on PostgreSQL: `redact` erases what names a data subject (or a whole shop)
 * in one transaction that locks the affected carts in key order first; `describeSubject` counts the same
 * rows without touching them; `purgeExpired` drops everything personal or identifying older than the
 * retention horizon.
 */
export type PostgresPrivacy = Pick<Store, "redact" | "describeSubject" | "purgeExpired">;

export function createPostgresPrivacy({ run, query, transaction }: PostgresConnection): PostgresPrivacy {
  return {
    redact(subject): Promise<SubjectRecords> {
      const p = subjectParams(subject);
      return run("redact", async () => {
        const [, contacts, deadLetters, deliveries, carts] = await transaction([
          { name: "cartbridge_lock_subject_carts", text: LOCK_SUBJECT_CARTS, values: p },
          { name: "cartbridge_redact_contacts", text: REDACT_CONTACTS, values: p },
          { name: "cartbridge_redact_dead_letters", text: REDACT_DEAD_LETTERS, values: p },
          { name: "cartbridge_redact_deliveries", text: REDACT_DELIVERIES, values: p },
          { name: "cartbridge_redact_carts", text: REDACT_CARTS, values: p },
          { name: "cartbridge_redact_line_sets", text: REDACT_LINE_SETS, values: p },
          { name: "cartbridge_redact_shop_traces", text: REDACT_SHOP_TRACES, values: p },
        ]);
        return {
          carts: carts?.rowCount ?? 0,
          contacts: contacts?.rowCount ?? 0,
          deadLetters: deadLetters?.rowCount ?? 0,
          pendingDeliveries: deliveries?.rowCount ?? 0,
        };
      });
    },

    describeSubject(subject): Promise<SubjectRecords> {
      return run("describe subject", async () => {
        const row =
          (await query("cartbridge_describe_subject", DESCRIBE_SUBJECT, subjectParams(subject))).rows[0] ??
          {};
        return {
          carts: Number(row["carts"] ?? 0),
          contacts: Number(row["contacts"] ?? 0),
          deadLetters: Number(row["dead_letters"] ?? 0),
          pendingDeliveries: Number(row["deliveries"] ?? 0),
        };
      });
    },

    purgeExpired(beforeMs) {
      return run(
        "purge",
        async () =>
          Number((await query("cartbridge_purge", PURGE, [beforeMs])).rows[0]?.["n"] ?? 0) +
          (await purgeActivity(query, beforeMs)),
      );
    },
  };
}

/** The privacy statements' parameters: the shop, the lower-cased e-mail or NULL, the phone or NULL. */
function subjectParams(subject: DataSubject): unknown[] {
  return [subject.shopDomain, subject.email?.toLowerCase() ?? null, subject.phone ?? null];
}

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
const LOCK_SUBJECT_CARTS = `
SELECT key FROM carts
WHERE shop = $1 AND (${WHOLE_SHOP}
  OR key IN (SELECT cart_key FROM contact_links WHERE shop = $1 AND ${LINK_MATCH})
  OR (last_body IS NOT NULL AND ${bodyMatch("last_body")}))
ORDER BY key
FOR UPDATE`;

const REDACT_CONTACTS = `DELETE FROM contact_links WHERE shop = $1 AND ${LINK_MATCH}`;
const REDACT_DEAD_LETTERS = `DELETE FROM dead_letters WHERE shop = $1 AND ${bodyMatch("body")}`;
const REDACT_DELIVERIES = `
UPDATE carts SET last_body = NULL, last_headers = NULL
WHERE shop = $1 AND last_body IS NOT NULL AND NOT ${WHOLE_SHOP} AND ${bodyMatch("last_body")}`;
const REDACT_CARTS = `DELETE FROM carts WHERE shop = $1 AND ${WHOLE_SHOP}`;
/**
 * On shop/redact, what the shop's buyers did (checkout tokens, delivery counts, the last missed cart).
 * Reconciliation's watermarks stay, so a shop still configured is not read back in from its beginning.
 */
const REDACT_SHOP_TRACES = `
WITH links AS (DELETE FROM checkout_links WHERE shop = $1 AND ${WHOLE_SHOP} RETURNING 1),
  buckets AS (DELETE FROM shop_activity WHERE shop = $1 AND ${WHOLE_SHOP} RETURNING 1),
  topics AS (DELETE FROM shop_topics WHERE shop = $1 AND ${WHOLE_SHOP} RETURNING 1),
  missed AS (DELETE FROM reconcile_missed WHERE shop = $1 AND ${WHOLE_SHOP} RETURNING 1)
SELECT (SELECT count(*) FROM links) + (SELECT count(*) FROM buckets) + (SELECT count(*) FROM topics)
  + (SELECT count(*) FROM missed) AS n`;

const DESCRIBE_SUBJECT = `
SELECT
  CASE WHEN ${WHOLE_SHOP} THEN (SELECT count(*) FROM carts WHERE shop = $1) ELSE 0 END AS carts,
  (SELECT count(*) FROM contact_links WHERE shop = $1 AND email IS NOT NULL AND ${LINK_MATCH}) AS contacts,
  (SELECT count(*) FROM dead_letters WHERE shop = $1 AND ${bodyMatch("body")}) AS dead_letters,
  (SELECT count(*) FROM carts WHERE shop = $1 AND last_body IS NOT NULL AND ${bodyMatch("last_body")}) AS deliveries`;

// ---- Retention ----

/**
 * Everything personal or identifying older than $1: delivery ids, dead letters, buyer links (sent or not),
 * and kept bodies, pending carts' included (the merged state is what gets sent). A body is as old as the
 * delivery it came with: its id's receipt time (every CTE sees the rows as they were before the statement,
 * so `d` deleting the ids does not hide them from `b`), or the cart's last change when the id is unknown.
 * The carts are locked in key order, as everywhere else.
 */
const PURGE = `
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
