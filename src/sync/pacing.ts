import type { RateBudget } from "./rate-budget.ts";

/** A sleep that another part of the loop can cut short (new work, a finished batch, shutdown). */
export interface Sleeper {
  readonly sleep: (ms: number) => Promise<void>;
  readonly interrupt: () => void;
}

export function createSleeper(): Sleeper {
  let wake: (() => void) | undefined;
  return {
    sleep: (ms) =>
      new Promise((resolve) => {
        const timer = setTimeout(done, Math.max(0, Math.min(ms, 2_147_483_647)));
        wake = done;
        function done(): void {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
      }),
    interrupt: () => wake?.(),
  };
}

/** Waits until the budget grants a request slot. */
export async function takeSlot(
  budget: RateBudget,
  now: () => number,
  onWait?: (ms: number) => void,
): Promise<void> {
  for (;;) {
    const at = now();
    const wait = await budget.take(at);
    if (wait === 0) return;
    if (budget.spentAt(at)) onWait?.(wait);
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** Seconds elapsed since a `performance.now()` reading. */
export function secondsSince(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}
