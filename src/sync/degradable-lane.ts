import { randomUUID } from "node:crypto";
import type { Failure } from "./classify-failure.ts";
import { createLaneLoop, type LaneLoop } from "./lane-loop.ts";
import {
  authPauseMs,
  createDegradation,
  createLanePause,
  pauseForRateLimit,
  refusal,
  type Degradation,
  type LanePause,
} from "./lane-pause.ts";
import type { DegradableLane, DegradableLaneOptions, LaneContext } from "./lane-types.ts";

/**
 * What the lanes that degrade alone (contacts, line items) share: their settings with defaults, their pause
 * and degraded reason, their loop, the handle service.ts holds, and what a 429 or a refused token does to
 * them. Each lane adds its own step.
 */
export interface DegradableLaneState extends LaneContext {
  readonly intervalMs: number;
  readonly leaseMs: number;
  readonly maxBatch: number;
  readonly pause: LanePause;
  readonly degradation: Degradation;
  readonly loop: LaneLoop;
}

/** How a lane names itself in its logs and readiness. */
export interface LaneNames {
  /** Logged when a step throws: "contact step failed". */
  readonly stepFailed: string;
  /** Logged when a success follows a refused token: "contact sync resumed". */
  readonly resumed: string;
  /** What stops while the token is refused: "contacts not linked". */
  readonly stopped: string;
  /** The scopes the token needs: "crm.objects.contacts.read/write". */
  readonly scopes: string;
}

export function degradableLaneState(opts: DegradableLaneOptions, names: LaneNames): DegradableLaneState {
  return {
    ...opts,
    observer: opts.observer ?? {},
    now: opts.now ?? Date.now,
    owner: opts.owner ?? randomUUID(),
    leaseMs: opts.leaseMs ?? 120_000,
    maxBatch: opts.maxBatchSize ?? 100,
    pause: createLanePause(),
    degradation: createDegradation(opts.log, names.resumed),
    loop: createLaneLoop((error) => opts.log.error({ err: error }, names.stepFailed)),
  };
}

/** The handle of a degradable lane: a wake-up is ignored while the lane is paused. */
export function degradableLaneHandle(
  s: DegradableLaneState,
  step: () => Promise<void>,
  degraded: () => string | undefined,
): DegradableLane {
  return {
    start: () => s.loop.start(step),
    wake() {
      if (s.now() >= s.pause.untilMs) s.loop.interrupt();
    },
    degraded,
    stop: () => s.loop.stopWithin(5000),
  };
}

/**
 * A 429 pauses the lane (daily limit: degraded, so readiness says why, until its next success) or the shared
 * budget (rolling); a refused token (401/403) degrades the lane, logged once per reason, and pauses it —
 * longer for a missing scope. Other failures do nothing.
 */
export function pauseOnRefusal(s: DegradableLaneState, failure: Failure, names: LaneNames): void {
  if (failure.kind === "rate_limited") {
    const dailyPauseMs = pauseForRateLimit(failure, s.budget, s.now, s.timings);
    if (dailyPauseMs === undefined) return;
    s.degradation.degrade(
      `${names.stopped}: HubSpot daily API limit reached`,
      { retryInMs: dailyPauseMs },
      `${names.stopped}: HubSpot daily API limit reached`,
    );
    s.pause.pauseUntil(s.now() + dailyPauseMs);
    // (A rolling limit pauses the shared budget: that wait is counted where the next send waits for it.)
    s.observer.rateLimitWait?.(dailyPauseMs);
  } else if (failure.kind === "auth") {
    s.degradation.degrade(
      `${names.stopped}: HubSpot refused (${refusal(failure)}); the token needs ${names.scopes}`,
      { status: failure.status, category: failure.category },
      `${names.stopped}: HubSpot refused the token`,
    );
    s.pause.pauseUntil(s.now() + authPauseMs(failure.status, s.timings));
  }
}

/** The arguments of a lane's `claim…Due` at `nowMs`: up to `limit` (default `maxBatch`) under this owner's lease. */
export function claimArgs(
  s: DegradableLaneState,
  nowMs: number,
  limit: number = s.maxBatch,
): { limit: number; nowMs: number; leaseMs: number; owner: string } {
  return { limit, nowMs, leaseMs: s.leaseMs, owner: s.owner };
}
