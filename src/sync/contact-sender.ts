import { randomUUID } from "node:crypto";
import type { UpsertInput } from "../hubspot/types.ts";
import type { ClaimedContact } from "../store/store.ts";
import {
  settleAssociations,
  type AssociationLink,
  type AssociationSettlement,
  type LinkFailure,
} from "./association-outcome.ts";
import { retrySchedule } from "./backoff.ts";
import { classifyFailure, type Failure } from "./classify-failure.ts";
import { claimArgs, degradableLaneHandle, degradableLaneState, pauseOnRefusal } from "./degradable-lane.ts";
import type { DegradableLaneState, LaneNames } from "./degradable-lane.ts";
import { meteredRequest, recordedRequest, takeLaneSlot } from "./lane-requests.ts";
import type { DegradableLane, DegradableLaneOptions } from "./lane-types.ts";
import { secondsSince as seconds } from "./pacing.ts";
import { settleFailedCall } from "./settle-batch.ts";

/**
 * The contact lane: links carts to their buyers once the carts exist in HubSpot.
 *
 * Loop: claim contact links whose cart has a HubSpot id → upsert the buyers by e-mail (one input per
 * e-mail) → associate cart → contact (type 586) → erase the personal data (markContactsSent); a link
 * HubSpot refuses becomes a dead letter, one that may pass is retried (see association-outcome.ts). It shares
 * the carts' rate budget, and follows the same rules: 429 pauses, 5xx/timeouts back off in rows, a
 * rejected batch is split until the e-mail at fault is alone (upserts by e-mail cannot partially
 * succeed), which becomes a dead letter. 401/403 (a token without contacts scopes) degrades only this
 * lane: carts keep flowing, and readiness reports it (`degraded()`: why contacts are not being linked).
 */
export type ContactSender = DegradableLane;

export type ContactSenderOptions = DegradableLaneOptions;

const NAMES: LaneNames = {
  stepFailed: "contact step failed",
  resumed: "contact sync resumed",
  stopped: "contacts not linked",
  scopes: "crm.objects.contacts.read/write",
};

export function createContactSender(opts: ContactSenderOptions): ContactSender {
  const c = degradableLaneState(opts, NAMES);
  return degradableLaneHandle(
    c,
    () => step(c),
    () => c.degradation.reason,
  );
}

type ContactLane = DegradableLaneState;

type LinkOf = AssociationLink & { claim: ClaimedContact };

async function step(c: ContactLane): Promise<void> {
  const t = c.now();
  if (t < c.pause.untilMs) return c.loop.sleep(c.pause.untilMs - t);
  const claims = await c.store.claimContactsDue(claimArgs(c, t));
  if (claims.length === 0) return c.loop.sleep(c.intervalMs);
  await takeLaneSlot(c);
  await send(c, groupByEmail(claims));
}

/** One upsert for these e-mails (a slot is held), then their associations. */
async function send(c: ContactLane, groups: ReadonlyArray<readonly ClaimedContact[]>): Promise<void> {
  const claims = groups.flat();
  const inputs = groups.map(toInput);
  const started = performance.now();
  try {
    const upsert = { operation: "contacts_upsert", size: inputs.length, okStatus: "200" };
    const outcome = await recordedRequest(c, upsert, () => c.client.upsertContacts(inputs));
    const idByEmail = new Map<string, string>();
    const emailByTrace = new Map(inputs.map((i) => [i.objectWriteTraceId, i.id]));
    for (const r of outcome.results) {
      const email =
        (r.objectWriteTraceId && emailByTrace.get(r.objectWriteTraceId)) || r.idValue?.toLowerCase();
      if (email) idByEmail.set(email, r.id);
    }
    const linked = claims.filter((claim) => idByEmail.has(claim.contact.email));
    if (linked.length > 0) await associate(c, linked, idByEmail);
    const missing = claims.filter((claim) => !idByEmail.has(claim.contact.email));
    if (missing.length > 0) await retryLater(c, missing, "HubSpot's answer did not name this contact", 0);
    c.degradation.recover();
    c.log.info(
      { contacts: inputs.length, linked: linked.length, ms: Math.round(seconds(started) * 1000) },
      "contacts sent",
    );
  } catch (error) {
    await handleFailure(c, groups, classifyFailure(error));
  }
}

/** Associates each cart with its buyer (a slot is taken), then settles the links. */
async function associate(
  c: ContactLane,
  linked: readonly ClaimedContact[],
  idByEmail: ReadonlyMap<string, string>,
): Promise<void> {
  const links: LinkOf[] = linked.map((claim) => ({
    cartId: claim.cartId,
    contactId: idByEmail.get(claim.contact.email) as string,
    claim,
  }));
  const associations = { operation: "associations_create", size: linked.length, okStatus: "201" };
  const result = await meteredRequest(c, associations, () =>
    c.client.associateCartsWithContacts(links.map(({ cartId, contactId }) => ({ cartId, contactId }))),
  );
  await settleLinks(c, settleAssociations(links, result.errors));
}

/** Linked buyers are erased; rejected links become dead letters; links that may pass are retried. */
async function settleLinks(c: ContactLane, settled: AssociationSettlement<LinkOf>): Promise<void> {
  if (settled.linked.length > 0)
    await c.store.markContactsSent(
      settled.linked.map(({ claim }) => ({ cartKey: claim.cartKey, version: claim.version })),
      c.owner,
    );
  if (settled.rejected.length > 0) {
    await c.store.markContactsRejected(
      settled.rejected.map(({ link, reason, category }) => ({
        cartKey: link.claim.cartKey,
        version: link.claim.version,
        reason: `association: ${reason}`,
        category,
      })),
      c.owner,
      c.now(),
    );
    c.observer.deadLettered?.(settled.rejected.length);
    // HubSpot's message goes to the dead letter, not the log.
    for (const r of settled.rejected)
      c.log.warn({ category: r.category }, "association rejected by HubSpot; dead-lettered");
  }
  if (settled.retry.length > 0) {
    const first = settled.retry[0] as LinkFailure<unknown>;
    c.log.warn({ category: first.category, links: settled.retry.length }, "associations failed; will retry");
    await retryLater(
      c,
      settled.retry.map(({ link }) => link.claim),
      first.reason,
      0,
    );
  }
}

/** The lane's response to a failed call (pause, degrade), then the contacts' fate per `settleFailedCall`. */
async function handleFailure(
  c: ContactLane,
  groups: ReadonlyArray<readonly ClaimedContact[]>,
  failure: Failure,
): Promise<void> {
  const claims = groups.flat();
  respond(c, failure);
  const settled = settleFailedCall(groups, failure);
  if (settled.release.length > 0)
    await c.store.releaseContacts(
      claims.map((claim) => claim.cartKey),
      c.owner,
    );
  if (settled.reject.length > 0 && failure.kind === "rejected") {
    await c.store.markContactsRejected(
      claims.map((claim) => ({
        cartKey: claim.cartKey,
        version: claim.version,
        reason: failure.message,
        category: failure.category,
      })),
      c.owner,
      c.now(),
    );
    c.observer.deadLettered?.(claims.length);
    c.log.warn(
      { category: failure.category, carts: claims.length },
      "contact rejected by HubSpot; dead-lettered",
    );
  }
  for (const part of settled.split) {
    await takeLaneSlot(c);
    await send(c, part);
  }
  if (settled.retry.length > 0 && "minDelayMs" in failure) {
    c.log.warn({ err: failure.message, contacts: groups.length }, "contacts failed; will retry");
    await retryLater(c, claims, failure.message, failure.minDelayMs);
  }
}

/** What a failure does to the lane itself: a refused token degrades it. */
function respond(c: ContactLane, failure: Failure): void {
  pauseOnRefusal(c, failure, NAMES);
}

async function retryLater(
  c: ContactLane,
  claims: readonly ClaimedContact[],
  reason: string,
  minDelayMs: number,
): Promise<void> {
  await c.store.markContactsFailed(
    claims.map((claim) => claim.cartKey),
    c.owner,
    retrySchedule(c, claims, reason, minDelayMs),
  );
}

/** One upsert input per buyer: the e-mail is the id property. */
function toInput(group: readonly ClaimedContact[]): UpsertInput {
  const c = (group[0] as ClaimedContact).contact;
  const properties: Record<string, string> = { email: c.email };
  if (c.firstname !== undefined) properties["firstname"] = c.firstname;
  if (c.lastname !== undefined) properties["lastname"] = c.lastname;
  if (c.phone !== undefined) properties["phone"] = c.phone;
  return { id: c.email, idProperty: "email", objectWriteTraceId: randomUUID(), properties };
}

/** One group per e-mail: carts of the same buyer share one contact input. */
function groupByEmail(claims: readonly ClaimedContact[]): ClaimedContact[][] {
  const groups = new Map<string, ClaimedContact[]>();
  for (const c of claims) {
    const group = groups.get(c.contact.email);
    if (group) group.push(c);
    else groups.set(c.contact.email, [c]);
  }
  return [...groups.values()];
}
