import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { ClaimedCart, Store } from "../store/store.ts";
import { createCartBatches, SETUP_RETRY_MS, type CartBatches } from "./cart-batch.ts";
import { createLostClaims, renewWhileSending, type LostClaims } from "./claim-renewal.ts";
import { createLaneLoop, type LaneLoop } from "./lane-loop.ts";
import { createCartHealth, createLanePause, type LanePause } from "./lane-pause.ts";
import {
  DEFAULT_TIMINGS,
  type LogSink,
  type PauseTimings,
  type SenderHealth,
  type SenderObserver,
} from "./lane-types.ts";
import type { PortalProperties } from "./portal-properties.ts";
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
 * - draining (shutdown): everything due is sent at once, regardless of the interval, until a deadline; a
 *   retry that comes due before the deadline is waited for, unless a batch failed during the drain
 *   (HubSpot is still failing: more tries would only push the carts' next attempt past the next start).
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

export function createFlusher(opts: FlusherOptions): Flusher {
  const observer = opts.observer ?? {};
  const owner = opts.owner ?? randomUUID();
  const now = opts.now ?? Date.now;
  const timings: PauseTimings = { ...DEFAULT_TIMINGS, ...opts.timings };
  const pause = createLanePause();
  const health = createCartHealth(opts.log, pause, now);
  const lost = createLostClaims(opts.log);
  const s: Scheduler = {
    opts,
    maxBatch: opts.maxBatchSize ?? 100,
    maxInFlight: opts.maxInFlight ?? 4,
    leaseMs: opts.leaseMs ?? 30_000,
    owner,
    now,
    pause,
    lost,
    batches: createCartBatches({
      ...opts,
      observer,
      owner,
      now,
      timings,
      lost,
      health,
      pause,
      onSetupProblem: opts.onSetupProblem,
      onRetryLater: () => {
        if (s.drain !== undefined) s.drain.failed = true;
      },
    }),
    // `wake()` cuts a sleep short once enough changes arrived; `interrupt()` always.
    lane: createLaneLoop((error) => opts.log.error({ err: error }, "flush step failed")),
    inFlight: new Set(),
    drain: undefined,
    hints: 0,
    hintThreshold: 1,
    countedWaitUntilMs: 0,
  };
  return {
    start: () => s.lane.start(() => step(s)),
    wake() {
      s.hints++;
      if (s.hints >= s.hintThreshold) s.lane.interrupt();
    },
    health: () => health.current,
    resume() {
      pause.clear();
      s.lane.interrupt();
    },
    stop: ({ deadlineMs = 10_000 } = {}) => drain(s, deadlineMs),
  };
}

/** The flusher's state between steps: its settings, its parts, and the batches in flight. */
interface Scheduler {
  readonly opts: FlusherOptions;
  readonly maxBatch: number;
  readonly maxInFlight: number;
  readonly leaseMs: number;
  readonly owner: string;
  readonly now: () => number;
  readonly pause: LanePause;
  readonly lost: LostClaims;
  readonly batches: CartBatches;
  readonly lane: LaneLoop;
  readonly inFlight: Set<Promise<void>>;
  /**
   * Set by shutdown: when the drain ends (retries due before it are waited for), and whether a batch failed
   * (to be tried again later) since it began, after which retries are no longer waited for.
   */
  drain: { readonly untilMs: number; failed: boolean } | undefined;
  /** Wakes since the last pending summary, and how many cut the current sleep short. */
  hints: number;
  hintThreshold: number;
  /** The end of the last rate-limit wait counted in the metrics (a step within it does not count it again). */
  countedWaitUntilMs: number;
}

/** One turn of the loop: wait (paused, blocked, full, nothing due) or claim a batch and send it. */
async function step(s: Scheduler): Promise<void> {
  const { opts, lane, inFlight } = s;
  const t = s.now();
  // Draining while nothing can be sent (paused, or the portal unusable): what is pending stays stored.
  const blocked = t < s.pause.untilMs || opts.portal()?.idPropertyStatus !== "ok";
  if (s.drain !== undefined && blocked && inFlight.size === 0) return lane.end();
  if (t < s.pause.untilMs) return waitFor(s, s.pause.untilMs - t);
  const portal = opts.portal();
  // Readiness reports the property problem; the portal watcher re-reads it until it is fixed.
  if (portal === undefined || portal.idPropertyStatus !== "ok") return waitFor(s, SETUP_RETRY_MS);
  if (inFlight.size >= s.maxInFlight) return waitFor(s, 60_000); // a finishing batch interrupts
  // Wakes that arrive while the summary is read may describe changes it did not see: they count
  // against the threshold set below instead of being dropped (else a new cart could wait 30 s).
  s.hints = 0;
  const summary = await opts.store.pendingSummary(t, s.maxBatch);
  // Read after the summary: shutdown may have begun while it was read.
  const { drain } = s;
  const draining = drain !== undefined;
  const dueAt =
    summary.oldestDueSinceMs === undefined
      ? Number.POSITIVE_INFINITY
      : draining
        ? t
        : summary.oldestDueSinceMs + opts.flushIntervalMs;
  if (summary.dueCount === 0 || (summary.dueCount < s.maxBatch && t < dueAt)) {
    // Draining: a retry due before the deadline is waited for (HubSpot may answer by then), once: after a
    // batch failed again in the drain, or past the deadline, the rest stays pending for the next start.
    const retryBeforeDeadline =
      draining && !drain.failed && (summary.nextRetryAtMs ?? Number.POSITIVE_INFINITY) < drain.untilMs;
    if (draining && summary.dueCount === 0 && inFlight.size === 0 && !retryBeforeDeadline) {
      return lane.end();
    }
    const until = Math.min(dueAt, summary.nextRetryAtMs ?? Number.POSITIVE_INFINITY, t + 30_000);
    // With nothing due, the first change must wake us to start its interval; otherwise wake early
    // only when a full batch has accumulated.
    s.hintThreshold = draining || summary.dueCount === 0 ? 1 : Math.max(1, s.maxBatch - summary.dueCount);
    if (s.hints >= s.hintThreshold) return;
    await lane.sleep(until - t);
    return;
  }
  const wait = await opts.budget.take(t);
  if (wait > 0) {
    // A wake (a new delivery) cuts the sleep short and the step finds the same wait again: counted once.
    if (opts.budget.spentAt(t) && t >= s.countedWaitUntilMs) opts.observer?.rateLimitWait?.(wait);
    s.countedWaitUntilMs = Math.max(s.countedWaitUntilMs, t + wait);
    return waitFor(s, wait);
  }
  const claims = await opts.store.claimDue({
    limit: s.maxBatch,
    nowMs: t,
    leaseMs: s.leaseMs,
    owner: s.owner,
  });
  if (claims.length > 0) sendInBackground(s, claims);
}

/** Sleeps `ms` that only an interrupt (not a wake hint) cuts short. */
async function waitFor(s: Scheduler, ms: number): Promise<void> {
  s.hintThreshold = Number.POSITIVE_INFINITY;
  await s.lane.sleep(ms);
}

/** Sends a claimed batch while the loop goes on, renewing its claims until it is settled. */
function sendInBackground(s: Scheduler, claims: readonly ClaimedCart[]): void {
  const { opts, owner, leaseMs, now, lost } = s;
  const stopRenewing = renewWhileSending(claims, {
    store: opts.store,
    owner,
    leaseMs,
    now,
    log: opts.log,
    lost,
  });
  const batch = s.batches
    .send(claims)
    .catch((error: unknown) => opts.log.error({ err: error }, "batch failed unexpectedly"))
    .finally(() => {
      stopRenewing();
      s.inFlight.delete(batch);
      s.lane.interrupt();
    });
  s.inFlight.add(batch);
}

/**
 * Shutdown: sends what is due within `deadlineMs`, and what comes due in it (a retry after a short backoff),
 * then waits briefly for the batches in flight.
 */
async function drain(s: Scheduler, deadlineMs: number): Promise<void> {
  s.drain = { untilMs: s.now() + deadlineMs, failed: false };
  s.lane.interrupt();
  const deadline = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), deadlineMs).unref());
  const finished = await Promise.race([s.lane.done().then(() => "done" as const), deadline]);
  s.lane.end();
  s.lane.interrupt();
  if (finished === "timeout")
    s.opts.log.warn({ inFlight: s.inFlight.size }, "shutdown deadline reached; the rest stays pending");
  await Promise.race([Promise.allSettled([...s.inFlight]), new Promise((r) => setTimeout(r, 2000).unref())]);
}
