import type { Config } from "../config.ts";
import {
  createContactSender,
  type ContactSender,
  type ContactSenderOptions,
} from "../sync/contact-sender.ts";
import { startLineItemLane, type LineItemLane } from "../sync/line-item-lane.ts";

/**
 * The lanes that follow carts, each on when configured: contacts (HUBSPOT_SYNC_CONTACTS) and line items
 * (HUBSPOT_SYNC_LINE_ITEMS). They share the carts' store, client, budget and observer. Both make two
 * requests (upsert, associate) per claim and do not renew it: a lease three times the carts'.
 */
export interface FollowerLanes {
  readonly contacts: ContactSender | undefined;
  readonly lineItems: LineItemLane | undefined;
}

export type LaneDeps = Pick<ContactSenderOptions, "store" | "client" | "budget" | "log" | "timings"> & {
  readonly observer: NonNullable<ContactSenderOptions["observer"]>;
};

export function createFollowerLanes(config: Config, deps: LaneDeps): FollowerLanes {
  const contacts = config.hubspotSyncContacts
    ? createContactSender({
        ...deps,
        intervalMs: config.flushIntervalMs,
        leaseMs: config.claimLeaseMs * 3,
      })
    : undefined;
  const lineItems = config.hubspotSyncLineItems
    ? startLineItemLane({
        ...deps,
        idProperty: config.hubspotLineItemIdProperty,
        intervalMs: config.flushIntervalMs,
        leaseMs: config.claimLeaseMs * 3,
      })
    : undefined;
  return { contacts, lineItems };
}
