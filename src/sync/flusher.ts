import { randomUUID } from "node:crypto";
import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotRequestRefusedError,
  HubSpotUnavailableError,
} from "../hubspot/errors.ts";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { UpsertInput } from "../hubspot/types.ts";
import type { ClaimedCart, RejectedCart, SentCart, Store } from "../store/store.ts";
import { backoffDelayMs } from "./backoff.ts";
import { currentValues } from "./merge.ts";
import {
  DEFAULT_TIMINGS,
  type LogSink,
  type PauseTimings,
  type SenderHealth,
  type SenderObserver,
} from "./lane-types.ts";
import { createValueFilter, type PortalProperties } from "./portal-properties.ts";
import { createSleeper, secondsSince as seconds, takeSlot as takeBudgetSlot } from "./pacing.ts";
import type { RateBudget } from "./rate-budget.ts";

/**
 * The flusher: sends pending carts to HubSpot.
 *
 * State machine (one loop, several batches in flight):
 * - waiting: nothing due, or fewer than `maxBatchSize` due and the oldest change is younger than
 *   `flushIntervalMs`. Wakes when the interval elapses, a retry comes due, or enough changes arrived.
 * - sending: takes a rate-budget slot, claims up to `maxBatchSize` due carts, upserts them. Up to
 *   `maxInFlight` batches at once.
 * - paused: HubSpot refused the token (401/403) or the daily limit is spent: nothing is claimed, the next
 *   batch after a timed pause probes whether it passed, and `health()` says why. While the cart id
 *   property is not usable (see `portal`), nothing is sent either.
 * - draining (shutdown): everything due is sent at once, regardless of the interval, until a deadline.
 *
 * Outcomes per cart: written → markSent; HubSpot rejected the input → dead letter (markRejected); a
 * failure that may pass → markFailed (attempts and next attempt time live in the store). A batch that
 * HubSpot rejects as a whole (400) is split in halves until the inputs at fault are isolated.
 */

/** Kept for the tests that import `LogSink` from here; it lives in lane-types.ts. */
export type { LogSink } from "./lane-types.ts";

export interface Flusher {
  start(): void;
  /** Called after a delivery changed a cart. */
  wake(): void;
  health(): SenderHealth;
  /** Clears a pause (an operator fixed the token, the property now exists). */
  resume(): void;
  /** Sends what is due within `deadlineMs`, then stops. */
  stop(opts?: { deadlineMs?: number }): Promise<void>;
}

export interface FlusherOptions {
  readonly store: Store;
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
  readonly idProperty: string;
  readonly flushIntervalMs: number;
  /** The portal's properties; undefined until learned (nothing is sent before). */
  readonly portal: () => PortalProperties | undefined;
  readonly log: LogSink;
  readonly observer?: SenderObserver;
  readonly maxBatchSize?: number;
  readonly maxInFlight?: number;
  readonly leaseMs?: number;
  readonly owner?: string;
  readonly now?: () => number;
  /** HubSpot said the id property is unusable: the portal's properties should be read again. */
  readonly onSetupProblem?: () => void;
  readonly timings?: Partial<PauseTimings>;
}

interface Entry {
  readonly claim: ClaimedCart;
  readonly input: UpsertInput;
}

const SETUP_RETRY_MS = 1_000;

export function createFlusher(opts: FlusherOptions): Flusher {
  const maxBatch = opts.maxBatchSize ?? 100;
  const maxInFlight = opts.maxInFlight ?? 4;
  const leaseMs = opts.leaseMs ?? 30_000;
  const owner = opts.owner ?? randomUUID();
  const now = opts.now ?? Date.now;
  const { store, client, budget, log } = opts;
  const observer = opts.observer ?? {};
  const timings: PauseTimings = { ...DEFAULT_TIMINGS, ...opts.timings };

  let running = false;
  let draining = false;
  let loopDone: Promise<void> = Promise.resolve();
  const inFlight = new Set<Promise<void>>();
  let health: SenderHealth = { state: "running" };
  let pausedUntilMs = 0;
  let hints = 0;
  let hintThreshold = 1;
  const keptValues = createValueFilter({
    log,
    onDropped: (d) => observer.droppedValue?.(d),
    message: "property value left out",
  });

  // `wake()` cuts a sleep short once enough changes arrived; `interrupt()` always.
  const { sleep, interrupt } = createSleeper();

  function pause(cause: "auth" | "daily_limit", reason: string, retryMs: number): void {
    if (health.state !== "paused" || health.reason !== reason)
      log.warn({ cause, retryInMs: retryMs }, `sending paused: ${reason}`);
    health = { state: "paused", cause, reason };
    pausedUntilMs = now() + retryMs;
  }

  async function loop(): Promise<void> {
    while (running) {
      try {
        await step();
      } catch (error) {
        log.error({ err: error }, "flush step failed");
        await sleep(1000);
      }
    }
  }

  async function step(): Promise<void> {
    const t = now();
    // Draining while nothing can be sent (paused, or the portal unusable): what is pending stays stored.
    const blocked = t < pausedUntilMs || opts.portal()?.idPropertyStatus !== "ok";
    if (draining && blocked && inFlight.size === 0) {
      running = false;
      return;
    }
    if (t < pausedUntilMs) {
      hintThreshold = Number.POSITIVE_INFINITY;
      await sleep(pausedUntilMs - t);
      return;
    }
    const portal = opts.portal();
    if (portal === undefined || portal.idPropertyStatus !== "ok") {
      // Readiness reports the property problem; the portal watcher re-reads it until it is fixed.
      hintThreshold = Number.POSITIVE_INFINITY;
      await sleep(SETUP_RETRY_MS);
      return;
    }
    if (inFlight.size >= maxInFlight) {
      hintThreshold = Number.POSITIVE_INFINITY;
      await sleep(60_000); // a finishing batch interrupts
      return;
    }
    // Wakes that arrive while the summary is read may describe changes it did not see: they count
    // against the threshold set below instead of being dropped (else a new cart could wait 30 s).
    hints = 0;
    const summary = await store.pendingSummary(t, maxBatch);
    const dueAt =
      summary.oldestDueSinceMs === undefined
        ? Number.POSITIVE_INFINITY
        : draining
          ? t
          : summary.oldestDueSinceMs + opts.flushIntervalMs;
    if (summary.dueCount === 0 || (summary.dueCount < maxBatch && t < dueAt)) {
      if (draining && summary.dueCount === 0 && inFlight.size === 0) {
        running = false;
        return;
      }
      const until = Math.min(dueAt, summary.nextRetryAtMs ?? Number.POSITIVE_INFINITY, t + 30_000);
      // With nothing due, the first change must wake us to start its interval; otherwise wake early
      // only when a full batch has accumulated.
      hintThreshold = draining || summary.dueCount === 0 ? 1 : Math.max(1, maxBatch - summary.dueCount);
      if (hints >= hintThreshold) return;
      await sleep(until - t);
      return;
    }
    const wait = await budget.take(t);
    if (wait > 0) {
      observer.rateLimitWait?.(wait);
      hintThreshold = Number.POSITIVE_INFINITY;
      await sleep(wait);
      return;
    }
    const claims = await store.claimDue({ limit: maxBatch, nowMs: t, leaseMs, owner });
    if (claims.length === 0) return;
    // Keep the claims alive while the batch is out (a slow HubSpot, a narrowed rejection), so another
    // replica never takes over carts this one is still sending; a dead replica's claims just expire. A
    // claim the renewal did not find held (or a renewal that failed) is lost: see `lost`.
    const keys = claims.map((c) => c.key);
    const renewal = setInterval(() => {
      store.renewClaims(keys, owner, { nowMs: now(), leaseMs }).then(
        (held) => {
          if (held.length < claims.length) loseClaims(claims.filter((c) => !held.includes(c.key)));
        },
        (error: unknown) => {
          log.warn({ err: error }, "claim renewal failed");
          loseClaims(claims);
        },
      );
    }, leaseMs / 3);
    const batch = sendClaims(claims)
      .catch((error: unknown) => log.error({ err: error }, "batch failed unexpectedly"))
      .finally(() => {
        clearInterval(renewal);
        inFlight.delete(batch);
        interrupt();
      });
    inFlight.add(batch);
  }

  const takeSlot = (): Promise<void> => takeBudgetSlot(budget, now, (ms) => observer.rateLimitWait?.(ms));

  /**
   * Claims whose renewal failed or found the lease gone: another sender may own the cart now, so this
   * batch must not mark it sent, nor send it again (narrowing); the cart is made pending to be sent again.
   */
  const lost = new WeakSet<ClaimedCart>();
  function loseClaims(claims: readonly ClaimedCart[]): void {
    const fresh = claims.filter((c) => !lost.has(c));
    if (fresh.length === 0) return;
    log.warn({ count: fresh.length }, "claims lost while sending; those carts will be sent again");
    for (const c of fresh) lost.add(c);
  }

  /** Makes lost claims' carts pending again (a new version) and gives their claims back if still held. */
  async function sendAgainLater(entries: readonly Entry[]): Promise<void> {
    if (entries.length === 0) return;
    for (const e of entries) await store.markPending(e.claim.key, now());
    await store.release(
      entries.map((e) => e.claim.key),
      owner,
    );
  }

  function toEntries(claims: readonly ClaimedCart[], portal: PortalProperties): Entry[] {
    return claims.map((claim) => {
      const kept = keptValues(portal, currentValues(claim.state));
      kept[opts.idProperty] = claim.key;
      return {
        claim,
        input: {
          id: claim.key,
          idProperty: opts.idProperty,
          objectWriteTraceId: randomUUID(),
          properties: kept,
        },
      };
    });
  }

  async function sendClaims(claims: readonly ClaimedCart[]): Promise<void> {
    const portal = opts.portal();
    if (portal === undefined) {
      await store.release(
        claims.map((c) => c.key),
        owner,
      );
      return;
    }
    await send(toEntries(claims, portal));
  }

  /** One upsert for `entries` (the caller holds a budget slot); settles every entry's claim. */
  async function send(all: readonly Entry[]): Promise<void> {
    await sendAgainLater(all.filter((e) => lost.has(e.claim)));
    const entries = all.filter((e) => !lost.has(e.claim));
    if (entries.length === 0) return;
    const started = performance.now();
    const keys = entries.map((e) => e.claim.key);
    try {
      const outcome = await client.upsertCarts(entries.map((e) => e.input));
      budget.observe(outcome.rateLimit, now());
      observer.request?.(
        "carts_upsert",
        outcome.errors.length > 0 ? "207" : "200",
        seconds(started),
        entries.length,
      );
      if (health.state === "paused") health = { state: "running" };

      const byTrace = new Map(entries.map((e) => [e.input.objectWriteTraceId, e]));
      const byKey = new Map(entries.map((e) => [e.claim.key, e]));
      const settled = new Set<Entry>();
      const sent: SentCart[] = [];
      for (const r of outcome.results) {
        const e =
          (r.objectWriteTraceId && byTrace.get(r.objectWriteTraceId)) || (r.idValue && byKey.get(r.idValue));
        if (!e || settled.has(e)) continue;
        settled.add(e);
        sent.push({ key: e.claim.key, version: e.claim.version, hubspotId: r.id });
      }
      const rejected: RejectedCart[] = [];
      let unplacedErrors = 0;
      for (const err of outcome.errors) {
        const hit = [...err.traceIds.map((t) => byTrace.get(t)), ...err.ids.map((id) => byKey.get(id))];
        if (!hit.some((e) => e !== undefined)) unplacedErrors++;
        for (const e of hit) {
          if (!e || settled.has(e)) continue;
          settled.add(e);
          rejected.push({
            key: e.claim.key,
            version: e.claim.version,
            reason: err.message,
            category: err.category,
          });
        }
      }
      let unsettled = entries.filter((e) => !settled.has(e));
      if (unsettled.length > 0 && unplacedErrors === 0) {
        // A 200, or a 207 whose every error named its input, wrote every other input, even when its results
        // name neither trace ids nor keys (HubSpot does not promise to echo them). Without a match the
        // record id stays unknown: no guessing.
        for (const e of unsettled)
          sent.push({ key: e.claim.key, version: e.claim.version, hubspotId: undefined });
        unsettled = [];
      }
      const lostNow = new Set(entries.filter((e) => lost.has(e.claim)).map((e) => e.claim.key));
      await sendAgainLater(entries.filter((e) => lostNow.has(e.claim.key)));
      const held = sent.filter((c) => !lostNow.has(c.key));
      if (held.length > 0) {
        const marked = await store.markSent(held, owner);
        if (marked.length < held.length)
          log.warn(
            { count: held.length - marked.length },
            "claims lost while sending; those carts will be sent again",
          );
        observer.sent?.(
          marked,
          entries.map((e) => e.claim),
        );
      }
      if (rejected.length > 0) await deadLetter(rejected);
      if (unsettled.length > 0) {
        log.warn({ count: unsettled.length }, "batch answer did not cover every input");
        await retryLater(unsettled, "HubSpot's answer named neither a result nor an error for this cart", 0);
      }
      log.info(
        {
          inputs: entries.length,
          written: sent.length,
          rejected: rejected.length,
          ms: Math.round(seconds(started) * 1000),
        },
        "batch sent",
      );
    } catch (error) {
      observer.request?.(
        "carts_upsert",
        error instanceof HubSpotRejectedError ||
          error instanceof HubSpotAuthError ||
          error instanceof HubSpotRateLimitError ||
          error instanceof HubSpotRequestRefusedError
          ? String(error.status)
          : "error",
        seconds(started),
        entries.length,
      );
      await handleFailure(entries, keys, error);
    }
  }

  async function handleFailure(entries: readonly Entry[], keys: string[], error: unknown): Promise<void> {
    if (error instanceof HubSpotRateLimitError) {
      budget.observe(error.rateLimit, now());
      if (error.daily) {
        pause(
          "daily_limit",
          "HubSpot daily API limit reached",
          Math.max(error.retryAfterMs, timings.dailyRetryMs),
        );
      } else {
        budget.pauseUntil(now() + error.retryAfterMs);
        log.warn({ retryAfterMs: error.retryAfterMs, policy: error.policy }, "rate limited by HubSpot");
      }
      observer.rateLimitWait?.(error.retryAfterMs);
      await store.release(keys, owner);
      return;
    }
    if (error instanceof HubSpotAuthError) {
      pause(
        "auth",
        `HubSpot refused the access token (${error.status}${error.category ? ` ${error.category}` : ""}): ${error.message}`,
        timings.authRetryMs,
      );
      await store.release(keys, owner);
      return;
    }
    if (error instanceof HubSpotRejectedError) {
      if (isSetupProblem(error)) {
        log.error(
          { err: error.message },
          "HubSpot rejected the cart id property; re-reading the portal's properties",
        );
        opts.onSetupProblem?.();
        pausedUntilMs = now() + SETUP_RETRY_MS;
        await store.release(keys, owner);
        return;
      }
      if (entries.length === 1) {
        const e = entries[0] as Entry;
        await deadLetter([
          { key: e.claim.key, version: e.claim.version, reason: error.message, category: error.category },
        ]);
        return;
      }
      // Narrow the whole-batch rejection down to the inputs at fault.
      const half = Math.ceil(entries.length / 2);
      for (const part of [entries.slice(0, half), entries.slice(half)]) {
        await takeSlot();
        await send(
          part.map((e) => ({ claim: e.claim, input: { ...e.input, objectWriteTraceId: randomUUID() } })),
        );
      }
      return;
    }
    const minDelay = error instanceof HubSpotUnavailableError ? error.minDelayMs : 0;
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof HubSpotRequestRefusedError)
      log.error(
        { status: error.status, category: error.category, carts: entries.length },
        "HubSpot refused the request, not the carts; will retry (check HUBSPOT_BASE_URL and the portal)",
      );
    log.warn({ err: message, carts: entries.length }, "batch failed; will retry");
    await retryLater(entries, message, minDelay);
  }

  async function retryLater(entries: readonly Entry[], reason: string, minDelayMs: number): Promise<void> {
    // Carts in one batch share their fate; the most-tried one sets the pace.
    const attempts = Math.max(...entries.map((e) => e.claim.attempts));
    const delay = backoffDelayMs(attempts, { minMs: minDelayMs, baseMs: timings.backoffBaseMs });
    await store.markFailed(
      entries.map((e) => e.claim.key),
      owner,
      { nextAttemptAtMs: now() + delay, error: reason.slice(0, 500) },
    );
  }

  async function deadLetter(rejected: RejectedCart[]): Promise<void> {
    await store.markRejected(rejected, owner, now());
    observer.deadLettered?.(
      rejected.length,
      rejected.map((r) => r.reason),
    );
    // HubSpot's message can quote values (tokens, e-mails): it goes to the dead letter, not the log.
    for (const r of rejected) log.warn({ category: r.category }, "cart rejected by HubSpot; dead-lettered");
  }

  /**
   * Whether a whole-batch 400 blames the id property itself (not unique, or missing) rather than an input:
   * then no input is at fault and narrowing would dead-letter good carts. Anything else is narrowed.
   */
  function isSetupProblem(error: HubSpotRejectedError): boolean {
    const m = error.message;
    if (/by non-unique .*propert/i.test(m)) return true;
    return (
      m.includes(opts.idProperty) && /does ?n[o']?t exist|PROPERTY_DOESNT_EXIST/i.test(m) && !/\[\{/.test(m)
    );
  }

  return {
    start() {
      if (running) return;
      running = true;
      loopDone = loop();
    },
    wake() {
      hints++;
      if (hints >= hintThreshold) interrupt();
    },
    health: () => health,
    resume() {
      pausedUntilMs = 0;
      interrupt();
    },
    async stop({ deadlineMs = 10_000 } = {}) {
      draining = true;
      interrupt();
      const deadline = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), deadlineMs).unref());
      const finished = await Promise.race([loopDone.then(() => "done" as const), deadline]);
      running = false;
      interrupt();
      if (finished === "timeout")
        log.warn({ inFlight: inFlight.size }, "shutdown deadline reached; the rest stays pending");
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
    },
  };
}
