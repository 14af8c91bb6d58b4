import type { HubSpotClient } from "../hubspot/client.ts";
import type { ClaimedCart, SentCart, Store } from "../store/store.ts";
import type { DroppedValue } from "./portal-properties.ts";
import type { RateBudget } from "./rate-budget.ts";

/**
 * The types every sender lane (carts, contacts, line items) and the modules around them share: where they
 * log, what they report to metrics, how long they pause. They live here, below the lanes, so a module that
 * only logs (privacy, the portal watcher) does not import the cart lane.
 */

/** A pino-shaped logger: a stable past-tense phrase as the message, the data in `obj`. */
export interface LogSink {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What the lanes report for metrics and for the service's wiring (every hook optional). */
export interface SenderObserver {
  request?(operation: string, status: string, seconds: number, batchSize: number): void;
  rateLimitWait?(ms: number): void;
  deadLettered?(count: number, reasons?: readonly string[]): void;
  droppedValue?(value: DroppedValue): void;
  sent?(carts: readonly SentCart[], claims: readonly ClaimedCart[]): void;
}

/** The cart lane's state for readiness: running, or paused with the reason an operator reads. */
export type SenderHealth =
  | { readonly state: "running" }
  | { readonly state: "paused"; readonly reason: string; readonly cause: "auth" | "daily_limit" };

/** How long a pause lasts before the next batch probes whether it passed. */
export interface PauseTimings {
  readonly authRetryMs: number;
  readonly dailyRetryMs: number;
  /** First retry delay ceiling for failures that may pass (doubles per attempt, full jitter). */
  readonly backoffBaseMs: number;
}

export const DEFAULT_TIMINGS: PauseTimings = {
  authRetryMs: 10_000,
  dailyRetryMs: 60_000,
  backoffBaseMs: 1000,
};

/** What every sender lane is handed: where it reads and writes, whom it tells, and its clock. */
export interface LaneContext {
  readonly store: Store;
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
  readonly log: LogSink;
  readonly observer: SenderObserver;
  /** This process's claim owner id. */
  readonly owner: string;
  readonly now: () => number;
  readonly timings: PauseTimings;
}

/** A lane that degrades alone when HubSpot refuses it (contacts, line items): carts keep flowing. */
export interface DegradableLane {
  start(): void;
  wake(): void;
  /** Why the lane is not working, or undefined. */
  degraded(): string | undefined;
  stop(): Promise<void>;
}

/** The options the degradable lanes share (service.ts passes the same values to both). */
export interface DegradableLaneOptions {
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
