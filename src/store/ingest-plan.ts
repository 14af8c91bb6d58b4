import { StoreError } from "../errors.ts";
import type { BuyerContact, EventStamp } from "../sync/cart-event.ts";
import { mergeContact, mergeEvent, type CartState } from "../sync/merge.ts";
import type { IngestItem, IngestOutcome } from "./store.ts";

/**
 * The ingest decision, the same for every store: a group of mapped deliveries replayed in order against
 * the rows it touches (loaded and locked by the adapter), giving each delivery's outcome and the rows to
 * write. Pure: the adapters only load (`LockedRows`) and save (`IngestPlan`).
 */

/** A locked row's version and value; version 0 is a placeholder this transaction created. */
export interface Locked<T> {
  readonly version: number;
  readonly value: T | undefined;
}

export type LinkValue = { readonly stamp: EventStamp; readonly value: BuyerContact | undefined };

export interface LockedRows {
  readonly newDeliveries: ReadonlySet<string>;
  readonly carts: ReadonlyMap<string, Locked<CartState>>;
  readonly links: ReadonlyMap<string, Locked<LinkValue>>;
}

export interface CartWrite {
  state: CartState | undefined;
  version: number;
  updatedAt: number;
  pendingSince: number | null;
  last: IngestItem | undefined;
}

export interface LinkWrite {
  current: LinkValue | undefined;
  version: number;
  updatedAt: number;
  written: boolean;
}

export interface IngestPlan {
  readonly outcomes: IngestOutcome[];
  readonly deadLetters: { readonly item: IngestItem; readonly reason: string }[];
  readonly carts: ReadonlyMap<string, CartWrite>;
  readonly links: ReadonlyMap<string, LinkWrite>;
  /** Placeholders locked for events that turned out to be redeliveries, or links no event moved. */
  readonly unusedCarts: string[];
  readonly unusedLinks: string[];
}

/**
 * Replays the group in order against the loaded rows: a delivery id seen before (in the database or earlier
 * in the group) is a duplicate; each event merges into its cart (a change bumps the version and makes the
 * delivery the cart's newest) and its buyer into the contact link. `nowMs` (the wall clock, read once per
 * group by the adapter) stamps the links.
 */
export function planIngest(items: readonly IngestItem[], locked: LockedRows, nowMs: number): IngestPlan {
  const unseen = new Set(locked.newDeliveries);
  const outcomes: IngestOutcome[] = [];
  const deadLetters: { item: IngestItem; reason: string }[] = [];
  const carts = new Map<string, CartWrite>();
  const links = new Map<string, LinkWrite>();
  for (const item of items) {
    if (item.webhookId !== undefined && item.replay !== true && !unseen.delete(item.webhookId)) {
      outcomes.push("duplicate");
      continue;
    }
    const mapped = item.mapped;
    if (mapped.kind === "unhandled") outcomes.push("ignored");
    else if (mapped.kind === "unkeyed") outcomes.push("unkeyed");
    else if (mapped.kind === "invalid") {
      deadLetters.push({ item, reason: mapped.reason });
      outcomes.push("dead_lettered");
    } else {
      const event = mapped.event;
      if (event.contact !== undefined) {
        const link = rowFor(links, locked.links, event.key, (row) => ({
          current: row.value,
          version: row.version,
          updatedAt: 0,
          written: false,
        }));
        const merged = mergeContact(link.current, event);
        if (merged !== undefined) {
          link.current = merged.contact;
          link.version += merged.changed ? 1 : 0;
          link.updatedAt = nowMs;
          link.written = true;
        }
      }
      const cart = rowFor(carts, locked.carts, event.key, (row) => ({
        state: row.value,
        version: row.version,
        updatedAt: 0,
        pendingSince: null,
        last: undefined,
      }));
      // A placeholder (no state yet) merges like a new cart: changed, so version 1, pending from now.
      const { state, changed } = mergeEvent(cart.state, event);
      cart.state = state;
      cart.updatedAt = item.receivedAtMs;
      if (changed) {
        cart.version++;
        cart.pendingSince ??= item.receivedAtMs;
        cart.last = item;
      }
      outcomes.push(changed ? "applied" : "unchanged");
    }
  }
  const unusedCarts = [...locked.carts].filter(([k, r]) => r.version === 0 && !carts.has(k)).map(([k]) => k);
  const unusedLinks = [...locked.links]
    .filter(([k, r]) => r.version === 0 && links.get(k)?.written !== true)
    .map(([k]) => k);
  return { outcomes, deadLetters, carts, links, unusedCarts, unusedLinks };
}

/** The group's working copy of a locked row, made on first use. */
function rowFor<L, W>(
  work: Map<string, W>,
  locked: ReadonlyMap<string, L>,
  key: string,
  start: (row: L) => W,
): W {
  let row = work.get(key);
  if (row === undefined) {
    const lockedRow = locked.get(key);
    if (lockedRow === undefined)
      throw new StoreError(`row of ${key} was not locked for ingest`, { retryable: false });
    row = start(lockedRow);
    work.set(key, row);
  }
  return row;
}
