import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { UpsertInput } from "../hubspot/types.ts";
import type { ClaimedContact, Store } from "../store/store.ts";
import {
  settleAssociations,
  type AssociationLink,
  type AssociationSettlement,
  type LinkFailure,
} from "./association-outcome.ts";
import { retrySchedule } from "./backoff.ts";
import { classifyFailure, type Failure } from "./classify-failure.ts";
import { createLaneLoop } from "./lane-loop.ts";
import { authPauseMs, createDegradation, createLanePause, pauseForRateLimit, refusal } from "./lane-pause.ts";
import type { LogSink, PauseTimings, SenderObserver } from "./lane-types.ts";
import { secondsSince as seconds, takeSlot as takeBudgetSlot } from "./pacing.ts";
import type { RateBudget } from "./rate-budget.ts";
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
 * lane: carts keep flowing, and readiness reports it.
 */
export interface ContactSender {
  start(): void;
  wake(): void;
  /** Why contacts are not being linked, or undefined. */
  degraded(): string | undefined;
  stop(): Promise<void>;
}

export interface ContactSenderOptions {
  readonly store: Store;
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
  readonly log: LogSink;
  readonly observer?: SenderObserver;
  readonly intervalMs: number;
  readonly timings: PauseTimings;
  readonly owner?: string;
  readonly leaseMs?: number;
  readonly maxBatchSize?: number;
  readonly now?: () => number;
}

export function createContactSender(opts: ContactSenderOptions): ContactSender {
  const { store, client, budget, log } = opts;
  const now = opts.now ?? Date.now;
  const owner = opts.owner ?? randomUUID();
  const leaseMs = opts.leaseMs ?? 120_000;
  const maxBatch = opts.maxBatchSize ?? 100;
  const observer = opts.observer ?? {};
  const pause = createLanePause();
  const degradation = createDegradation(log, "contact sync resumed");
  const lane = createLaneLoop((error) => log.error({ err: error }, "contact step failed"));
  const takeSlot = (): Promise<void> => takeBudgetSlot(budget, now, (ms) => observer.rateLimitWait?.(ms));

  async function step(): Promise<void> {
    const t = now();
    if (t < pause.untilMs) return lane.sleep(pause.untilMs - t);
    const claims = await store.claimContactsDue({ limit: maxBatch, nowMs: t, leaseMs, owner });
    if (claims.length === 0) return lane.sleep(opts.intervalMs);
    await takeSlot();
    await send(groupByEmail(claims));
  }

  /** One upsert for these e-mails (a slot is held), then their associations. */
  async function send(groups: ReadonlyArray<readonly ClaimedContact[]>): Promise<void> {
    const claims = groups.flat();
    const inputs = groups.map(toInput);
    const started = performance.now();
    try {
      const outcome = await client.upsertContacts(inputs);
      budget.observe(outcome.rateLimit, now());
      observer.request?.(
        "contacts_upsert",
        outcome.errors.length > 0 ? "207" : "200",
        seconds(started),
        inputs.length,
      );
      const idByEmail = new Map<string, string>();
      const emailByTrace = new Map(inputs.map((i) => [i.objectWriteTraceId, i.id]));
      for (const r of outcome.results) {
        const email =
          (r.objectWriteTraceId && emailByTrace.get(r.objectWriteTraceId)) || r.idValue?.toLowerCase();
        if (email) idByEmail.set(email, r.id);
      }
      const linked = claims.filter((c) => idByEmail.has(c.contact.email));
      if (linked.length > 0) await associate(linked, idByEmail);
      const missing = claims.filter((c) => !idByEmail.has(c.contact.email));
      if (missing.length > 0) await retryLater(missing, "HubSpot's answer did not name this contact", 0);
      degradation.recover();
      log.info(
        { contacts: inputs.length, linked: linked.length, ms: Math.round(seconds(started) * 1000) },
        "contacts sent",
      );
    } catch (error) {
      await handleFailure(groups, classifyFailure(error));
    }
  }

  /** Associates each cart with its buyer (a slot is taken), then settles the links. */
  async function associate(
    linked: readonly ClaimedContact[],
    idByEmail: ReadonlyMap<string, string>,
  ): Promise<void> {
    await takeSlot();
    const started = performance.now();
    const result = await client.associateCartsWithContacts(
      linked.map((c) => ({ cartId: c.cartId, contactId: idByEmail.get(c.contact.email) as string })),
    );
    budget.observe(result.rateLimit, now());
    observer.request?.(
      "associations_create",
      result.errors.length > 0 ? "207" : "201",
      seconds(started),
      linked.length,
    );
    await settleLinks(
      settleAssociations(
        linked.map((claim) => ({
          cartId: claim.cartId,
          contactId: idByEmail.get(claim.contact.email) as string,
          claim,
        })),
        result.errors,
      ),
    );
  }

  /** Linked buyers are erased; rejected links become dead letters; links that may pass are retried. */
  async function settleLinks(
    settled: AssociationSettlement<AssociationLink & { claim: ClaimedContact }>,
  ): Promise<void> {
    if (settled.linked.length > 0)
      await store.markContactsSent(
        settled.linked.map(({ claim }) => ({ cartKey: claim.cartKey, version: claim.version })),
        owner,
      );
    if (settled.rejected.length > 0) {
      await store.markContactsRejected(
        settled.rejected.map(({ link, reason, category }) => ({
          cartKey: link.claim.cartKey,
          version: link.claim.version,
          reason: `association: ${reason}`,
          category,
        })),
        owner,
        now(),
      );
      observer.deadLettered?.(settled.rejected.length);
      // HubSpot's message goes to the dead letter, not the log.
      for (const r of settled.rejected)
        log.warn({ category: r.category }, "association rejected by HubSpot; dead-lettered");
    }
    if (settled.retry.length > 0) {
      const first = settled.retry[0] as LinkFailure<unknown>;
      log.warn({ category: first.category, links: settled.retry.length }, "associations failed; will retry");
      await retryLater(
        settled.retry.map(({ link }) => link.claim),
        first.reason,
        0,
      );
    }
  }

  /** The lane's response to a failed call (pause, degrade, log), then the contacts' fate. */
  async function handleFailure(
    groups: ReadonlyArray<readonly ClaimedContact[]>,
    failure: Failure,
  ): Promise<void> {
    const claims = groups.flat();
    if (failure.kind === "rate_limited") {
      const dailyPauseMs = pauseForRateLimit(failure, budget, now, opts.timings);
      observer.request?.("contacts_upsert", "429", 0, claims.length);
      if (dailyPauseMs !== undefined) pause.pauseUntil(now() + dailyPauseMs);
    } else if (failure.kind === "auth") {
      degradation.degrade(
        `contacts not linked: HubSpot refused (${refusal(failure)}); the token needs crm.objects.contacts.read/write`,
        { status: failure.status, category: failure.category },
        "contacts not linked: HubSpot refused the token",
      );
      pause.pauseUntil(now() + authPauseMs(failure.status, opts.timings));
    }
    const settled = settleFailedCall(groups, failure);
    if (settled.release.length > 0)
      await store.releaseContacts(
        claims.map((c) => c.cartKey),
        owner,
      );
    if (settled.reject.length > 0 && failure.kind === "rejected") {
      await store.markContactsRejected(
        claims.map((c) => ({
          cartKey: c.cartKey,
          version: c.version,
          reason: failure.message,
          category: failure.category,
        })),
        owner,
        now(),
      );
      observer.deadLettered?.(claims.length);
      log.warn(
        { category: failure.category, carts: claims.length },
        "contact rejected by HubSpot; dead-lettered",
      );
    }
    for (const part of settled.split) {
      await takeSlot();
      await send(part);
    }
    if (settled.retry.length > 0 && "minDelayMs" in failure) {
      log.warn({ err: failure.message, contacts: groups.length }, "contacts failed; will retry");
      await retryLater(claims, failure.message, failure.minDelayMs);
    }
  }

  async function retryLater(
    claims: readonly ClaimedContact[],
    reason: string,
    minDelayMs: number,
  ): Promise<void> {
    const attempts = Math.max(...claims.map((c) => c.attempts));
    await store.markContactsFailed(
      claims.map((c) => c.cartKey),
      owner,
      retrySchedule(attempts, reason, { minDelayMs, baseMs: opts.timings.backoffBaseMs, nowMs: now() }),
    );
  }

  return {
    start: () => lane.start(step),
    wake() {
      if (now() >= pause.untilMs) lane.interrupt();
    },
    degraded: () => degradation.reason,
    stop: () => lane.stopWithin(5000),
  };
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
