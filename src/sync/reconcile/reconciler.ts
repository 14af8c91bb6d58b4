/**
 * The periodic reconciliation of every configured shop (SPEC §9), off the webhook path.
 *
 * State machine per shop: `idle` → (timer) → `running` → `idle` after a completed or failed pass, or
 * `paused` when the Admin API refused the shop's token (401 after a renewal, 403, a refused grant). A paused
 * shop is tried again every interval (a fixed token or a reinstalled app resumes it by itself); the
 * other shops and webhooks go on meanwhile. The next pass of a shop starts `intervalMs` after its previous
 * one ended. With PostgreSQL, a replica runs a shop's pass only while it holds the shop's reconcile lease
 * (renewed at every page); one that finds it held skips that round.
 */
import type { ShopifyAdmin } from "../../shopify/admin-client.ts";
import type { Store } from "../../store/store.ts";
import type { ReconcileSource } from "../../store/reconcile-store.ts";
import { runPass, type MissedChange, type PageProgress, type PassResult, type PassSummary } from "./pass.ts";

/** The per-shop status /admin/status and the console show (h16 builds the console against this shape). */
export interface ShopReconcileStatus {
  readonly shopDomain: string;
  readonly state: "idle" | "running" | "paused";
  readonly pausedReason?: string;
  readonly lastPassAtMs?: number;
  readonly lastPassSummary?: PassSummary;
  readonly lastMissed?: MissedChange;
}

export interface ReconcilerLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ReconcilerOptions {
  readonly admin: ShopifyAdmin;
  readonly store: Pick<Store, "ingestBatch" | "reconcile">;
  readonly intervalMs: number;
  readonly lookbackDays: number;
  readonly syncContacts: boolean;
  /** This process's name for leases. */
  readonly owner: string;
  readonly log: ReconcilerLog;
  readonly onChanged?: () => void;
  readonly onMissed?: (topic: ReconcileSource) => void;
  readonly onPass?: (outcome: PassResult["outcome"]) => void;
  /** How long a lease lasts without renewal (default 2 minutes). */
  readonly leaseMs?: number;
  /** Delay before the first pass (default 0). */
  readonly firstPassDelayMs?: number;
}

export interface Reconciler {
  /** Starts the periodic passes (nothing when `intervalMs` is 0 or no shop is configured). */
  start(): void;
  /** Stops timers and the running passes (they end without moving watermarks). */
  stop(): Promise<void>;
  /** One pass for `shopDomain` now (the CLI, tests); waits for a running one first. */
  runOnce(
    shopDomain: string,
    opts?: { sinceMs?: number; onPage?: (p: PageProgress) => void },
  ): Promise<PassResult | { outcome: "leased"; summary: PassSummary }>;
  status(): ShopReconcileStatus[];
  /** `degraded` reasons for /readyz: the paused shops, named, with their reason. */
  degraded(): string[];
}

interface ShopState {
  state: "idle" | "running" | "paused";
  pausedReason?: string;
  lastPassAtMs?: number;
  lastPassSummary?: PassSummary;
  lastMissed?: MissedChange;
  timer?: NodeJS.Timeout;
  running?: Promise<unknown>;
}

const EMPTY: PassSummary = { read: 0, changed: 0, missed: 0, skipped: 0 };

export function createReconciler(opts: ReconcilerOptions): Reconciler {
  const leaseMs = opts.leaseMs ?? 120_000;
  const shops = new Map<string, ShopState>(opts.admin.shops.map((s) => [s, { state: "idle" }]));
  const abort = new AbortController();
  let started = false;

  const sleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
    new Promise((resolve) => {
      if (signal?.aborted === true) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    });

  async function pass(
    shop: string,
    state: ShopState,
    extra: { sinceMs?: number; onPage?: (p: PageProgress) => void },
  ): Promise<PassResult | { outcome: "leased"; summary: PassSummary }> {
    const now = Date.now();
    if (!(await opts.store.reconcile.acquireReconcileLease(shop, opts.owner, now, now + leaseMs))) {
      return { outcome: "leased", summary: EMPTY };
    }
    const previous = state.state;
    state.state = "running";
    const leaseLost = new AbortController();
    const signal = AbortSignal.any([abort.signal, leaseLost.signal]);
    let result: PassResult;
    try {
      result = await runPass(
        {
          admin: opts.admin,
          store: opts.store,
          now: Date.now,
          sleep,
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
    return result;
  }

  function schedule(shop: string, state: ShopState, delayMs: number): void {
    if (abort.signal.aborted) return;
    state.timer = setTimeout(() => {
      const before = state.running;
      const running: Promise<unknown> = (async () => {
        // A pass asked for meanwhile (runOnce) ends first: never two at once in one process.
        if (before !== undefined) await before.catch(() => undefined);
        return pass(shop, state, {});
      })()
        .catch((error: unknown) => opts.log.warn({ shop, err: error }, "reconciliation pass failed"))
        .finally(() => {
          if (state.running === running) state.running = undefined;
          schedule(shop, state, opts.intervalMs);
        });
      state.running = running;
    }, delayMs);
    state.timer.unref();
  }

  return {
    start() {
      if (started || opts.intervalMs === 0) return;
      started = true;
      for (const [shop, state] of shops) schedule(shop, state, opts.firstPassDelayMs ?? 0);
    },
    async stop() {
      abort.abort();
      opts.admin.close();
      for (const state of shops.values()) clearTimeout(state.timer);
      await Promise.all([...shops.values()].map((s) => s.running ?? Promise.resolve()));
    },
    async runOnce(shop, extra = {}) {
      let state = shops.get(shop);
      if (state === undefined) shops.set(shop, (state = { state: "idle" }));
      while (state.running !== undefined) await state.running;
      const running = pass(shop, state, extra);
      state.running = running;
      try {
        return await running;
      } finally {
        if (state.running === running) state.running = undefined;
      }
    },
    status() {
      return [...shops].map(([shopDomain, s]) => ({
        shopDomain,
        state: s.state,
        ...(s.pausedReason === undefined ? {} : { pausedReason: s.pausedReason }),
        ...(s.lastPassAtMs === undefined ? {} : { lastPassAtMs: s.lastPassAtMs }),
        ...(s.lastPassSummary === undefined ? {} : { lastPassSummary: { ...s.lastPassSummary } }),
        ...(s.lastMissed === undefined ? {} : { lastMissed: { ...s.lastMissed } }),
      }));
    },
    degraded() {
      return [...shops]
        .filter(([, s]) => s.state === "paused")
        .map(([shop, s]) => `reconciliation of ${shop} paused: ${s.pausedReason ?? "unknown reason"}`);
    },
  };
}
