import { StoreError } from "../errors.ts";
import { openInbox, type InboxFile, type InboxPosition, type InboxRecord } from "../store/inbox-file.ts";
import type { InboxLedger, IngestItem, IngestOutcome } from "../store/store.ts";
import type { MapResult } from "./cart-event.ts";
import { toIngestItem, type Intake, type OutcomeSink } from "./intake.ts";

/**
 * The inbox intake (SQLite files): the answer waits only for the raw delivery's fsync in the inbox
 * (store/inbox-file.ts, through libuv's thread pool), so the event loop never waits for a disk; mapping and
 * the store's transaction run behind the answer, a batch at a time, each recording how far the inbox is
 * applied. At start-up whatever the inbox holds past that position (a crash came between the answer and
 * the apply) is applied before anything else.
 *
 * Batches: applied `applyDelayMs` after the first delivery waiting (or at once when `maxBatch` are), so at
 * a steady rate the store sees a few transactions of many deliveries rather than one per delivery — the
 * store's work per delivery falls. A batch holds `maxBatch` deliveries (mapping and the store's
 * transaction take about 0.16 ms each on the event loop, so 24 take about 4 ms), and each batch is a task
 * of its own: after a stall, a backlog goes in as many short tasks with answers between them, not one
 * long one that makes the next backlog. A batch takes an eighth of a larger backlog, up to 8 × `maxBatch`:
 * answering costs less than applying and the applier gets one batch per turn or two of the loop, so with
 * fixed batches a sustained flood could outrun it until `maxQueued` refused deliveries; growing batches
 * give it a larger share of the loop the further it is behind (answers then wait for longer tasks).
 *
 * Store outages: a batch the store cannot take (a retryable StoreError) stays queued and is tried again
 * after a pause that grows to `maxRetryMs`; meanwhile new deliveries are refused (503, Shopify retries), as
 * they are when `maxQueued` deliveries or `maxQueuedBytes` of bodies wait. A batch refused for its own sake
 * is applied one delivery at a time; a delivery the store refuses alone is kept as a dead letter.
 */
export interface InboxIntakeOptions {
  readonly applyDelayMs?: number;
  readonly maxBatch?: number;
  readonly maxQueued?: number;
  readonly maxQueuedBytes?: number;
  readonly maxRetryMs?: number;
  /** A segment reaching this size is followed by the next (default 8 MiB). */
  readonly segmentBytes?: number;
  /** Raw deliveries stay in the inbox at most about this long once applied (default 1 h). */
  readonly maxRecordAgeMs?: number;
  /** Each applied batch: its size and how long the store took (seconds). */
  readonly onApply?: (size: number, seconds: number) => void;
  readonly onError?: (error: unknown, what: string) => void;
}

const REFUSED = "the store refused it:";
const isStoreRefusal = (item: IngestItem): boolean =>
  item.mapped.kind === "invalid" && item.mapped.reason.startsWith(REFUSED);

interface Entry {
  /** The order it was accepted in (settle waits for the ones accepted before it was called). */
  readonly seq: number;
  readonly record: InboxRecord;
  readonly end: InboxPosition;
  /** Mapped once, when first applied (kept for a retry). */
  item?: IngestItem;
}

export async function startInboxIntake(
  ledger: InboxLedger,
  map: (delivery: InboxRecord) => MapResult,
  onOutcome: OutcomeSink,
  opts: InboxIntakeOptions = {},
): Promise<Intake & { readonly replayed: number }> {
  const applyDelayMs = opts.applyDelayMs ?? 10;
  const maxBatch = opts.maxBatch ?? 24;
  const maxQueued = opts.maxQueued ?? 5000;
  const maxQueuedBytes = opts.maxQueuedBytes ?? 64 * 1024 * 1024;
  const maxRetryMs = opts.maxRetryMs ?? 2000;
  const applied = await ledger.appliedPosition();
  // The position may be only in the page cache (a crash after a NORMAL commit): make it durable before
  // opening the inbox deletes the segments behind it.
  await ledger.syncCommitted();
  const opened = await openInbox(ledger.dir, applied, { segmentBytes: opts.segmentBytes });
  const inbox: InboxFile = opened.inbox;

  /** Durable, not yet applied, in inbox order. */
  let lastSeq = 0;
  let queue: Entry[] = opened.unapplied.map((s) => ({ seq: ++lastSeq, record: s.record, end: s.end }));
  /** Accepted (appending or queued) and not yet applied, by seq. */
  const unappliedSeqs = new Set(queue.map((e) => e.seq));
  /** The body bytes of the deliveries in unappliedSeqs (the bound on what memory the inbox holds). */
  let waitingBytes = queue.reduce((n, e) => n + e.record.body.length, 0);
  let timer: NodeJS.Timeout | undefined;
  /** A full batch is waiting: applied in the next turn of the loop (after the I/O that came meanwhile). */
  let immediate: NodeJS.Immediate | undefined;
  let applying: Promise<void> | undefined;
  let retryMs = 0;
  let closed = false;
  /** Segments being released (the store's files synced first), off the apply loop. */
  let releasing: Promise<void> | undefined;

  function schedule(): void {
    if (applying !== undefined || queue.length === 0 || closed) return;
    if (queue.length >= maxBatch && retryMs === 0) {
      clearTimeout(timer);
      timer = undefined;
      immediate ??= setImmediate(run);
    } else {
      timer ??= setTimeout(run, retryMs > 0 ? retryMs : applyDelayMs);
    }
  }

  function run(): void {
    clearTimeout(timer);
    timer = undefined;
    clearImmediate(immediate);
    immediate = undefined;
    if (applying !== undefined) return;
    applying = applyQueued().finally(() => {
      applying = undefined;
      schedule();
    });
  }

  /** Applies the next batch (schedule() sees to the rest: at once while a full batch waits, else later). */
  async function applyQueued(): Promise<void> {
    const size = Math.min(maxBatch * 8, Math.max(maxBatch, Math.ceil(queue.length / 8)));
    const tried = Math.min(queue.length, size);
    const done = await applyFront(queue.slice(0, size));
    // Short of the whole batch: the store cannot take the next delivery now; it waits as in an outage.
    retryMs = done < tried ? Math.min(maxRetryMs, Math.max(50, retryMs * 2)) : 0;
    if (done === 0) return;
    const batch = queue.slice(0, done);
    queue = queue.length === done ? [] : queue.slice(done);
    for (const e of batch) {
      waitingBytes -= e.record.body.length;
      unappliedSeqs.delete(e.seq);
    }
    const last = (batch.at(-1) as Entry).end;
    if (releasing === undefined && last.segment > inbox.oldestSegment()) {
      releasing = releaseBehind(last).finally(() => {
        releasing = undefined;
      });
    }
  }

  /**
   * Applies `batch` in one transaction, or — when the store refuses it for its own sake — one delivery at a
   * time. Returns how many from the front are applied: 0 when the store is unavailable.
   */
  async function applyFront(batch: readonly Entry[]): Promise<number> {
    const items = batch.map((e) => (e.item ??= toIngestItem(e.record, map(e.record))));
    const started = performance.now();
    let stored: IngestOutcome[];
    try {
      stored = await ledger.ingestFromInbox(items, (batch.at(-1) as Entry).end);
    } catch (error) {
      if (error instanceof StoreError && error.retryable) {
        opts.onError?.(error, "the store could not take a batch from the inbox; trying again");
        return 0;
      }
      if (batch.length > 1) return applyEachAlone(batch);
      return applyRefused(batch[0] as Entry, error);
    }
    opts.onApply?.(batch.length, (performance.now() - started) / 1000);
    batch.forEach((e, i) => onOutcome(e.record, stored[i] ?? "unchanged"));
    return batch.length;
  }

  /** The batch's own fault: each delivery alone, so only the culprit is set aside. */
  async function applyEachAlone(batch: readonly Entry[]): Promise<number> {
    for (const [i, e] of batch.entries()) {
      if ((await applyFront([e])) === 0) return i;
    }
    return batch.length;
  }

  /**
   * A delivery the store refused on its own is kept as a dead letter with the reason, never dropped. When
   * even that is refused, the store is broken, not the delivery: it is treated as unavailable (the
   * delivery stays first in line, tried again with backoff; new deliveries get 503) — an acknowledged
   * delivery is never passed over.
   */
  async function applyRefused(e: Entry, error: unknown): Promise<number> {
    if (e.item !== undefined && isStoreRefusal(e.item)) {
      opts.onError?.(error, "the store refused a delivery even as a dead letter; holding the inbox");
      e.item = undefined; // tried again as it came, once the store takes anything again
      return 0;
    }
    opts.onError?.(error, "the store refused a delivery from the inbox; it is kept as a dead letter");
    const reason = `${REFUSED} ${error instanceof Error ? error.message : String(error)}`;
    e.item = { ...e.record, mapped: { kind: "invalid", reason } };
    return applyFront([e]);
  }

  /** The inbox behind `position` is applied: make that durable in the store, then delete those segments. */
  async function releaseBehind(position: InboxPosition): Promise<void> {
    try {
      await ledger.syncCommitted();
      await inbox.release(position);
    } catch (error) {
      opts.onError?.(error, "could not release applied inbox segments; trying after the next batch");
    }
  }

  /** Whether a delivery accepted at or before `seq` is still to be applied. */
  const anyUnappliedUpTo = (seq: number): boolean => {
    for (const s of unappliedSeqs) if (s <= seq) return true;
    return false;
  };

  /**
   * Resolves once every delivery accepted before the call is applied (not those accepted meanwhile, so a
   * steady stream of deliveries never holds it up); a StoreError after `withinMs` (the store is down).
   */
  async function settle(withinMs = 4000): Promise<void> {
    const target = lastSeq;
    const deadline = Date.now() + withinMs;
    while (anyUnappliedUpTo(target)) {
      if (Date.now() > deadline) {
        throw new StoreError("deliveries accepted before are not applied yet", { retryable: true });
      }
      if (applying === undefined && queue.length > 0 && retryMs === 0) immediate ??= setImmediate(run);
      // Polled (not awaiting the batch): a store call that hangs must not outlast the deadline.
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  let purging: Promise<void> = Promise.resolve();
  let appendedSincePurge = queue.length > 0;
  /** Rolls the inbox, waits for what came before to be applied, durably, then deletes it. One at a time. */
  function purge(): Promise<void> {
    const run = purging.then(async () => {
      appendedSincePurge = false;
      const first = inbox.roll();
      await settle();
      await ledger.syncCommitted();
      await inbox.dropBefore(first);
    });
    purging = run.catch(() => undefined);
    return run;
  }
  // Applied deliveries' raw bodies (personal data) do not wait for a busy day to roll their segment away.
  const maxRecordAgeMs = opts.maxRecordAgeMs ?? 3_600_000;
  const ageTimer = setInterval(() => {
    if (!appendedSincePurge || closed) return;
    purge().catch((error: unknown) =>
      opts.onError?.(error, "could not drop applied deliveries from the inbox"),
    );
  }, maxRecordAgeMs / 2);
  ageTimer.unref();

  // What a crash left unapplied goes in before anything new (however long that takes).
  const replayed = queue.length;
  await settle(Infinity);

  return {
    replayed,
    async accept(delivery) {
      if (closed || !ledger.isOpen()) throw new StoreError("the store is closed", { retryable: true });
      if (retryMs > 0) throw new StoreError("the store is unavailable", { retryable: true });
      const waiting = unappliedSeqs.size;
      if (waiting >= maxQueued || (waiting > 0 && waitingBytes + delivery.body.length > maxQueuedBytes)) {
        throw new StoreError("too many deliveries are waiting for the store", { retryable: true });
      }
      waitingBytes += delivery.body.length;
      const seq = ++lastSeq;
      unappliedSeqs.add(seq);
      let end: InboxPosition;
      try {
        end = await inbox.append(delivery);
      } catch (error) {
        waitingBytes -= delivery.body.length;
        unappliedSeqs.delete(seq);
        throw error;
      }
      queue.push({ seq, record: delivery, end });
      appendedSincePurge = true;
      schedule();
      return "accepted";
    },
    settle: (withinMs?: number) => settle(withinMs),
    purge,
    unapplied: () => unappliedSeqs.size,
    async close() {
      closed = true;
      clearInterval(ageTimer);
      try {
        await settle();
      } catch (error) {
        // What is left stays in the inbox and is applied at the next start.
        opts.onError?.(error, "closing with deliveries not yet applied; the next start applies them");
      }
      clearTimeout(timer);
      clearImmediate(immediate);
      await releasing;
      await inbox.close();
    },
  };
}
