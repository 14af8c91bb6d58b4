import { randomUUID } from "node:crypto";
import type { HubSpotClient } from "../hubspot/client.ts";
import type { Store } from "../store/store.ts";
import { createCartBatches, SETUP_RETRY_MS } from "./cart-batch.ts";
import { createLostClaims, renewWhileSending } from "./claim-renewal.ts";
import { createLaneLoop } from "./lane-loop.ts";
import { createCartHealth, createLanePause } from "./lane-pause.ts";
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

export function createFlusher(opts: FlusherOptions): Flusher {
  const maxBatch = opts.maxBatchSize ?? 100;
  const maxInFlight = opts.maxInFlight ?? 4;
  const leaseMs = opts.leaseMs ?? 30_000;
  const owner = opts.owner ?? randomUUID();
  const now = opts.now ?? Date.now;
  const { store, budget, log } = opts;
  const observer = opts.observer ?? {};
  const timings: PauseTimings = { ...DEFAULT_TIMINGS, ...opts.timings };

  let draining = false;
  const inFlight = new Set<Promise<void>>();
  const pause = createLanePause();
  const health = createCartHealth(log, pause, now);
  const lost = createLostClaims(log);
  const batches = createCartBatches({
    ...opts,
    observer,
    owner,
    now,
    timings,
    lost,
    health,
    pause,
    onSetupProblem: opts.onSetupProblem,
  });
  // `wake()` cuts a sleep short once enough changes arrived; `interrupt()` always.
  const lane = createLaneLoop((error) => log.error({ err: error }, "flush step failed"));
  const { sleep, interrupt } = lane;
  let hints = 0;
  let hintThreshold = 1;

  /** One turn of the loop: wait (paused, blocked, full, nothing due) or claim a batch and send it. */
  async function step(): Promise<void> {
    const t = now();
    // Draining while nothing can be sent (paused, or the portal unusable): what is pending stays stored.
    const blocked = t < pause.untilMs || opts.portal()?.idPropertyStatus !== "ok";
    if (draining && blocked && inFlight.size === 0) return lane.end();
    if (t < pause.untilMs) return waitFor(pause.untilMs - t);
    const portal = opts.portal();
    // Readiness reports the property problem; the portal watcher re-reads it until it is fixed.
    if (portal === undefined || portal.idPropertyStatus !== "ok") return waitFor(SETUP_RETRY_MS);
    if (inFlight.size >= maxInFlight) return waitFor(60_000); // a finishing batch interrupts
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
      if (draining && summary.dueCount === 0 && inFlight.size === 0) return lane.end();
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
      return waitFor(wait);
    }
    const claims = await store.claimDue({ limit: maxBatch, nowMs: t, leaseMs, owner });
    if (claims.length === 0) return;
    const stopRenewing = renewWhileSending(claims, { store, owner, leaseMs, now, log, lost });
    const batch = batches
      .send(claims)
      .catch((error: unknown) => log.error({ err: error }, "batch failed unexpectedly"))
      .finally(() => {
        stopRenewing();
        inFlight.delete(batch);
        interrupt();
      });
    inFlight.add(batch);
  }

  /** Sleeps `ms` that only an interrupt (not a wake hint) cuts short. */
  async function waitFor(ms: number): Promise<void> {
    hintThreshold = Number.POSITIVE_INFINITY;
    await sleep(ms);
  }

  return {
    start: () => lane.start(step),
    wake() {
      hints++;
      if (hints >= hintThreshold) interrupt();
    },
    health: () => health.current,
    resume() {
      pause.clear();
      interrupt();
    },
    async stop({ deadlineMs = 10_000 } = {}) {
      draining = true;
      interrupt();
      const deadline = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), deadlineMs).unref());
      const finished = await Promise.race([lane.done().then(() => "done" as const), deadline]);
      lane.end();
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
