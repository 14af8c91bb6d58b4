import { StoreError } from "../errors.ts";
import type { IngestItem, IngestOutcome, Store } from "./store.ts";

/**
 * Group commit: deliveries that arrive while a commit is being prepared or is in flight share the next
 * one, so durability costs one fsync per group instead of one per request.
 *
 * State machine: idle → (first item) scheduled → (next macrotask) committing → idle, or committing again
 * at once when items queued up meanwhile. At most one commit is in flight; each waiter learns its own
 * outcome or an error (answered 503, so Shopify retries).
 *
 * Store outages: an error that says the store itself is unavailable (a retryable StoreError: connection
 * lost or refused, timeouts, disk full) fails the whole group at once and marks the store down; any other
 * error is the group's fault, so each delivery is committed alone and only the culprit fails. While the
 * store is down, one delivery at a time goes through as a probe and every other one is refused at once;
 * the first probe that commits brings acceptance back. Memory stays bounded whatever the store does: the
 * queue holds at most `maxQueued` deliveries and `maxQueuedBytes` of bodies (beyond that: refused at
 * once), and no delivery waits longer than `maxWaitMs` for its answer.
 */
export interface GroupCommitter {
  submit(item: IngestItem): Promise<IngestOutcome>;
  /** Resolves when nothing is queued or committing. */
  drain(): Promise<void>;
  /** Whether the last commit found the store unavailable (acceptance is limited to probes). */
  storeDown(): boolean;
}

export interface GroupCommitOptions {
  /** Deliveries per transaction (default 1,000). */
  readonly maxBatch?: number;
  /** Deliveries waiting for a commit, beyond which new ones are refused at once (default 5,000). */
  readonly maxQueued?: number;
  /** Body bytes waiting for a commit, beyond which new ones are refused at once (default 64 MiB: 32 bodies of MAX_BODY_BYTES). */
  readonly maxQueuedBytes?: number;
  /** Longest a delivery waits for its outcome before it is answered 503 (default 4 s; Shopify allows 5 s). */
  readonly maxWaitMs?: number;
  readonly onCommit?: (size: number, seconds: number) => void;
}

interface Waiter {
  readonly item: IngestItem;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  readonly resolve: (outcome: IngestOutcome) => void;
  readonly reject: (error: unknown) => void;
}

/** The store as a whole cannot commit now; trying again later may work. */
export function isStoreUnavailable(error: unknown): boolean {
  return error instanceof StoreError && error.retryable;
}

export function createGroupCommitter(
  store: Pick<Store, "ingestBatch">,
  opts: GroupCommitOptions = {},
): GroupCommitter {
  const maxBatch = opts.maxBatch ?? 1000;
  const maxQueued = opts.maxQueued ?? 5000;
  const maxQueuedBytes = opts.maxQueuedBytes ?? 64 * 1024 * 1024;
  const maxWaitMs = opts.maxWaitMs ?? 4000;
  let queue: Waiter[] = [];
  let queuedBytes = 0;
  let scheduled = false;
  let committing: Promise<void> | undefined;
  let down = false;
  /** A store call is out (while the store is down: the probe). */
  let storeCalled = false;

  function settle(w: Waiter, outcome: { ok: IngestOutcome } | { error: unknown }): void {
    if (w.settled) return;
    w.settled = true;
    clearTimeout(w.timer);
    if ("ok" in outcome) w.resolve(outcome.ok);
    else w.reject(outcome.error);
  }

  function take(count: number): Waiter[] {
    const group = queue.length > count ? queue.splice(0, count) : queue;
    if (group === queue) queue = [];
    for (const w of group) queuedBytes -= w.item.body.length;
    // Waiters answered already (timed out) are not committed: Shopify was told to retry them.
    return group.filter((w) => !w.settled);
  }

  function schedule(): void {
    if (scheduled || committing !== undefined) return;
    scheduled = true;
    // setImmediate runs after the I/O phase, so every request parsed in this loop turn joins the group.
    setImmediate(() => {
      scheduled = false;
      committing = commitQueued().finally(() => {
        committing = undefined;
        if (queue.length > 0) schedule();
      });
    });
  }

  /** Commits `group` in one transaction; settles every waiter. Returns the error when the store is down. */
  async function commit(group: readonly Waiter[]): Promise<unknown> {
    const started = performance.now();
    let outcomes: IngestOutcome[];
    try {
      storeCalled = true;
      outcomes = await store.ingestBatch(group.map((w) => w.item));
    } catch (error) {
      storeCalled = false;
      if (isStoreUnavailable(error) || group.length === 1) {
        // Set before anyone hears the outcome, so the next submission already sees the store's state.
        down = isStoreUnavailable(error);
        for (const w of group) settle(w, { error });
        return isStoreUnavailable(error) ? error : undefined;
      }
      // The group's own fault: commit each alone, so only the culprit is answered 503.
      for (const [i, w] of group.entries()) {
        const unavailable = await commit([w]);
        if (unavailable !== undefined) {
          for (const rest of group.slice(i + 1)) settle(rest, { error: unavailable });
          return unavailable;
        }
      }
      return undefined;
    }
    storeCalled = false;
    down = false;
    opts.onCommit?.(group.length, (performance.now() - started) / 1000);
    group.forEach((w, i) => {
      const outcome = outcomes[i];
      settle(
        w,
        outcome === undefined
          ? { error: new StoreError("the store returned no outcome for a delivery", { retryable: false }) }
          : { ok: outcome },
      );
    });
    return undefined;
  }

  async function commitQueued(): Promise<void> {
    while (queue.length > 0) {
      const group = take(maxBatch);
      if (group.length === 0) continue;
      if ((await commit(group)) !== undefined) {
        // Everything queued behind a failed commit would wait for the same outage: refuse it now.
        const error = new StoreError("the store is unavailable", { retryable: true });
        for (const w of take(queue.length)) settle(w, { error });
      }
    }
  }

  function refuse(reason: string): Promise<IngestOutcome> {
    return Promise.reject(new StoreError(reason, { retryable: true }));
  }

  return {
    submit(item) {
      // While the store is down, a single delivery at a time probes it; the others are refused at once.
      if (down && (storeCalled || queue.length > 0)) {
        return refuse("the store is unavailable");
      }
      const overBytes = queue.length > 0 && queuedBytes + item.body.length > maxQueuedBytes;
      if (queue.length >= maxQueued || overBytes) {
        return refuse("too many deliveries are waiting for the store");
      }
      return new Promise<IngestOutcome>((resolve, reject) => {
        const w: Waiter = { item, settled: false, timer: undefined, resolve, reject };
        w.timer = setTimeout(() => {
          settle(w, { error: new StoreError(`no commit within ${maxWaitMs} ms`, { retryable: true }) });
        }, maxWaitMs);
        queue.push(w);
        queuedBytes += item.body.length;
        schedule();
      });
    },
    async drain() {
      while (committing !== undefined || scheduled || queue.length > 0) {
        await (committing ?? new Promise((r) => setImmediate(r)));
      }
    },
    storeDown: () => down,
  };
}
