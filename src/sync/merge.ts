import {
  compareStamps,
  statusRank,
  type BuyerContact,
  type CartEvent,
  type CartStatus,
  type EventStamp,
} from "./cart-event.ts";

/**
 * The merged state of one cart: every property with the stamp of the event that set it.
 *
 * Merging is a join: per property the value with the greatest stamp wins, and the status is the highest
 * any event carried. So it is commutative, associative and idempotent — any delivery order, with any
 * duplication, ends in the same state.
 */
export interface CartState {
  readonly key: string;
  readonly shopDomain: string;
  readonly token: string;
  readonly status: CartStatus;
  readonly properties: Readonly<Record<string, StampedValue>>;
}

export interface StampedValue {
  readonly value: string;
  readonly stamp: EventStamp;
}

export interface StampedContact {
  readonly value: BuyerContact;
  readonly stamp: EventStamp;
}

export interface MergeResult {
  readonly state: CartState;
  /** True when a value HubSpot would see (a property or the status) changed. */
  readonly changed: boolean;
}

export function mergeEvent(current: CartState | undefined, event: CartEvent): MergeResult {
  let changed = current === undefined;
  const properties: Record<string, StampedValue> = { ...current?.properties };
  for (const [name, value] of Object.entries(event.properties)) {
    const existing = properties[name];
    if (existing === undefined || compareStamps(event.stamp, existing.stamp) > 0) {
      if (existing?.value !== value) changed = true;
      properties[name] = { value, stamp: event.stamp };
    }
  }

  let status = current?.status ?? event.status;
  if (statusRank(event.status) > statusRank(status)) {
    status = event.status;
    changed = true;
  }

  const state: CartState = {
    key: event.key,
    shopDomain: event.shopDomain,
    token: event.token,
    status,
    properties,
  };
  return { state, changed };
}

/**
 * The buyer a cart is linked to: the one named by the newest event that named one. Personal data, so the
 * store erases the value once it has been sent, keeping only the stamp (so an older event cannot bring
 * an older buyer back).
 */
export function mergeContact(
  current: { readonly stamp: EventStamp; readonly value: BuyerContact | undefined } | undefined,
  event: CartEvent,
): { readonly contact: StampedContact; readonly changed: boolean } | undefined {
  if (event.contact === undefined) return undefined;
  if (current !== undefined && compareStamps(event.stamp, current.stamp) <= 0) return undefined;
  const changed = current?.value === undefined || !sameContact(current.value, event.contact);
  return { contact: { value: event.contact, stamp: event.stamp }, changed };
}

function sameContact(a: BuyerContact, b: BuyerContact): boolean {
  return (
    a.email === b.email && a.firstname === b.firstname && a.lastname === b.lastname && a.phone === b.phone
  );
}

/** The plain property values to send, with the status; the sender adds the id property. */
export function currentValues(state: CartState): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [name, { value }] of Object.entries(state.properties)) values[name] = value;
  values["hs_external_status"] = state.status;
  return values;
}
