/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import type { DatabaseSync } from "node:sqlite";
import type { CartEvent } from "../sync/cart-event.ts";
import type { CartState } from "../sync/merge.ts";
import {
  planIngest,
  type CartWrite,
  type IngestPlan,
  type LinkValue,
  type LinkWrite,
  type Locked,
} from "./ingest-plan.ts";
import { contactOf, stampOf } from "./rows.ts";
import type { SqliteActivity } from "./sqlite-activity.ts";
import type { SqliteDeadLetters } from "./sqlite-dead-letters.ts";
import type { SqliteLineItems } from "./sqlite-line-items.ts";
import type { SqliteTransaction } from "./sqlite-transaction.ts";
import type { IngestItem, IngestOutcome, Store } from "./store.ts";

/**
 * Ingest on SQLite: one durable IMMEDIATE transaction per group (the group commit's batch), three steps.
 *
 * 1. Load: insert each delivery id (`INSERT OR IGNORE`: an id stored before, or earlier in the group, is not
 *    inserted — that decides duplicates), then read the cart row and the contact link of every new event's
 *    cart, once per cart. The IMMEDIATE transaction holds the only write lock on the file, so the rows stay
 *    as read; a cart or link not found is simply absent (version 0, no value), there are no placeholders.
 * 2. `planIngest` (ingest-plan.ts, the same plan PostgreSQL uses) replays the group in order.
 * 3. Save: dead letters, each cart's final row and its newest delivery (`cart_deliveries`), each contact
 *    link moved, then each event's line set in delivery order (their order matters within a cart), and the
 *    console's activity counters.
 */
export function createSqliteIngest(
  db: DatabaseSync,
  transaction: SqliteTransaction,
  parts: {
    readonly deadLetters: SqliteDeadLetters;
    readonly lineItems: SqliteLineItems;
    readonly activity: SqliteActivity;
  },
): SqliteIngest {
  const load = createLoad(db);
  const save = createSave(db, parts);
  const ingest = (items: readonly IngestItem[]): IngestOutcome[] => {
    const rows = load(items);
    // Links are stamped by the wall clock (carts by their delivery's receipt time): one reading per group,
    // where the item-by-item ingest read it per event — the same moment to within the transaction.
    const plan = planIngest(items, rows, Date.now());
    save(items, rows, plan);
    parts.activity.record(items, plan.outcomes);
    return plan.outcomes;
  };
  return {
    ingestInTransaction: ingest,
    async ingestBatch(items) {
      return transaction("ingest", () => ingest(items));
    },
  };
}

export interface SqliteIngest extends Pick<Store, "ingestBatch"> {
  /** The same ingest inside a transaction the caller runs (the inbox's, which records its position too). */
  ingestInTransaction(items: readonly IngestItem[]): IngestOutcome[];
}

/** A loaded row; `shop` is the shop of the event that asked for it (written when the row is new). */
interface LoadedRow<T> extends Locked<T> {
  readonly shop: string;
}

interface LoadedRows {
  readonly newDeliveries: ReadonlySet<string>;
  readonly carts: ReadonlyMap<string, LoadedRow<CartState>>;
  readonly links: ReadonlyMap<string, LoadedRow<LinkValue>>;
}

type Row = Record<string, unknown>;

/** Step 1: the group's new delivery ids (inserted here) and the rows its new events touch. */
function createLoad(db: DatabaseSync): (items: readonly IngestItem[]) => LoadedRows {
  const q = {
    insertDelivery: db.prepare("INSERT OR IGNORE INTO deliveries (webhook_id, received_at) VALUES (?, ?)"),
    getCart: db.prepare("SELECT state, version FROM carts WHERE key = ?"),
    getContact: db.prepare(`SELECT email, firstname, lastname, phone, stamp_time, stamp_rank, stamp_webhook,
        version FROM contact_links WHERE cart_key = ?`),
  };
  const cartOf = (event: CartEvent): LoadedRow<CartState> => {
    const row = q.getCart.get(event.key) as Row | undefined;
    return row === undefined
      ? { version: 0, value: undefined, shop: event.shopDomain }
      : {
          version: Number(row["version"]),
          value: JSON.parse(row["state"] as string) as CartState,
          shop: event.shopDomain,
        };
  };
  const linkOf = (event: CartEvent): LoadedRow<LinkValue> => {
    const row = q.getContact.get(event.key) as Row | undefined;
    return row === undefined
      ? { version: 0, value: undefined, shop: event.shopDomain }
      : {
          version: Number(row["version"]),
          value: { stamp: stampOf(row), value: contactOf(row) },
          shop: event.shopDomain,
        };
  };

  return (items) => {
    const newDeliveries = new Set<string>();
    const carts = new Map<string, LoadedRow<CartState>>();
    const links = new Map<string, LoadedRow<LinkValue>>();
    for (const item of items) {
      if (item.webhookId !== undefined && item.replay !== true) {
        if (q.insertDelivery.run(item.webhookId, item.receivedAtMs).changes === 0) continue; // a duplicate
        newDeliveries.add(item.webhookId);
      }
      if (item.mapped.kind !== "event") continue;
      const event = item.mapped.event;
      if (!carts.has(event.key)) carts.set(event.key, cartOf(event));
      if (event.contact !== undefined && !links.has(event.key)) links.set(event.key, linkOf(event));
    }
    return { newDeliveries, carts, links };
  };
}

/** Step 3: writes what the plan decided (see createSqliteIngest). */
function createSave(
  db: DatabaseSync,
  parts: { readonly deadLetters: SqliteDeadLetters; readonly lineItems: SqliteLineItems },
): (items: readonly IngestItem[], rows: LoadedRows, plan: IngestPlan) => void {
  const sql = (text: string) => db.prepare(text);
  const q = {
    insertCart: sql(`INSERT INTO carts (key, shop, state, version, pending_since, updated_at)
        VALUES (?, ?, ?, ?, ?, ?)`),
    updateCartChanged: sql(`UPDATE carts SET state = ?, version = ?,
        pending_since = coalesce(pending_since, ?), updated_at = ? WHERE key = ?`),
    // Newer stamps with equal values still move forward, so later comparisons stay exact.
    updateCartState: sql("UPDATE carts SET state = ?, updated_at = ? WHERE key = ?"),
    keepDelivery: sql(`INSERT INTO cart_deliveries (cart_key, shop, topic, webhook_id, headers, body)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (cart_key) DO UPDATE SET topic = ?3, webhook_id = ?4,
        headers = ?5, body = ?6`),
    upsertContact:
      sql(`INSERT INTO contact_links (cart_key, shop, email, firstname, lastname, phone, stamp_time,
        stamp_rank, stamp_webhook, version, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
        ON CONFLICT (cart_key) DO UPDATE SET email = ?3, firstname = ?4, lastname = ?5, phone = ?6,
          stamp_time = ?7, stamp_rank = ?8, stamp_webhook = ?9, version = ?10, updated_at = ?11`),
  };

  /** A cart's final row; a changed cart keeps its newest delivery (for a dead letter) until it is sent. */
  function saveCart(key: string, cart: CartWrite, loaded: LoadedRow<CartState>): void {
    const state = JSON.stringify(cart.state);
    if (loaded.value === undefined) {
      q.insertCart.run(key, loaded.shop, state, cart.version, cart.pendingSince, cart.updatedAt);
    } else if (cart.last !== undefined) {
      q.updateCartChanged.run(state, cart.version, cart.pendingSince, cart.updatedAt, key);
    } else {
      q.updateCartState.run(state, cart.updatedAt, key);
    }
    const last = cart.last;
    if (last !== undefined) {
      q.keepDelivery.run(
        key,
        loaded.shop,
        last.topic,
        last.webhookId ?? null,
        JSON.stringify(last.headers),
        last.body,
      );
    }
  }

  /** A contact link the group moved (a written link always holds the merged buyer and its stamp). */
  function saveLink(key: string, link: LinkWrite, loaded: LoadedRow<LinkValue>): void {
    const contact = link.current?.value;
    const stamp = link.current?.stamp;
    q.upsertContact.run(
      key,
      loaded.shop,
      contact?.email ?? null,
      contact?.firstname ?? null,
      contact?.lastname ?? null,
      contact?.phone ?? null,
      stamp?.timeMs ?? 0,
      stamp?.topicRank ?? 0,
      stamp?.webhookId ?? "",
      link.version,
      link.updatedAt,
    );
  }

  return (items, rows, plan) => {
    for (const { item, reason } of plan.deadLetters) parts.deadLetters.insertUnmappable(item, reason);
    for (const [key, link] of plan.links) if (link.written) saveLink(key, link, loadedRow(rows.links, key));
    for (const [key, cart] of plan.carts) saveCart(key, cart, loadedRow(rows.carts, key));
    let i = 0;
    for (const item of items) {
      const outcome = plan.outcomes[i++];
      // A new event (applied or unchanged) offers its line set; duplicates and the rest have none.
      if (item.mapped.kind === "event" && (outcome === "applied" || outcome === "unchanged")) {
        parts.lineItems.ingestLineSet(item.mapped.event, item.receivedAtMs);
      }
    }
  };
}

/** The loaded row the plan wrote to (planIngest only writes rows it was given). */
function loadedRow<T>(rows: ReadonlyMap<string, LoadedRow<T>>, key: string): LoadedRow<T> {
  const row = rows.get(key);
  if (row === undefined) throw new Error(`ingest planned a write to ${key}, which was not loaded`);
  return row;
}
