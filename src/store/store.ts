import { maskEmails } from "../redact-text.ts";
import type { InboxPosition } from "./inbox-file.ts";
import type { MapResult } from "../sync/cart-event.ts";
import type { ActivityQueries } from "./activity.ts";
import type { BuyerContact } from "../sync/cart-event.ts";
import type { CartState } from "../sync/merge.ts";
import type { ReconcileStore } from "./reconcile-store.ts";
import type { LineItemStore } from "./line-items.ts";

/**
 * The store port: everything cartbridge keeps, behind one interface that SQLite and PostgreSQL implement.
 *
 * Glossary
 * - delivery: one verified POST from Shopify, identified by its X-Shopify-Webhook-Id. Its id is kept for
 *   DELIVERY_RETENTION_DAYS so a redelivery is recognised and acknowledged without effect.
 * - cart: the merged state of one HubSpot cart (see sync/merge.ts), keyed "<shop>:<token>".
 * - version: a cart's change counter; bumped whenever a delivery changes what HubSpot would see.
 * - pending: a cart whose version is newer than the version last written to HubSpot (synced_version).
 * - flush: sending a batch of pending carts in one upsert.
 * - claim: a lease on a pending cart taken by one sender for one flush, so no cart is in two in-flight
 *   batches (even across replicas); it expires by itself if its holder dies. Every write-back of a flush
 *   (sent, failed, rejected, released, renewed) is fenced: it counts only while its owner holds the claim.
 *   On PostgreSQL leases run on the database's clock, so replicas' clocks do not matter.
 * - attempt: one try at writing a cart; failures count attempts and set next_attempt_at (backoff in rows,
 *   not timers, so it survives restarts and is shared by replicas).
 * - dead letter: a delivery kept with the reason it could not be mapped or HubSpot rejected its cart;
 *   it can be listed and replayed.
 * - contact link: the buyer a checkout or order named for a cart (e-mail, names, phone): personal data,
 *   kept only until HubSpot has the contact and its association with the cart, then erased (its stamp
 *   stays, so an older delivery cannot bring an older buyer back), and never past the retention.
 * - retention: DELIVERY_RETENTION_DAYS. Nothing personal (buyer links, kept bodies, dead letters) and no
 *   delivery id outlives it, whatever HubSpot answers (purgeExpired).
 */

/** A delivery whose HMAC checked out, as received: what the inbox keeps and what ingest starts from. */
export interface VerifiedDelivery {
  readonly webhookId: string | undefined;
  readonly topic: string;
  readonly shopDomain: string;
  readonly receivedAtMs: number;
  /** Request headers worth keeping (never the HMAC). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** One verified delivery, already mapped (mapping is pure and runs before the commit). */
export interface IngestItem extends VerifiedDelivery {
  readonly mapped: MapResult;
  /** Replays skip the redelivery check (they reuse the original webhook id). */
  readonly replay?: boolean;
  /** Read from the Admin API by reconciliation, not delivered by Shopify: not a delivery in the console. */
  readonly reconciled?: boolean;
}

export type IngestOutcome =
  | "applied" // changed a cart; it is pending
  | "unchanged" // a cart event that changed nothing (older or equal information)
  | "duplicate" // this webhook id was already committed
  | "dead_lettered" // genuine but unmappable: kept as a dead letter
  | "unkeyed" // a mapped topic without a usable cart token
  | "ignored"; // a topic the bridge does not handle

export interface ClaimedCart {
  readonly key: string;
  readonly version: number;
  readonly attempts: number;
  readonly state: CartState;
  readonly hubspotId: string | undefined;
}

export interface PendingSummary {
  /** Pending carts that may be sent now (not backing off, not claimed), at most the cap asked for. */
  readonly dueCount: number;
  /** When the oldest due change arrived (epoch ms), or undefined. */
  readonly oldestDueSinceMs: number | undefined;
  /** The earliest next_attempt_at among backing-off carts, or undefined. */
  readonly nextRetryAtMs: number | undefined;
}

export interface StoreStats {
  readonly pendingCarts: number;
  readonly oldestPendingSinceMs: number | undefined;
  readonly deadLetters: number;
  readonly carts: number;
}

export interface SentCart {
  readonly key: string;
  readonly version: number;
  readonly hubspotId: string | undefined;
}

export interface RejectedCart {
  readonly key: string;
  readonly version: number;
  readonly reason: string;
  readonly category: string | undefined;
}

/**
 * A rejected cart's last error: settled (no longer pending, its delivery a dead letter) but not written, so
 * the cart lookup says why until a later version is sent.
 */
export function rejectionNote(reason: string): string {
  return `rejected by HubSpot: ${reason}`;
}

export interface DeadLetter {
  readonly id: number;
  readonly createdAtMs: number;
  /** "mapping": the delivery could not be mapped; "hubspot": HubSpot rejected the cart it produced. */
  readonly source: "mapping" | "hubspot";
  readonly topic: string;
  readonly shopDomain: string;
  readonly webhookId: string | undefined;
  readonly cartKey: string | undefined;
  readonly reason: string;
  readonly category: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | undefined;
}

export interface ClaimedContact {
  readonly cartKey: string;
  /** HubSpot's id of the cart (contacts are linked only after the cart exists there). */
  readonly cartId: string;
  readonly version: number;
  readonly attempts: number;
  readonly contact: BuyerContact;
}

export interface SentContact {
  readonly cartKey: string;
  readonly version: number;
}

export interface RejectedContact {
  readonly cartKey: string;
  readonly version: number;
  readonly reason: string;
  readonly category: string | undefined;
}

/** Who a privacy request is about: a shop, and optionally one of its customers. */
export interface DataSubject {
  readonly shopDomain: string;
  readonly email?: string | undefined;
  readonly phone?: string | undefined;
}

/** How many records held data for a subject (counted or erased). */
export interface SubjectRecords {
  readonly carts: number;
  readonly contacts: number;
  readonly deadLetters: number;
  readonly pendingDeliveries: number;
}

/**
 * A capability of stores that several replicas share (PostgreSQL): one send budget for all of them.
 * SQLite serves one process, so it has none and the process keeps its budget in memory.
 */
export interface SharedRateBudget {
  /**
   * Takes a slot from the send budget every replica shares: at most `maxPerWindow` slots in any `windowMs`
   * (rolling). Returns 0 when the slot was taken, else how many ms to wait before asking again.
   */
  takeRateSlot?(nowMs: number, maxPerWindow: number, windowMs: number): Promise<number>;
}

/**
 * The embedded store's inbox of raw deliveries (SQLite files only; store/inbox-file.ts): a 200 waits for the
 * raw delivery's fsync there, and deliveries are applied to the store behind it, recording how far.
 */
export interface InboxLedger {
  /** The directory of the inbox's segments (beside the database file). */
  readonly dir: string;
  /** False once the store is closed: nothing more can be applied, so nothing more is acknowledged. */
  isOpen(): boolean;
  /** How far the inbox is applied (undefined: never applied). */
  appliedPosition(): Promise<InboxPosition | undefined>;
  /**
   * Like ingestBatch, and records `applied` in the same transaction, committed without a full fsync: the
   * inbox holds the durable copy, and a commit a power loss undoes takes its position back with it.
   */
  ingestFromInbox(items: readonly IngestItem[], applied: InboxPosition): Promise<IngestOutcome[]>;
  /**
   * Makes every commit so far durable (the position they recorded included), off the event loop: an fsync
   * of the database's files through the thread pool. The inbox's segments behind that position may go then.
   */
  syncCommitted(): Promise<void>;
}

export interface Store extends LineItemStore, SharedRateBudget {
  /** Reconciliation's watermarks, checkout links and leases (SPEC §9). */
  readonly reconcile: ReconcileStore;
  /** The raw-delivery inbox, when this store acknowledges through one (a SQLite file opened to serve). */
  readonly inbox?: InboxLedger;
  /** What the operator console reads (store/activity.ts). */
  readonly activity?: ActivityQueries;
  /** Commits a batch of deliveries in one transaction; outcomes are in input order. Throws StoreError. */
  ingestBatch(items: readonly IngestItem[]): Promise<IngestOutcome[]>;

  /** What the flusher needs to decide; `dueCount` is counted up to `cap` only (the batch size). */
  pendingSummary(nowMs: number, cap: number): Promise<PendingSummary>;
  /**
   * Leases up to `limit` due carts (no backoff pending at `nowMs`), oldest change first, for `leaseMs`
   * (PostgreSQL times the lease by the database's clock; SQLite, one process, by `nowMs`).
   */
  claimDue(opts: { limit: number; nowMs: number; leaseMs: number; owner: string }): Promise<ClaimedCart[]>;
  /**
   * HubSpot has the given versions: clear what is no longer pending, release the claims. Fenced: only carts
   * whose claim this owner still holds are marked (returned); any other is made pending again under a new
   * version (its lease ran out, so a newer version may have been sent meanwhile and this write may have
   * overtaken it in HubSpot): the current state is sent again.
   */
  markSent(carts: readonly SentCart[], owner: string): Promise<SentCart[]>;
  /**
   * The flush failed for a reason that may pass: count an attempt and set the next attempt time. Fenced
   * like markSent (a lost claim's cart is made pending again: the failed write may still have landed).
   */
  markFailed(
    keys: readonly string[],
    owner: string,
    opts: { nextAttemptAtMs: number; error: string },
  ): Promise<void>;
  /**
   * Extends this owner's claims by `leaseMs` while their batch is still being sent; returns the keys it
   * still held. A key missing from the answer was lost (lease ran out): its batch must not be marked sent.
   */
  renewClaims(
    keys: readonly string[],
    owner: string,
    opts: { nowMs: number; leaseMs: number },
  ): Promise<string[]>;
  /** Give claims back without counting an attempt (rate-limit pause, shutdown). */
  release(keys: readonly string[], owner: string): Promise<void>;
  /**
   * HubSpot rejected these carts: keep each as a dead letter with its newest delivery; stop retrying them.
   * Fenced like markSent, but a cart whose claim was lost is left as it is (HubSpot wrote nothing).
   */
  markRejected(carts: readonly RejectedCart[], owner: string, nowMs: number): Promise<void>;

  listDeadLetters(opts: { limit: number; afterId?: number }): Promise<DeadLetter[]>;
  getDeadLetters(ids: readonly number[]): Promise<DeadLetter[]>;
  deleteDeadLetters(ids: readonly number[]): Promise<void>;
  /** Marks a cart pending again (a replayed HubSpot dead letter whose state did not change). */
  markPending(key: string, nowMs: number): Promise<void>;

  /** Leases up to `limit` contact links whose cart is in HubSpot and whose buyer is not sent yet. */
  claimContactsDue(opts: {
    limit: number;
    nowMs: number;
    leaseMs: number;
    owner: string;
  }): Promise<ClaimedContact[]>;
  /** HubSpot has the contacts and associations: erase the personal data that is no longer pending. */
  markContactsSent(contacts: readonly SentContact[], owner: string): Promise<void>;
  markContactsFailed(
    keys: readonly string[],
    owner: string,
    opts: { nextAttemptAtMs: number; error: string },
  ): Promise<void>;
  releaseContacts(keys: readonly string[], owner: string): Promise<void>;
  /** HubSpot rejected these buyers: dead letters with the cart's newest delivery; erase and stop retrying. */
  markContactsRejected(contacts: readonly RejectedContact[], owner: string, nowMs: number): Promise<void>;

  /** customers/redact (with email/phone) or shop/redact (shop only): erase what the store holds. */
  redact(subject: DataSubject): Promise<SubjectRecords>;
  /** customers/data_request: count what the store holds, without reading it out. */
  describeSubject(subject: DataSubject): Promise<SubjectRecords>;

  /**
   * Retention (DELIVERY_RETENTION_DAYS, whatever HubSpot answers): deletes delivery ids, dead letters,
   * contact links (sent or not) and kept delivery bodies (pending carts' included) older than the cut-off;
   * returns the rows removed or cleared.
   */
  purgeExpired(beforeMs: number): Promise<number>;
  stats(nowMs: number): Promise<StoreStats>;
  /** Cheap round trip for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A dead letter as operators see it (CLI and /admin): everything but the raw body. */
export function describeDeadLetter(l: DeadLetter): Record<string, string | number | null> {
  return {
    id: l.id,
    createdAt: new Date(l.createdAtMs).toISOString(),
    source: l.source,
    topic: l.topic,
    shopDomain: l.shopDomain,
    webhookId: l.webhookId ?? null,
    cartKey: l.cartKey ?? null,
    category: l.category ?? null,
    reason: maskEmails(l.reason),
    bodyBytes: l.body?.length ?? 0,
  };
}
