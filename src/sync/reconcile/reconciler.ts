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
import type { MissedChange, PageProgress, PassResult, PassSummary } from "./pass.ts";
import { leasedPass, type LeasedPassResult, type PassContext, type ShopState } from "./shop-pass.ts";

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
  ): Promise<LeasedPassResult>;
  status(): ShopReconcileStatus[];
  /** Reads the shops' last missed changes from the store (at start and after every periodic pass). */
  loadMissed(): Promise<void>;
  /** `degraded` reasons for /readyz: the paused shops, named, with their reason. */
  degraded(): string[];
}

export function createReconciler(opts: ReconcilerOptions): Reconciler {
  const shops = new Map<string, ShopState>(opts.admin.shops.map((s) => [s, { state: "idle" }]));
  const abort = new AbortController();
  const ctx: PassContext = { opts, leaseMs: opts.leaseMs ?? 120_000, stopped: abort.signal };
  let started = false;

  function schedule(shop: string, state: ShopState, delayMs: number): void {
    if (abort.signal.aborted) return;
    state.timer = setTimeout(() => {
      const before = state.running;
      const running: Promise<unknown> = (async () => {
        // A pass asked for meanwhile (runOnce) ends first: never two at once in one process.
        if (before !== undefined) await before.catch(() => undefined);
        const result = await leasedPass(ctx, shop, state, {});
        await loadMissed();
        return result;
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

  /**
   * The shops' last missed changes as the store keeps them (every pass records its own there first): found
   * before a restart, by another replica or by `cartbridge reconcile`; none once shop/redact erased it.
   */
  async function loadMissed(): Promise<void> {
    try {
      const stored = await opts.store.reconcile.lastMissed();
      for (const [shop, state] of shops) {
        const missed = stored.get(shop);
        if (missed === undefined) delete state.lastMissed;
        else state.lastMissed = missed;
      }
    } catch (error) {
      opts.log.warn({ err: error }, "reading reconciliation's last missed changes failed");
    }
  }

  return {
    start() {
      if (started) return;
      started = true;
      void loadMissed();
      if (opts.intervalMs === 0) return;
      for (const [shop, state] of shops) schedule(shop, state, opts.firstPassDelayMs ?? 0);
    },
    loadMissed,
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
      const running = leasedPass(ctx, shop, state, extra);
      state.running = running;
      try {
        return await running;
      } finally {
        if (state.running === running) state.running = undefined;
      }
    },
    status() {
      return [...shops].map(([shopDomain, s]) => describeShop(shopDomain, s));
    },
    degraded() {
      return [...shops]
        .filter(([, s]) => s.state === "paused")
        .map(([shop, s]) => `reconciliation of ${shop} paused: ${s.pausedReason ?? "unknown reason"}`);
    },
  };
}

function describeShop(shopDomain: string, s: ShopState): ShopReconcileStatus {
  return {
    shopDomain,
    state: s.state,
    ...(s.pausedReason === undefined ? {} : { pausedReason: s.pausedReason }),
    ...(s.lastPassAtMs === undefined ? {} : { lastPassAtMs: s.lastPassAtMs }),
    ...(s.lastPassSummary === undefined ? {} : { lastPassSummary: { ...s.lastPassSummary } }),
    ...(s.lastMissed === undefined ? {} : { lastMissed: { ...s.lastMissed } }),
  };
}
