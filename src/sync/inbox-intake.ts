import { StoreError } from "../errors.ts";
import {
  openInbox,
  placeOf,
  readRecordAtSync,
  readRecordsAt,
  type InboxFile,
  type InboxPosition,
  type InboxRecord,
  type RecordPlace,
  type StoredRecord,
} from "../store/inbox-file.ts";
import type { InboxLedger, IngestItem, IngestOutcome, VerifiedDelivery } from "../store/store.ts";
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
 *
 * Kept deliveries: a cart keeps its newest delivery until HubSpot has it (what a dead letter of it takes).
 * The store does not copy it at ingest: the inbox holds it already, so the intake notes where, and copies the
 * ones whose cart still waits into the store only when their segment is about to go. An applied segment
 * goes `keepAppliedMs` after its last delivery was applied, so by then most of its carts are sent and
 * nothing is copied; that cuts the store's writes per delivery, and the answers share the disk with them. A dead letter made
 * meanwhile reads the delivery from the inbox; a compliance request has them copied in first; at start-up
 * what a crash left behind the applied position is mapped again and copied in before it goes.
 */
export interface InboxIntakeOptions {
  readonly applyDelayMs?: number;
  readonly maxBatch?: number;
  readonly maxQueued?: number;
  readonly maxQueuedBytes?: number;
  readonly maxRetryMs?: number;
  /** A segment reaching this size is followed by the next (default 8 MiB). */
  readonly segmentBytes?: number;
  /**
   * An applied segment stays at least this long after the last delivery in it was applied (default 5 s),
   * so its carts are sent before it goes and little is copied into the store.
   */
  readonly keepAppliedMs?: number;
  /**
   * At most about this many carts have their newest delivery kept in the inbox (default 20,000, a few MB of
   * memory): past it, the oldest applied segments go (copying what they keep) before keepAppliedMs.
   */
  readonly maxKeptInInbox?: number;
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
  const keepAppliedMs = opts.keepAppliedMs ?? 5000;
  const maxKeptInInbox = opts.maxKeptInInbox ?? 20_000;
  /** When a delivery in each segment was last applied. */
  const lastAppliedAt = new Map<number, number>();
  const applied = await ledger.appliedPosition();
  // The position may be only in the page cache (a crash after a NORMAL commit): make it durable before
  // opening the inbox deletes the segments behind it.
  await ledger.syncCommitted();
  const opened = await openInbox(ledger.dir, applied, { segmentBytes: opts.segmentBytes });
  const inbox: InboxFile = opened.inbox;
  const kept = createKeptDeliveries(ledger, opts.onError);
  await kept.copyRetained(opened.retained, map);
  if (opened.retained.length > 0) {
    // Copied: the segments holding nothing else go (the first with a record to apply stays).
    await ledger.syncCommitted();
    const keep = opened.unapplied[0]?.end.segment ?? (opened.retained.at(-1) as StoredRecord).end.segment + 1;
    await inbox.release({ segment: keep, offset: 0 });
  }

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
    const now = Date.now();
    for (const e of batch) lastAppliedAt.set(e.end.segment, now);
    const first = releasableBefore((batch.at(-1) as Entry).end.segment, now);
    if (releasing === undefined && first > inbox.oldestSegment()) {
      releasing = releaseBehind(first).finally(() => {
        releasing = undefined;
      });
    }
  }

  /**
   * The segments before the returned one can go: wholly applied (before `current`, the one applying), and
   * none applied to within `keepAppliedMs` (most of their carts are sent by then, so little is copied) —
   * unless the inbox keeps more than `maxKeptInInbox` carts' deliveries (a flood HubSpot cannot keep up
   * with), then the oldest go at once.
   */
  function releasableBefore(current: number, now: number): number {
    let first = inbox.oldestSegment();
    let over = kept.count() - maxKeptInInbox;
    while (first < current && ((lastAppliedAt.get(first) ?? 0) <= now - keepAppliedMs || over > 0)) {
      over -= kept.countIn(first);
      lastAppliedAt.delete(first);
      first++;
    }
    return first;
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
    kept.note(batch, stored);
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

  /**
   * The segments before `first` are applied: copy what they keep for carts still waiting into the store,
   * make all that durable, then delete them.
   */
  async function releaseBehind(first: number): Promise<void> {
    try {
      await kept.copyBefore(first);
      await ledger.syncCommitted();
      await inbox.release({ segment: first, offset: 0 });
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
      await kept.copyBefore(first);
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
    async keepInStore() {
      await settle();
      await kept.copyBefore(Infinity);
    },
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

/** Kept deliveries read and copied into the store per transaction (5 kB each: about 2 ms). */
const COPY_CHUNK = 64;
/** Carts asked about per query (an index lookup or two each). */
const WAITING_CHUNK = 200;

/**
 * Where each cart's newest delivery lies in the inbox while the inbox keeps it for the store (see
 * startInboxIntake), and the copying of those into the store.
 */
function createKeptDeliveries(ledger: InboxLedger, onError: InboxIntakeOptions["onError"]) {
  /** By segment, then cart: a cart is in the map of one segment at most, its newest delivery's. */
  const bySegment = new Map<number, Map<string, RecordPlace>>();
  const segmentOf = new Map<string, number>();

  function keep(key: string, place: RecordPlace): void {
    const segment = place.end.segment;
    const before = segmentOf.get(key);
    if (before !== undefined && before !== segment) bySegment.get(before)?.delete(key);
    let places = bySegment.get(segment);
    if (places === undefined) bySegment.set(segment, (places = new Map<string, RecordPlace>()));
    places.set(key, place);
    segmentOf.set(key, segment);
  }

  /**
   * The store keeps each delivery found whose cart still waits and is still its newest (`current`, asked
   * just before the transaction), in one transaction: a turn of the loop of its own, so answers go in
   * between. A delivery applied between the call and its transaction (the store runs calls a turn later,
   * in order) can leave the store an older one than the inbox's: a dead letter reads the inbox's first,
   * and the store's is replaced or cleared (the cart sent) before the inbox lets it go.
   */
  async function copy(
    found: ReadonlyArray<{ cartKey: string; delivery: VerifiedDelivery | undefined }>,
    current: (cartKey: string) => boolean,
  ): Promise<void> {
    const lost = found.filter((f) => f.delivery === undefined).length;
    if (lost > 0) {
      onError?.(new Error(`${lost} kept deliveries could not be read back`), "copying kept deliveries");
    }
    await ledger.keepDeliveries(
      found.flatMap((f) =>
        f.delivery !== undefined && current(f.cartKey) ? [{ cartKey: f.cartKey, delivery: f.delivery }] : [],
      ),
    );
  }

  /** Which of `keys` wait to be sent, asked WAITING_CHUNK at a time (a turn of the loop each). */
  async function waitingOf(keys: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < keys.length; i += WAITING_CHUNK) {
      for (const k of await ledger.waitingToSend(keys.slice(i, i + WAITING_CHUNK))) out.add(k);
    }
    return out;
  }

  // A dead letter made while the inbox keeps its cart's delivery reads it from there.
  ledger.readKeptFrom((key) => {
    const segment = segmentOf.get(key);
    const place = segment === undefined ? undefined : bySegment.get(segment)?.get(key);
    return place === undefined ? undefined : readRecordAtSync(ledger.dir, place);
  });

  return {
    /** How many carts have their newest delivery kept in the inbox. */
    count: () => segmentOf.size,
    /** How many of them in `segment`. */
    countIn: (segment: number) => bySegment.get(segment)?.size ?? 0,

    /** An applied batch: each cart it changed keeps the batch's newest delivery of it. */
    note(batch: readonly Entry[], outcomes: readonly IngestOutcome[]): void {
      batch.forEach((e, i) => {
        if (outcomes[i] !== "applied" || e.item?.mapped.kind !== "event") return;
        keep(e.item.mapped.event.key, placeOf(e.record, e.end));
      });
    },

    /**
     * Copies what segments before `first` keep for carts still waiting into the store, COPY_CHUNK at a
     * time (read, then written: only that many bodies are in memory), and forgets them.
     */
    async copyBefore(first: number): Promise<void> {
      const segments = [...bySegment.keys()].filter((s) => s < first).sort((a, b) => a - b);
      for (const segment of segments) {
        const places = bySegment.get(segment) as Map<string, RecordPlace>;
        // What it keeps now: deliveries applied meanwhile (into the segment appended to) wait for their turn.
        const taken = new Map(places);
        const isCurrent = (k: string): boolean => places.get(k) === taken.get(k);
        const waiting = [...(await waitingOf([...taken.keys()]))];
        // In the order they lie in the segment: each chunk is one read of the span its records lie in.
        waiting.sort(
          (a, b) => (taken.get(a) as RecordPlace).end.offset - (taken.get(b) as RecordPlace).end.offset,
        );
        for (let i = 0; i < waiting.length; i += COPY_CHUNK) {
          const keys = waiting.slice(i, i + COPY_CHUNK);
          const read = await readRecordsAt(
            ledger.dir,
            segment,
            keys.map((k) => taken.get(k) as RecordPlace),
          );
          await copy(
            keys.map((cartKey, j) => ({ cartKey, delivery: read[j] })),
            isCurrent,
          );
        }
        for (const key of taken.keys()) {
          if (!isCurrent(key)) continue;
          places.delete(key);
          segmentOf.delete(key);
        }
        if (places.size === 0) bySegment.delete(segment);
      }
    },

    /**
     * At start-up: the records behind the applied position in segments still on disk (a crash, or a close,
     * came before they were copied) are mapped again, and each cart's newest one among them is copied in
     * while the cart waits. Their outcomes are not known any more: a delivery that did not change its cart
     * may be the one kept.
     */
    async copyRetained(retained: readonly StoredRecord[], map: (d: InboxRecord) => MapResult): Promise<void> {
      const newest = new Map<string, InboxRecord>();
      for (const { record } of retained) {
        const mapped = map(record);
        if (mapped.kind === "event") newest.set(mapped.event.key, record);
      }
      if (newest.size === 0) return;
      const waiting = await waitingOf([...newest.keys()]);
      const found = [...newest].filter(([k]) => waiting.has(k));
      for (let i = 0; i < found.length; i += COPY_CHUNK) {
        const chunk = found.slice(i, i + COPY_CHUNK);
        await copy(
          chunk.map(([cartKey, delivery]) => ({ cartKey, delivery })),
          () => true,
        );
      }
    },
  };
}
