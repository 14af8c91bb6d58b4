/**
 * One shop's reconciliation pass under its lease (SPEC §9): acquire the shop's reconcile lease (or report
 * `leased`), run the pass renewing the lease at every page (a lost lease aborts it), release, then move the
 * shop's state: `paused` on a refused token, back to where it was on a stop, else `idle` with the summary.
 */
import { runPass, type MissedChange, type PageProgress, type PassResult, type PassSummary } from "./pass.ts";
import type { ReconcilerOptions } from "./reconciler.ts";

/** A shop's state in the reconciler (see the state machine in reconciler.ts). */
export interface ShopState {
  state: "idle" | "running" | "paused";
  pausedReason?: string;
  lastPassAtMs?: number;
  lastPassSummary?: PassSummary;
  lastMissed?: MissedChange;
  timer?: NodeJS.Timeout;
  running?: Promise<unknown>;
}

export type LeasedPassResult = PassResult | { outcome: "leased"; summary: PassSummary };

/** What a pass needs besides the options: the lease length and the reconciler's stop signal. */
export interface PassContext {
  readonly opts: ReconcilerOptions;
  readonly leaseMs: number;
  /** Aborted when the reconciler stops. */
  readonly stopped: AbortSignal;
}

const EMPTY: PassSummary = { read: 0, changed: 0, missed: 0, skipped: 0 };

export async function leasedPass(
  ctx: PassContext,
  shop: string,
  state: ShopState,
  extra: { sinceMs?: number; onPage?: (p: PageProgress) => void },
): Promise<LeasedPassResult> {
  const { opts, leaseMs } = ctx;
  const now = Date.now();
  if (!(await opts.store.reconcile.acquireReconcileLease(shop, opts.owner, now, now + leaseMs))) {
    return { outcome: "leased", summary: EMPTY };
  }
  const previous = state.state;
  state.state = "running";
  const leaseLost = new AbortController();
  const signal = AbortSignal.any([ctx.stopped, leaseLost.signal]);
  let result: PassResult;
  try {
    result = await runPass(
      {
        admin: opts.admin,
        store: opts.store,
        now: Date.now,
        sleep: abortableSleep,
        syncContacts: opts.syncContacts,
        signal,
        ...(opts.onChanged === undefined ? {} : { onChanged: opts.onChanged }),
        onMissed: (m) => {
          state.lastMissed = {
            topic: m.topic,
            cartKey: m.cartKey,
            updatedAtMs: m.updatedAtMs,
            foundAtMs: m.foundAtMs,
          };
          opts.onMissed?.(m.topic);
        },
        onError: (err, what) => opts.log.warn({ shop, err }, what),
        onPage: (p) => {
          extra.onPage?.(p);
          const at = Date.now();
          void opts.store.reconcile
            .acquireReconcileLease(shop, opts.owner, at, at + leaseMs)
            .then((held) => {
              if (!held) leaseLost.abort();
            })
            .catch(() => leaseLost.abort());
        },
      },
      {
        shopDomain: shop,
        lookbackDays: opts.lookbackDays,
        ...(extra.sinceMs === undefined ? {} : { sinceMs: extra.sinceMs }),
      },
    );
  } catch (error) {
    result = {
      outcome: "failed",
      reason: error instanceof Error ? error.message : String(error),
      summary: EMPTY,
    };
  } finally {
    await opts.store.reconcile.releaseReconcileLease(shop, opts.owner).catch(() => undefined);
  }
  opts.onPass?.(result.outcome);
  settleShopState(opts, shop, state, previous, result);
  return result;
}

/** The shop's state after a pass, and its log line. */
function settleShopState(
  opts: ReconcilerOptions,
  shop: string,
  state: ShopState,
  previous: ShopState["state"],
  result: PassResult,
): void {
  const fields = { shop, ...result.summary };
  if (result.outcome === "paused") {
    state.state = "paused";
    state.pausedReason = result.reason;
    opts.log.warn({ ...fields, reason: result.reason }, "reconciliation paused");
  } else if (result.outcome === "stopped") {
    state.state = previous === "paused" ? "paused" : "idle";
  } else {
    state.state = "idle";
    delete state.pausedReason;
    state.lastPassAtMs = Date.now();
    state.lastPassSummary = { ...result.summary };
    if (result.outcome === "failed")
      opts.log.warn({ ...fields, reason: result.reason }, "reconciliation pass failed");
    else opts.log.info(fields, "reconciliation pass completed");
  }
}

/** Waits `ms`, or less when `signal` aborts first. */
function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
