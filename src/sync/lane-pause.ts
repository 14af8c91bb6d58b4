import type { Failure } from "./classify-failure.ts";
import type { LogSink, PauseTimings, SenderHealth } from "./lane-types.ts";
import type { RateBudget } from "./rate-budget.ts";

/**
 * The pause state the sender lanes share: until when a lane claims nothing, why (for readiness), and how
 * long a 429 or a refused token pauses it. State in memory only: retry times of claims live in the rows.
 */

/** Until when a lane claims nothing (0: not paused). */
export interface LanePause {
  readonly untilMs: number;
  pauseUntil(atMs: number): void;
  clear(): void;
}

export function createLanePause(): LanePause {
  let untilMs = 0;
  return {
    get untilMs() {
      return untilMs;
    },
    pauseUntil(atMs) {
      untilMs = atMs;
    },
    clear() {
      untilMs = 0;
    },
  };
}

/**
 * A 429: the budget learns HubSpot's counters; a daily limit pauses the lane (returned: for how long), a
 * rolling one pauses the shared budget (returned: undefined).
 */
export function pauseForRateLimit(
  failure: Extract<Failure, { kind: "rate_limited" }>,
  budget: RateBudget,
  now: () => number,
  timings: PauseTimings,
): number | undefined {
  budget.observe(failure.rateLimit, now());
  if (failure.daily) return Math.max(failure.retryAfterMs, timings.dailyRetryMs);
  budget.pauseUntil(now() + failure.retryAfterMs);
  return undefined;
}

/** A token without a lane's scopes is not fixed soon: a 403 pauses a degradable lane at least this long. */
export const SCOPE_RETRY_MS = 5 * 60_000;

/** How long a 401/403 pauses a lane that degrades alone (contacts, line items). */
export function authPauseMs(status: number | undefined, timings: PauseTimings): number {
  return Math.max(timings.authRetryMs, status === 403 ? SCOPE_RETRY_MS : 0);
}

/** `401` or `403 MISSING_SCOPES`: the status and category as an operator reads them in a reason. */
export function refusal(failure: { status: number | undefined; category: string | undefined }): string {
  return `${failure.status}${failure.category ? ` ${failure.category}` : ""}`;
}

/**
 * Why a lane that degrades alone (contacts, line items) is not working, for readiness: set on a refused
 * token (logged once per distinct reason), cleared by the next success (logged as `resumedMessage`).
 */
export interface Degradation {
  readonly reason: string | undefined;
  degrade(reason: string, fields: object, message: string): void;
  recover(): void;
}

export function createDegradation(log: LogSink, resumedMessage: string): Degradation {
  let reason: string | undefined;
  return {
    get reason() {
      return reason;
    },
    degrade(next, fields, message) {
      if (reason !== next) log.warn({ ...fields, reason: next }, message);
      reason = next;
    },
    recover() {
      if (reason === undefined) return;
      reason = undefined;
      log.info({}, resumedMessage);
    },
  };
}

const RUNNING: SenderHealth = { state: "running" };

/** The cart lane's health: a refused token or a spent daily limit pauses every send, and readiness says why. */
export interface CartHealth {
  readonly current: SenderHealth;
  /** Pauses sending for `retryMs`; logs when the reason changes. */
  pause(cause: "auth" | "daily_limit", reason: string, retryMs: number): void;
  /** HubSpot answered a batch: whatever paused sending has passed. */
  answered(): void;
}

export function createCartHealth(log: LogSink, lanePause: LanePause, now: () => number): CartHealth {
  let health: SenderHealth = RUNNING;
  return {
    get current() {
      return health;
    },
    pause(cause, reason, retryMs) {
      if (health.state !== "paused" || health.reason !== reason)
        log.warn({ cause, reason, retryInMs: retryMs }, "sending paused");
      health = { state: "paused", cause, reason };
      lanePause.pauseUntil(now() + retryMs);
    },
    answered() {
      if (health.state === "paused") health = RUNNING;
    },
  };
}
