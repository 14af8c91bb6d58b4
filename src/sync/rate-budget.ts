import type { RateLimitInfo } from "../hubspot/types.ts";

/**
 * A rolling-window request budget: never more than `maxRequests` sends in any `windowMs`, tightened by
 * what HubSpot's X-HubSpot-RateLimit-* headers report (another app sharing the token, a lower plan limit).
 *
 * The local window is a little longer than HubSpot's: a request is counted here when sent and there when
 * received, and latency can bring two sends closer together on arrival than they were on departure.
 */
export interface RateBudget {
  /** Takes a slot and returns 0, or returns how many ms to wait before asking again. */
  take(nowMs: number): Promise<number>;
  /**
   * Whether the budget is spent at `nowMs` (a 429's pause, or the window full; with a shared budget, any
   * wait: the store only refuses a full window). A wait `take` asked for then is a rate-limit wait; else it
   * only spaces sends evenly, which is not worth counting.
   */
  spentAt(nowMs: number): boolean;
  /** Folds in what HubSpot reported on an answer. */
  observe(info: RateLimitInfo | undefined, nowMs: number): void;
  /** Sends nothing before `untilMs` (a 429's Retry-After). */
  pauseUntil(untilMs: number): void;
  /** Slots a send could take right now. */
  available(nowMs: number): number;
}

/**
 * Several replicas share one budget through the store (`takeRateSlot`, an atomic row in PostgreSQL):
 * it counts every replica's sends, so together they stay within the limit.
 */
export type SharedSlots = (nowMs: number, maxPerWindow: number, windowMs: number) => Promise<number>;

export function createRateBudget(opts: {
  maxRequests: number;
  windowMs?: number;
  marginMs?: number;
  shared?: SharedSlots;
}): RateBudget {
  const windowMs = (opts.windowMs ?? 10_000) + (opts.marginMs ?? 200);
  const shared = opts.shared;
  let limit = opts.maxRequests;
  /** Send times in this window, oldest first (a ring would do; the window holds at most `limit`). */
  let sent: number[] = [];
  let pausedUntil = 0;

  function prune(nowMs: number): void {
    let drop = 0;
    while (drop < sent.length && (sent[drop] as number) <= nowMs - windowMs) drop++;
    if (drop > 0) sent = sent.slice(drop);
  }

  return {
    async take(nowMs) {
      if (nowMs < pausedUntil) return pausedUntil - nowMs;
      prune(nowMs);
      if (shared !== undefined) {
        const wait = await shared(nowMs, limit, windowMs);
        if (wait === 0) sent.push(nowMs);
        return wait;
      }
      // Sends are also spaced evenly (window / limit apart): a burst of a whole window's budget at once
      // would leave no room for arrival jitter at HubSpot, which counts by arrival.
      const last = sent[sent.length - 1];
      const spacingWait = last === undefined ? 0 : last + windowMs / limit - nowMs;
      if (sent.length < limit && spacingWait <= 0) {
        sent.push(nowMs);
        return 0;
      }
      const windowWait = sent.length < limit ? 0 : (sent[sent.length - limit] as number) + windowMs - nowMs;
      return Math.max(1, Math.ceil(Math.max(spacingWait, windowWait)));
    },

    spentAt(nowMs) {
      if (nowMs < pausedUntil || shared !== undefined) return true;
      prune(nowMs);
      return sent.length >= limit;
    },

    observe(info, nowMs) {
      if (info === undefined) return;
      if (info.max !== undefined && info.max > 0) limit = Math.min(opts.maxRequests, info.max);
      // With a shared budget the store counts every replica; only the limit is taken from the headers.
      if (shared === undefined && info.remaining !== undefined && info.max !== undefined) {
        prune(nowMs);
        // HubSpot has counted `used` requests in its window; ours (which include sends it has not seen
        // yet) should never be fewer. If they are, someone else spends the budget: count their share.
        const used = info.max - info.remaining;
        const unseen = used - sent.length;
        for (let i = 0; i < unseen; i++) sent.push(nowMs);
        sent.sort((a, b) => a - b);
      }
    },

    pauseUntil(untilMs) {
      pausedUntil = Math.max(pausedUntil, untilMs);
    },

    available(nowMs) {
      if (nowMs < pausedUntil) return 0;
      prune(nowMs);
      return Math.max(0, limit - sent.length);
    },
  };
}
