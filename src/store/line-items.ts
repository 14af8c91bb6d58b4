import type { LineDraft } from "../sync/line-items.ts";

/**
 * The line item part of the store port (SPEC §10), implemented by sqlite-line-items.ts and
 * postgres-line-items.ts and included in `Store`.
 *
 * Glossary
 * - line set: a cart's lines as its newest event that carried `line_items` says (same stamp order as the
 *   cart's properties), replaced whole. Its version is bumped whenever the lines HubSpot would see change;
 *   it is pending while version > synced_version.
 * - known line item: a line key with the HubSpot line item id an upsert answered, and the HubSpot cart id it
 *   was associated with (none yet: still to associate). A known line item whose key left the set is archived.
 * - claim: as for contacts, a lease in the row (owner, until), so replicas never send the same set at once.
 * A line set is due only once its cart has a HubSpot id: lines are associated with an existing cart.
 */
export interface KnownLineItem {
  readonly lineKey: string;
  readonly hubspotId: string;
  /** The HubSpot cart id it is associated with, or undefined while not associated. */
  readonly associatedCartId: string | undefined;
}

export interface ClaimedLineSet {
  readonly cartKey: string;
  readonly shopDomain: string;
  /** HubSpot's id of the cart. */
  readonly cartId: string;
  readonly version: number;
  readonly attempts: number;
  readonly lines: readonly LineDraft[];
  readonly known: readonly KnownLineItem[];
}

export interface LearnedLineItem {
  readonly lineKey: string;
  readonly cartKey: string;
  readonly hubspotId: string;
  readonly associatedCartId: string | undefined;
}

export interface SentLineSet {
  readonly cartKey: string;
  readonly version: number;
  /** Line keys HubSpot archived: forgotten. */
  readonly archivedLineKeys: readonly string[];
}

export interface RejectedLine {
  readonly cartKey: string;
  readonly lineKey: string;
  readonly reason: string;
  readonly category: string | undefined;
}

export interface LineItemStore {
  /** Leases up to `limit` pending line sets whose cart is in HubSpot, oldest change first. */
  claimLineSetsDue(opts: {
    limit: number;
    nowMs: number;
    leaseMs: number;
    owner: string;
  }): Promise<ClaimedLineSet[]>;
  /** Remembers HubSpot ids (and associations) learned from upserts, so later sets can archive them. */
  recordLineItems(items: readonly LearnedLineItem[]): Promise<void>;
  /** HubSpot has these sets: forget archived line items, clear what is no longer pending, release. */
  markLineSetsSent(sets: readonly SentLineSet[], owner: string): Promise<void>;
  markLineSetsFailed(
    cartKeys: readonly string[],
    owner: string,
    opts: { nextAttemptAtMs: number; error: string },
  ): Promise<void>;
  releaseLineSets(cartKeys: readonly string[], owner: string): Promise<void>;
  /** HubSpot rejected these lines: a dead letter each (with the cart's kept delivery, when there is one). */
  deadLetterLines(lines: readonly RejectedLine[], nowMs: number): Promise<void>;
  /** The stored line set and known line items of a cart (operators, the demo, tests). */
  lineSetOf(
    cartKey: string,
  ): Promise<{ lines: readonly LineDraft[]; known: readonly KnownLineItem[] } | undefined>;
}
