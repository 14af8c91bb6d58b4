import type { InboxRecord } from "../store/inbox-file.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { IngestItem, IngestOutcome } from "../store/store.ts";
import { headerValue, SHOPIFY_HEADERS } from "../shopify/headers.ts";
import type { CartEvent, MapResult } from "./cart-event.ts";
import { mapVerifiedDelivery } from "./delivery-mapping.ts";
import { createMappingWarningReporter, type WarningLog } from "./mapping-warnings.ts";

/**
 * Intake: what happens to a verified delivery (not a compliance topic) between its HMAC check and its
 * answer. Two ways, one contract — 200 only once the delivery is durable:
 * - the group commit (PostgreSQL, and SQLite opened without an inbox): map, commit with the group, answer
 *   the ingest outcome;
 * - the inbox (a SQLite file; sync/inbox-intake.ts): append the raw delivery, answer `accepted` once it is
 *   fsynced, map and apply it behind the answer in batches.
 */
export interface Intake {
  /** Resolves with the delivery's outcome (`accepted`: durable, applied behind the answer); StoreError → 503. */
  accept(delivery: InboxRecord): Promise<DeliveryOutcome>;
  /**
   * Resolves once every delivery accepted so far is in the store (compliance topics, admin reads, shutdown);
   * a StoreError when that takes longer than `withinMs` (default 4 s: the store is down).
   */
  settle(withinMs?: number): Promise<void>;
  /**
   * Deletes the raw deliveries the intake keeps once they are applied (an erasure: `customers/redact`,
   * `shop/redact`); a StoreError when that cannot be done now.
   */
  purge(): Promise<void>;
  /** Stops taking deliveries: settles, then closes what the intake holds open. */
  close(): Promise<void>;
  /**
   * Deliveries answered (or being answered) and not yet in the store: the inbox's backlog. Always 0 for the
   * group commit, whose answer waits for the delivery's own commit.
   */
  unapplied(): number;
}

export type DeliveryOutcome = IngestOutcome | "accepted";

/** What every delivery's outcome is told to (metrics, the flusher, the debug log). */
export type OutcomeSink = (delivery: InboxRecord, outcome: IngestOutcome) => void;

export interface MapperOptions {
  readonly syncContacts: boolean;
  readonly syncLineItems: boolean;
  readonly log: WarningLog;
  /** A checkout delivery that names both a cart and a checkout token (reconciliation's links). */
  readonly onCheckoutEvent?: ((event: CartEvent) => void) | undefined;
}

/** Maps a verified delivery (pure) and tells who listens: mapping warnings, checkout links. */
export function createDeliveryMapper(opts: MapperOptions): (delivery: InboxRecord) => MapResult {
  const reportMappingWarnings = createMappingWarningReporter(opts.log);
  return (delivery) => {
    const mapped = mapVerifiedDelivery({
      topic: delivery.topic,
      shopDomain: delivery.shopDomain,
      body: delivery.body,
      webhookId: delivery.webhookId,
      triggeredAt: headerValue(delivery.headers, SHOPIFY_HEADERS.triggeredAt),
      receivedAtMs: delivery.receivedAtMs,
      syncContacts: opts.syncContacts,
      syncLineItems: opts.syncLineItems,
    });
    if (mapped.kind === "event") {
      reportMappingWarnings(delivery.topic, mapped.warnings);
      if (mapped.event.checkoutToken !== undefined) opts.onCheckoutEvent?.(mapped.event);
    }
    return mapped;
  };
}

/**
 * The delivery as the store ingests it. Unkeyed and unhandled ones go to the store too: no cart changes,
 * but their webhook id is remembered and the console counts them (a subscription that works shows).
 */
export function toIngestItem(delivery: InboxRecord, mapped: MapResult): IngestItem {
  return { ...delivery, mapped };
}

/** The group commit's intake: the answer waits for the delivery's own commit and tells its outcome. */
export function createGroupIntake(
  committer: GroupCommitter,
  map: (delivery: InboxRecord) => MapResult,
  onOutcome: OutcomeSink,
): Intake {
  return {
    async accept(delivery) {
      const outcome = await committer.submit(toIngestItem(delivery, map(delivery)));
      onOutcome(delivery, outcome);
      return outcome;
    },
    settle: () => committer.drain(),
    purge: async () => {}, // the group commit keeps no raw delivery beside the store
    close: () => committer.drain(),
    unapplied: () => 0,
  };
}
