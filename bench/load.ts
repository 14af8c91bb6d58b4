/**
 * The one load generator every measure uses: undici keep-alive connections posting signed deliveries to
 * `/webhooks/shopify`.
 *
 * - Closed loop (no `ratePerS`): `connections` senders, each posting its next delivery as soon as the previous
 *   one was answered — the most the server can take.
 * - Open loop (`ratePerS`): change `seq` is due at start + seq / rate, whatever the answers do, over up to
 *   `connections` connections (coordinated omission is avoided: a slow answer does not slow the schedule).
 *
 * A run stops by itself after `durationMs` or `count` deliveries, whichever comes first, and never runs past
 * `durationMs` + the request timeout. Latency is measured per delivery to the end of the answer: in the open
 * loop from the delivery's scheduled send time (start + seq / rate; coordinated omission corrected: a
 * generator that wakes late, or a connection held by a slow answer, counts against the server's figure
 * rather than hiding it), in the closed loop from dispatch.
 */
import { randomUUID } from "node:crypto";
import { Pool } from "undici";
import { deliveryHeaders, type DeliverySource } from "./deliveries.ts";

export interface LoadOptions {
  readonly url: string;
  readonly source: DeliverySource;
  readonly connections: number;
  /** Stop dispatching after this long (ms). */
  readonly durationMs: number;
  /** Stop after this many deliveries. */
  readonly count?: number;
  /** Open loop at this many deliveries per second; closed loop when absent. */
  readonly ratePerS?: number;
  /** The first change's sequence number (so runs against one bridge use distinct changes). */
  readonly firstSeq?: number;
  /** Called every `progressEveryMs` with the deliveries answered so far. */
  readonly onProgress?: (answered: number) => void;
  readonly progressEveryMs?: number;
  readonly requestTimeoutMs?: number;
}

export interface LoadResult {
  /** Deliveries dispatched. */
  readonly sent: number;
  /** Answered 200. */
  readonly ok: number;
  /** Answers by status; "error" for a connection failure or timeout. */
  readonly statuses: Readonly<Record<string, number>>;
  /** From the first dispatch to the last answer (ms). */
  readonly elapsedMs: number;
  /** Answer latency of every answered delivery, in ms (unsorted). */
  readonly latenciesMs: Float64Array;
  /**
   * The same answers timed from when each was actually dispatched, not scheduled (equal in the closed loop):
   * beside `latenciesMs` it tells the generator's own lateness apart from the server's.
   */
  readonly fromDispatchMs: Float64Array;
  /** Epoch ms at which change `firstSeq + i` was dispatched (NaN if never). */
  readonly sentAtMs: Float64Array;
  /** Open loop: how far behind its schedule the generator dispatched, worst case (ms). */
  readonly maxLagMs: number;
}

/** Epoch milliseconds with sub-millisecond precision (the clock the fake HubSpot stamps requests with). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const count = opts.count ?? Number.POSITIVE_INFINITY;
  const first = opts.firstSeq ?? 0;
  const expected = Number.isFinite(count)
    ? count
    : Math.ceil(((opts.ratePerS ?? 20_000) * opts.durationMs) / 1000) + 1;
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const pool = new Pool(opts.url, {
    connections: opts.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const runId = randomUUID().slice(0, 8);
  let latencies = new Float64Array(expected);
  let fromDispatch = new Float64Array(expected);
  let sentAt = new Float64Array(expected).fill(Number.NaN);
  const statuses: Record<string, number> = {};
  let sent = 0;
  let answered = 0;
  let ok = 0;
  let maxLagMs = 0;

  /** `a` in an array twice as long, the new half filled with `fill`. */
  const doubled = (a: Float64Array<ArrayBuffer>, fill = 0): Float64Array<ArrayBuffer> => {
    const bigger = new Float64Array(a.length * 2).fill(fill);
    bigger.set(a);
    return bigger;
  };
  function grow(): void {
    latencies = doubled(latencies);
    fromDispatch = doubled(fromDispatch);
    sentAt = doubled(sentAt, Number.NaN);
  }

  async function deliver(i: number, scheduledAt?: number): Promise<void> {
    const seq = first + i;
    const d = opts.source(seq);
    const headers = deliveryHeaders(d, `${runId}-${seq}`);
    if (i >= sentAt.length) grow();
    const dispatched = performance.now();
    const started = Math.min(scheduledAt ?? dispatched, dispatched);
    sentAt[i] = performance.timeOrigin + dispatched;
    let status: string;
    try {
      const res = await pool.request({ method: "POST", path: "/webhooks/shopify", headers, body: d.body });
      await res.body.dump();
      status = String(res.statusCode);
      if (res.statusCode === 200) ok++;
    } catch {
      status = "error";
    }
    if (answered >= latencies.length) grow();
    const now = performance.now();
    fromDispatch[answered] = now - dispatched;
    latencies[answered++] = now - started;
    statuses[status] = (statuses[status] ?? 0) + 1;
  }

  const startedAt = performance.now();
  const deadline = startedAt + opts.durationMs;
  const progress =
    opts.onProgress === undefined
      ? undefined
      : setInterval(() => opts.onProgress?.(answered), opts.progressEveryMs ?? 1000);
  try {
    if (opts.ratePerS === undefined) {
      const sender = async (): Promise<void> => {
        while (sent < count && performance.now() < deadline) await deliver(sent++);
      };
      await Promise.all(Array.from({ length: opts.connections }, sender));
    } else {
      const rate = opts.ratePerS;
      const inFlight = new Set<Promise<void>>();
      while (sent < count && performance.now() < deadline) {
        const now = performance.now();
        const due = Math.min(count, Math.floor(((now - startedAt) * rate) / 1000) + 1);
        if (due > sent) maxLagMs = Math.max(maxLagMs, now - (startedAt + (sent * 1000) / rate));
        while (sent < due) {
          const p = deliver(sent, startedAt + (sent++ * 1000) / rate).finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
        const nextDueAt = startedAt + (sent * 1000) / rate;
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(nextDueAt - performance.now(), 5))));
      }
      await Promise.all(inFlight);
    }
  } finally {
    if (progress !== undefined) clearInterval(progress);
    await pool.destroy();
  }
  return {
    sent,
    ok,
    statuses,
    elapsedMs: performance.now() - startedAt,
    latenciesMs: latencies.subarray(0, answered),
    fromDispatchMs: fromDispatch.subarray(0, answered),
    sentAtMs: sentAt.subarray(0, sent),
    maxLagMs,
  };
}
