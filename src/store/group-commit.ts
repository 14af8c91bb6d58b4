import type { IngestItem, IngestOutcome, Store } from "./store.ts";

/**
 * Group commit: deliveries that arrive while a commit is being prepared or is in flight share the next
 * one, so durability costs one fsync per group instead of one per request.
 *
 * State machine: idle → (first item) scheduled → (next macrotask) committing → idle, or committing again
 * at once when items queued up meanwhile. At most one commit is in flight; each waiter learns its own
 * outcome or the commit's error.
 */
export interface GroupCommitter {
  submit(item: IngestItem): Promise<IngestOutcome>;
  /** Resolves when nothing is queued or committing. */
  drain(): Promise<void>;
}

interface Waiter {
  readonly item: IngestItem;
  readonly resolve: (outcome: IngestOutcome) => void;
  readonly reject: (error: unknown) => void;
}

export function createGroupCommitter(
  store: Pick<Store, "ingestBatch">,
  opts: { maxBatch?: number; onCommit?: (size: number, seconds: number) => void } = {},
): GroupCommitter {
  const maxBatch = opts.maxBatch ?? 1000;
  let queue: Waiter[] = [];
  let scheduled = false;
  let committing: Promise<void> | undefined;

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

  async function commitQueued(): Promise<void> {
    while (queue.length > 0) {
      const group = queue.length > maxBatch ? queue.splice(0, maxBatch) : queue;
      if (group === queue) queue = [];
      const started = performance.now();
      try {
        const outcomes = await store.ingestBatch(group.map((w) => w.item));
        opts.onCommit?.(group.length, (performance.now() - started) / 1000);
        group.forEach((w, i) => w.resolve(outcomes[i] ?? "ignored"));
      } catch (error) {
        if (group.length === 1) {
          group[0]?.reject(error);
          continue;
        }
        // One delivery must not fail its neighbours: commit each alone, so only the culprit (or all,
        // when the store itself is down) is answered 503.
        for (const w of group) {
          try {
            const [outcome] = await store.ingestBatch([w.item]);
            w.resolve(outcome ?? "ignored");
          } catch (singleError) {
            w.reject(singleError);
          }
        }
      }
    }
  }

  return {
    submit(item) {
      return new Promise<IngestOutcome>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    async drain() {
      while (committing !== undefined || scheduled || queue.length > 0) {
        await (committing ?? new Promise((r) => setImmediate(r)));
      }
    },
  };
}
