/**
 * Sign-in attempts are rate-limited: at most `perClient` wrong tokens per client address per window, and at
 * most `overall` from everyone together (so many addresses cannot guess in parallel). A right token is
 * never refused because of someone else's wrong ones unless the overall cap is hit. In memory, per process.
 */
export interface LoginLimiter {
  /** How many ms the client must wait before trying again (0: it may try now). */
  waitMs(client: string, nowMs: number): number;
  recordFailure(client: string, nowMs: number): void;
}

export function createLoginLimiter(opts: {
  perClient: number;
  overall: number;
  windowMs: number;
}): LoginLimiter {
  const failures = new Map<string, number[]>();
  let all: number[] = [];

  const recent = (times: readonly number[], nowMs: number): number[] =>
    times.filter((t) => t > nowMs - opts.windowMs);

  const waitFor = (times: readonly number[], cap: number, nowMs: number): number =>
    times.length < cap ? 0 : (times[times.length - cap] as number) + opts.windowMs - nowMs;

  return {
    waitMs(client, nowMs) {
      all = recent(all, nowMs);
      const mine = recent(failures.get(client) ?? [], nowMs);
      if (mine.length === 0) failures.delete(client);
      else failures.set(client, mine);
      return Math.max(waitFor(mine, opts.perClient, nowMs), waitFor(all, opts.overall, nowMs));
    },
    recordFailure(client, nowMs) {
      all.push(nowMs);
      const mine = recent(failures.get(client) ?? [], nowMs);
      mine.push(nowMs);
      failures.set(client, mine);
      // Bound the memory an address-rotating attacker can make us hold.
      if (failures.size > 10_000) failures.clear();
    },
  };
}
