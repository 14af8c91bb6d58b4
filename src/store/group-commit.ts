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
function isStoreUnavailable(error: unknown): boolean {
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
  const state: CommitState = {
    queue: [],
    queuedBytes: 0,
    scheduled: false,
    committing: undefined,
    down: false,
    storeCalled: false,
  };
  const run: CommitRun = { store, state, maxBatch, onCommit: opts.onCommit };

  function schedule(): void {
    if (state.scheduled || state.committing !== undefined) return;
    state.scheduled = true;
    // setImmediate runs after the I/O phase, so every request parsed in this loop turn joins the group.
    setImmediate(() => {
      state.scheduled = false;
      state.committing = commitQueued(run).finally(() => {
        state.committing = undefined;
        if (state.queue.length > 0) schedule();
      });
    });
  }

  return {
    submit(item) {
      // While the store is down, a single delivery at a time probes it; the others are refused at once.
      if (state.down && (state.storeCalled || state.queue.length > 0)) {
        return refuse("the store is unavailable");
      }
      const overBytes = state.queue.length > 0 && state.queuedBytes + item.body.length > maxQueuedBytes;
      if (state.queue.length >= maxQueued || overBytes) {
        return refuse("too many deliveries are waiting for the store");
      }
      return new Promise<IngestOutcome>((resolve, reject) => {
        const w: Waiter = { item, settled: false, timer: undefined, resolve, reject };
        w.timer = setTimeout(() => {
          settle(w, { error: new StoreError(`no commit within ${maxWaitMs} ms`, { retryable: true }) });
        }, maxWaitMs);
        state.queue.push(w);
        state.queuedBytes += item.body.length;
        schedule();
      });
    },
    async drain() {
      while (state.committing !== undefined || state.scheduled || state.queue.length > 0) {
        await (state.committing ?? new Promise((r) => setImmediate(r)));
      }
    },
    storeDown: () => state.down,
  };
}

/** The committer's state, in one record (the state machine above). */
interface CommitState {
  queue: Waiter[];
  queuedBytes: number;
  scheduled: boolean;
  committing: Promise<void> | undefined;
  /** The last commit found the store unavailable. */
  down: boolean;
  /** A store call is out (while the store is down: the probe). */
  storeCalled: boolean;
}

/** What a commit works with: the store, the state, and the options it reads. */
interface CommitRun {
  readonly store: Pick<Store, "ingestBatch">;
  readonly state: CommitState;
  readonly maxBatch: number;
  readonly onCommit: ((size: number, seconds: number) => void) | undefined;
}

function settle(w: Waiter, outcome: { ok: IngestOutcome } | { error: unknown }): void {
  if (w.settled) return;
  w.settled = true;
  clearTimeout(w.timer);
  if ("ok" in outcome) w.resolve(outcome.ok);
  else w.reject(outcome.error);
}

function refuse(reason: string): Promise<IngestOutcome> {
  return Promise.reject(new StoreError(reason, { retryable: true }));
}

/** Takes up to `count` waiters off the queue, leaving out those answered already. */
function take(state: CommitState, count: number): Waiter[] {
  const group = state.queue.length > count ? state.queue.splice(0, count) : state.queue;
  if (group === state.queue) state.queue = [];
  for (const w of group) state.queuedBytes -= w.item.body.length;
  // Waiters answered already (timed out) are not committed: Shopify was told to retry them.
  return group.filter((w) => !w.settled);
}

async function commitQueued(run: CommitRun): Promise<void> {
  const { state } = run;
  while (state.queue.length > 0) {
    const group = take(state, run.maxBatch);
    if (group.length === 0) continue;
    if ((await commit(run, group)) !== undefined) {
      // Everything queued behind a failed commit would wait for the same outage: refuse it now.
      const error = new StoreError("the store is unavailable", { retryable: true });
      for (const w of take(state, state.queue.length)) settle(w, { error });
    }
  }
}

/** Commits `group` in one transaction; settles every waiter. Returns the error when the store is down. */
async function commit(run: CommitRun, group: readonly Waiter[]): Promise<unknown> {
  const { state } = run;
  const started = performance.now();
  let outcomes: IngestOutcome[];
  try {
    state.storeCalled = true;
    outcomes = await run.store.ingestBatch(group.map((w) => w.item));
  } catch (error) {
    state.storeCalled = false;
    const unavailable = isStoreUnavailable(error);
    if (unavailable || group.length === 1) {
      // Set before anyone hears the outcome, so the next submission already sees the store's state.
      state.down = unavailable;
      for (const w of group) settle(w, { error });
      return unavailable ? error : undefined;
    }
    return commitEachAlone(run, group);
  }
  state.storeCalled = false;
  state.down = false;
  run.onCommit?.(group.length, (performance.now() - started) / 1000);
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

/** The group's own fault: commit each alone, so only the culprit is answered 503. */
async function commitEachAlone(run: CommitRun, group: readonly Waiter[]): Promise<unknown> {
  for (const [i, w] of group.entries()) {
    const unavailable = await commit(run, [w]);
    if (unavailable !== undefined) {
      for (const rest of group.slice(i + 1)) settle(rest, { error: unavailable });
      return unavailable;
    }
  }
  return undefined;
}
