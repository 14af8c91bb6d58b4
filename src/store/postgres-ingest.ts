import type { BuyerContact } from "../sync/cart-event.ts";
import type { CartState } from "../sync/merge.ts";
import {
  planIngest,
  type IngestPlan,
  type LinkValue,
  type LinkWrite,
  type Locked,
  type LockedRows,
} from "./ingest-plan.ts";
import { recordActivity } from "./postgres-activity.ts";
import type { PostgresConnection, Row } from "./postgres-connection.ts";
import { ingestLineSetsStatement } from "./postgres-line-items.ts";
import { compareText, contactOf, stampOf } from "./rows.ts";
import type { IngestItem, IngestOutcome, Store } from "./store.ts";

/**
 * Ingest on PostgreSQL: one transaction per group, two round trips whatever the group's size.
 *
 * 1. BEGIN + LOCK_CARTS (pipelined): insert the group's delivery ids (the ones already there are
 *    redeliveries), then lock the rows of every cart the new deliveries touch — and of their contact
 *    links — with upserts in key order. A cart (or link) seen for the first time gets a placeholder row
 *    (version 0), so a cart two replicas see at once for the first time is merged under one lock too. The
 *    upsert's conflict branch returns the newest committed row even when it is newer than the statement's
 *    snapshot, which a plain SELECT … FOR UPDATE would miss for rows inserted meanwhile.
 * 2. `planIngest` (ingest-plan.ts, shared with sqlite-ingest.ts) replays the group in order against those
 *    rows (mergeEvent / mergeContact), then WRITE_CARTS + COMMIT (pipelined) write dead letters and every
 *    changed row back with multi-row statements, and drop placeholders nothing was written to.
 *
 * Rule that keeps this deadlock-free: cart rows are locked in key order, and a contact link only by a
 * transaction that already holds its cart's row (claims, which never wait, excepted).
 */

type PostgresIngest = Pick<Store, "ingestBatch">;

export function createPostgresIngest({ run, withClient }: PostgresConnection): PostgresIngest {
  function ingest(items: readonly IngestItem[]): Promise<IngestOutcome[]> {
    return withClient(async (client) => {
      const [, locked] = await Promise.all([
        client.query("BEGIN"),
        client.query<Row>({ name: "cartbridge_lock_carts", text: LOCK_CARTS, values: lockParams(items) }),
      ]);
      const plan = planIngest(items, readLocked(locked.rows), Date.now());
      const lineSets = ingestLineSetsStatement(items, plan.outcomes, Date.now());
      const activity = recordActivity(items, plan.outcomes);
      await Promise.all([
        client.query({ name: "cartbridge_write_carts", text: WRITE_CARTS, values: writeParams(plan) }),
        ...(lineSets === undefined ? [] : [client.query(lineSets)]),
        ...(activity === undefined ? [] : [client.query(activity)]),
        client.query("COMMIT"),
      ]);
      return plan.outcomes;
    }, true);
  }

  return {
    ingestBatch(items) {
      if (items.length === 0) return Promise.resolve([]);
      return run("ingest", () => ingest(items));
    },
  };
}

const LOCK_CARTS = `
WITH new_deliveries AS (
  INSERT INTO deliveries (webhook_id, received_at)
  SELECT * FROM unnest($1::text[], $2::bigint[])
  ON CONFLICT (webhook_id) DO NOTHING
  RETURNING webhook_id
), wanted AS (
  SELECT DISTINCT ON (w.key) w.key, w.shop, w.has_contact
  FROM unnest($3::text[], $4::text[], $5::text[], $6::boolean[]) AS w(key, shop, webhook_id, has_contact)
  WHERE w.webhook_id IS NULL OR w.webhook_id IN (SELECT webhook_id FROM new_deliveries)
  ORDER BY w.key, w.has_contact DESC
), locked AS (
  INSERT INTO carts AS c (key, shop, state, version, updated_at)
  SELECT key, shop, '', 0, 0 FROM wanted ORDER BY key
  ON CONFLICT (key) DO UPDATE SET version = c.version
  RETURNING c.key, c.state, c.version
), links AS (
  INSERT INTO contact_links AS l (cart_key, shop, stamp_time, stamp_rank, stamp_webhook, version, updated_at)
  SELECT key, shop, 0, 0, '', 0, 0 FROM wanted
  WHERE has_contact AND key IN (SELECT key FROM locked)
  ORDER BY key
  ON CONFLICT (cart_key) DO UPDATE SET version = l.version
  RETURNING l.cart_key, l.version, l.email, l.firstname, l.lastname, l.phone, l.stamp_time, l.stamp_rank,
    l.stamp_webhook
)
SELECT 'delivery' AS kind, webhook_id AS key, NULL AS state, NULL::bigint AS version, NULL AS email,
  NULL AS firstname, NULL AS lastname, NULL AS phone, NULL::bigint AS stamp_time, NULL::integer AS stamp_rank,
  NULL AS stamp_webhook
FROM new_deliveries
UNION ALL
SELECT 'cart', key, state, version, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM locked
UNION ALL
SELECT 'contact', cart_key, NULL, version, email, firstname, lastname, phone, stamp_time, stamp_rank, stamp_webhook
FROM links`;

const WRITE_CARTS = `
WITH dead AS (
  INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason, category, headers, body)
  SELECT d.created_at, 'mapping', d.topic, d.shop, d.webhook_id, NULL, d.reason, 'UNMAPPABLE', d.headers, d.body
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[])
    WITH ORDINALITY AS d(created_at, topic, shop, webhook_id, reason, headers, body, ord)
  ORDER BY d.ord
  RETURNING 1
), unused_carts AS (
  DELETE FROM carts WHERE key = ANY($8::text[]) AND version = 0
  RETURNING 1
), unused_links AS (
  DELETE FROM contact_links WHERE cart_key = ANY($9::text[]) AND version = 0
  RETURNING 1
), links AS (
  UPDATE contact_links AS l SET
    email = w.email, firstname = w.firstname, lastname = w.lastname, phone = w.phone,
    stamp_time = w.stamp_time, stamp_rank = w.stamp_rank, stamp_webhook = w.stamp_webhook,
    version = w.version, updated_at = w.updated_at
  FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::integer[],
      $17::text[], $18::bigint[], $19::bigint[])
    AS w(cart_key, email, firstname, lastname, phone, stamp_time, stamp_rank, stamp_webhook, version, updated_at)
  WHERE l.cart_key = w.cart_key
  RETURNING 1
)
UPDATE carts AS c SET
  state = u.state,
  version = u.version,
  updated_at = u.updated_at,
  pending_since = CASE WHEN u.version > c.version THEN coalesce(c.pending_since, u.pending_since) ELSE c.pending_since END,
  last_topic = CASE WHEN u.version > c.version THEN u.last_topic ELSE c.last_topic END,
  last_webhook_id = CASE WHEN u.version > c.version THEN u.last_webhook_id ELSE c.last_webhook_id END,
  last_headers = CASE WHEN u.version > c.version THEN u.last_headers ELSE c.last_headers END,
  last_body = CASE WHEN u.version > c.version THEN u.last_body ELSE c.last_body END
FROM unnest($20::text[], $21::text[], $22::bigint[], $23::bigint[], $24::bigint[], $25::text[], $26::text[],
    $27::text[], $28::bytea[])
  AS u(key, state, version, updated_at, pending_since, last_topic, last_webhook_id, last_headers, last_body)
WHERE c.key = u.key`;

/**
 * Parameters of LOCK_CARTS: the group's delivery ids (sorted, so concurrent groups insert them in one
 * order) and the cart keys its events touch, each with the delivery id that must be new for it to count.
 */
function lockParams(items: readonly IngestItem[]): unknown[] {
  const firstSeen = new Map<string, number>();
  const keys: string[] = [];
  const shops: string[] = [];
  const keyWebhookIds: (string | null)[] = [];
  const hasContact: boolean[] = [];
  for (const item of items) {
    const checked = item.webhookId !== undefined && item.replay !== true;
    if (checked && !firstSeen.has(item.webhookId)) firstSeen.set(item.webhookId, item.receivedAtMs);
    if (item.mapped.kind === "event") {
      keys.push(item.mapped.event.key);
      shops.push(item.mapped.event.shopDomain);
      // A replay or an id-less delivery is never a duplicate; the others count when their id is new.
      keyWebhookIds.push(checked ? (item.webhookId ?? null) : null);
      hasContact.push(item.mapped.event.contact !== undefined);
    }
  }
  const ids = [...firstSeen.keys()].sort(compareText);
  return [ids, ids.map((id) => firstSeen.get(id)), keys, shops, keyWebhookIds, hasContact];
}

function readLocked(rows: readonly Row[]): LockedRows {
  const newDeliveries = new Set<string>();
  const carts = new Map<string, Locked<CartState>>();
  const links = new Map<string, Locked<LinkValue>>();
  for (const row of rows) {
    const key = String(row["key"]);
    const version = Number(row["version"]);
    if (row["kind"] === "delivery") newDeliveries.add(key);
    else if (row["kind"] === "cart") {
      const state = row["state"];
      carts.set(key, {
        version,
        value: typeof state === "string" && state !== "" ? (JSON.parse(state) as CartState) : undefined,
      });
    } else {
      const value: LinkValue = { stamp: stampOf(row), value: contactOf(row) };
      links.set(key, { version, value: version === 0 ? undefined : value });
    }
  }
  return { newDeliveries, carts, links };
}

/** Parameters of WRITE_CARTS. */
function writeParams(plan: IngestPlan): unknown[] {
  const d = plan.deadLetters;
  const c = [...plan.carts];
  const l = [...plan.links].filter(([, link]) => link.written);
  const contact = (link: LinkWrite): BuyerContact | undefined => link.current?.value;
  return [
    d.map((x) => x.item.receivedAtMs),
    d.map((x) => x.item.topic),
    d.map((x) => x.item.shopDomain),
    d.map((x) => x.item.webhookId ?? null),
    d.map((x) => x.reason),
    d.map((x) => JSON.stringify(x.item.headers)),
    d.map((x) => x.item.body),
    plan.unusedCarts,
    plan.unusedLinks,
    l.map(([key]) => key),
    l.map(([, x]) => contact(x)?.email ?? null),
    l.map(([, x]) => contact(x)?.firstname ?? null),
    l.map(([, x]) => contact(x)?.lastname ?? null),
    l.map(([, x]) => contact(x)?.phone ?? null),
    l.map(([, x]) => x.current?.stamp.timeMs ?? 0),
    l.map(([, x]) => x.current?.stamp.topicRank ?? 0),
    l.map(([, x]) => x.current?.stamp.webhookId ?? ""),
    l.map(([, x]) => x.version),
    l.map(([, x]) => x.updatedAt),
    c.map(([key]) => key),
    c.map(([, x]) => JSON.stringify(x.state ?? null)),
    c.map(([, x]) => x.version),
    c.map(([, x]) => x.updatedAt),
    c.map(([, x]) => x.pendingSince),
    c.map(([, x]) => x.last?.topic ?? null),
    c.map(([, x]) => x.last?.webhookId ?? null),
    c.map(([, x]) => (x.last === undefined ? null : JSON.stringify(x.last.headers))),
    c.map(([, x]) => x.last?.body ?? null),
  ];
}
