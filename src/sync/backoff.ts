/** Exponential backoff with full jitter: a random delay in [0, min(capMs, baseMs·2^attempt)], never below `minMs`. */
export function backoffDelayMs(
  attempt: number,
  opts: { baseMs?: number; capMs?: number; minMs?: number; random?: () => number } = {},
): number {
  const base = opts.baseMs ?? 1000;
  const cap = opts.capMs ?? 5 * 60_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  const jittered = Math.round((opts.random ?? Math.random)() * ceiling);
  return Math.max(opts.minMs ?? 0, jittered, 100);
}

/**
 * When a batch that may pass is tried again, as the store's `mark…Failed` takes it: the claims of one batch
 * share their fate, so the most-tried one sets the pace; the reason is cut to 500 characters.
 */
export function retrySchedule(
  lane: { readonly timings: { readonly backoffBaseMs: number }; readonly now: () => number },
  claims: readonly { readonly attempts: number }[],
  reason: string,
  minDelayMs: number,
): { nextAttemptAtMs: number; error: string } {
  const attempts = Math.max(...claims.map((c) => c.attempts));
  return {
    nextAttemptAtMs:
      lane.now() + backoffDelayMs(attempts, { minMs: minDelayMs, baseMs: lane.timings.backoffBaseMs }),
    error: reason.slice(0, 500),
  };
}
