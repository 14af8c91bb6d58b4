import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotUnavailableError,
} from "../hubspot/errors.ts";
import type { UpsertInput } from "../hubspot/types.ts";
import type { ClaimedContact, Store } from "../store/store.ts";
import {
  settleAssociations,
  type AssociationLink,
  type AssociationSettlement,
  type LinkFailure,
} from "./association-outcome.ts";
import { backoffDelayMs } from "./backoff.ts";
import type { LogSink, PauseTimings, SenderObserver } from "./lane-types.ts";
import { createSleeper, secondsSince as seconds, takeSlot as takeBudgetSlot } from "./pacing.ts";
import type { RateBudget } from "./rate-budget.ts";

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

const SCOPE_RETRY_MS = 5 * 60_000;

export function createContactSender(opts: ContactSenderOptions): ContactSender {
  const { store, client, budget, log } = opts;
  const now = opts.now ?? Date.now;
  const owner = opts.owner ?? randomUUID();
  const leaseMs = opts.leaseMs ?? 120_000;
  const maxBatch = opts.maxBatchSize ?? 100;
  const observer = opts.observer ?? {};
  let running = false;
  let loopDone: Promise<void> = Promise.resolve();
  let pausedUntilMs = 0;
  let degradedReason: string | undefined;

  const { sleep, interrupt } = createSleeper();
  const takeSlot = (): Promise<void> => takeBudgetSlot(budget, now, (ms) => observer.rateLimitWait?.(ms));

  async function loop(): Promise<void> {
    while (running) {
      try {
        const t = now();
        if (t < pausedUntilMs) {
          await sleep(pausedUntilMs - t);
          continue;
        }
        const claims = await store.claimContactsDue({ limit: maxBatch, nowMs: t, leaseMs, owner });
        if (claims.length === 0) {
          await sleep(opts.intervalMs);
          continue;
        }
        await takeSlot();
        await send(groupByEmail(claims));
      } catch (error) {
        log.error({ err: error }, "contact step failed");
        await sleep(1000);
      }
    }
  }

  /** One upsert for these e-mails (a slot is held), then their associations. */
  async function send(groups: ReadonlyArray<readonly ClaimedContact[]>): Promise<void> {
    const claims = groups.flat();
    const keys = claims.map((c) => c.cartKey);
    const inputs: UpsertInput[] = groups.map((group) => {
      const c = (group[0] as ClaimedContact).contact;
      const properties: Record<string, string> = { email: c.email };
      if (c.firstname !== undefined) properties["firstname"] = c.firstname;
      if (c.lastname !== undefined) properties["lastname"] = c.lastname;
      if (c.phone !== undefined) properties["phone"] = c.phone;
      return { id: c.email, idProperty: "email", objectWriteTraceId: randomUUID(), properties };
    });
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
      if (linked.length > 0) {
        await takeSlot();
        const assocStarted = performance.now();
        const result = await client.associateCartsWithContacts(
          linked.map((c) => ({ cartId: c.cartId, contactId: idByEmail.get(c.contact.email) as string })),
        );
        budget.observe(result.rateLimit, now());
        observer.request?.(
          "associations_create",
          result.errors.length > 0 ? "207" : "201",
          seconds(assocStarted),
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
      const missing = claims.filter((c) => !idByEmail.has(c.contact.email));
      if (missing.length > 0) await retryLater(missing, "HubSpot's answer did not name this contact", 0);
      if (degradedReason !== undefined) {
        degradedReason = undefined;
        log.info({}, "contact sync resumed");
      }
      log.info(
        { contacts: inputs.length, linked: linked.length, ms: Math.round(seconds(started) * 1000) },
        "contacts sent",
      );
    } catch (error) {
      await handleFailure(groups, keys, error);
    }
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

  async function handleFailure(
    groups: ReadonlyArray<readonly ClaimedContact[]>,
    keys: string[],
    error: unknown,
  ): Promise<void> {
    const claims = groups.flat();
    if (error instanceof HubSpotRateLimitError) {
      budget.observe(error.rateLimit, now());
      observer.request?.("contacts_upsert", "429", 0, claims.length);
      if (error.daily) pausedUntilMs = now() + Math.max(error.retryAfterMs, opts.timings.dailyRetryMs);
      else budget.pauseUntil(now() + error.retryAfterMs);
      await store.releaseContacts(keys, owner);
      return;
    }
    if (error instanceof HubSpotAuthError) {
      const reason = `contacts not linked: HubSpot refused (${error.status}${error.category ? ` ${error.category}` : ""}); the token needs crm.objects.contacts.read/write`;
      if (degradedReason !== reason) log.warn({ status: error.status, category: error.category }, reason);
      degradedReason = reason;
      pausedUntilMs = now() + Math.max(opts.timings.authRetryMs, error.status === 403 ? SCOPE_RETRY_MS : 0);
      await store.releaseContacts(keys, owner);
      return;
    }
    if (error instanceof HubSpotRejectedError) {
      if (groups.length === 1) {
        await store.markContactsRejected(
          claims.map((c) => ({
            cartKey: c.cartKey,
            version: c.version,
            reason: error.message,
            category: error.category,
          })),
          owner,
          now(),
        );
        observer.deadLettered?.(claims.length);
        log.warn(
          { category: error.category, carts: claims.length },
          "contact rejected by HubSpot; dead-lettered",
        );
        return;
      }
      const half = Math.ceil(groups.length / 2);
      for (const part of [groups.slice(0, half), groups.slice(half)]) {
        await takeSlot();
        await send(part);
      }
      return;
    }
    const minDelay = error instanceof HubSpotUnavailableError ? error.minDelayMs : 0;
    const message = error instanceof Error ? error.message : String(error);
    log.warn({ err: message, contacts: groups.length }, "contacts failed; will retry");
    await retryLater(claims, message, minDelay);
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
      {
        nextAttemptAtMs:
          now() + backoffDelayMs(attempts, { minMs: minDelayMs, baseMs: opts.timings.backoffBaseMs }),
        error: reason.slice(0, 500),
      },
    );
  }

  return {
    start() {
      if (running) return;
      running = true;
      loopDone = loop();
    },
    wake() {
      if (now() >= pausedUntilMs) interrupt();
    },
    degraded: () => degradedReason,
    async stop() {
      running = false;
      interrupt();
      await Promise.race([loopDone, new Promise((r) => setTimeout(r, 5000).unref())]);
    },
  };
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
