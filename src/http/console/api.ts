import express, { type Router } from "express";
import {
  noActivity,
  type ActivityQueries,
  type CartRecord,
  type ShopActivity,
} from "../../store/activity.ts";
import { describeDeadLetter, type Store } from "../../store/store.ts";
import type { SenderHealth } from "../../sync/lane-types.ts";
import { maskEmails } from "../../redact-text.ts";
import { maskDeliveryBody } from "./mask.ts";
import type { RecentErrors } from "./recent-errors.ts";
import type { RefusalCounter } from "./refusals.ts";

/** Reconciliation's state per shop, as h13's reconciler reports it (wired in by service.ts when present). */
export interface ReconcileShopStatus {
  readonly shopDomain: string;
  readonly state: "idle" | "running" | "paused";
  readonly pausedReason?: string;
  readonly lastPassAtMs?: number;
  readonly lastPassSummary?: { read: number; changed: number; missed: number; skipped: number };
  readonly lastMissed?: {
    topic: "checkouts" | "orders";
    cartKey: string;
    updatedAtMs: number;
    foundAtMs: number;
  };
}
export type ReconcileStatusProvider = () => readonly ReconcileShopStatus[];

/** What the console's JSON routes read besides the store. */
export interface ConsoleDeps {
  readonly sender: () => SenderHealth;
  /** What stops part of the sending while carts flow: a following lane refused, a required property. */
  readonly sendingProblems?: () => readonly string[];
  /** The configured budget (requests per 10 s) and how many of its slots are taken now. */
  readonly budget: () => { maxPer10s: number; inUse: number };
  readonly refusals: RefusalCounter;
  readonly recentErrors: RecentErrors;
  readonly reconcileStatus?: ReconcileStatusProvider;
  readonly trustProxy: boolean;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/**
 * The console's data, as JSON, for the page and for scripts alike (README "Admin API"):
 * GET /admin/overview, GET /admin/dead-letters/:id (personal data masked), GET /admin/carts?q=<key|token>.
 * Mounted after the admin authorisation.
 */
export function consoleApiRouter(store: Store, deps: ConsoleDeps): Router {
  const router = express.Router();
  const activity = (): ActivityQueries => {
    if (store.activity === undefined) throw new Error("this store keeps no console activity");
    return store.activity;
  };

  router.get("/admin/overview", async (_req, res) => {
    res.json(await overview(store, activity(), deps, Date.now()));
  });

  router.get("/admin/dead-letters/:id", async (req, res) => {
    const id = /^\d{1,15}$/.test(req.params.id) ? Number(req.params.id) : undefined;
    const [letter] = id === undefined ? [] : await store.getDeadLetters([id]);
    if (letter === undefined) {
      res.status(404).json({ error: "no such dead letter" });
      return;
    }
    res.json({
      ...describeDeadLetter(letter),
      headers: letter.headers,
      body: maskDeliveryBody(letter.body),
    });
  });

  router.get("/admin/carts", async (req, res) => {
    const q = typeof req.query["q"] === "string" ? req.query["q"].trim() : "";
    if (q === "" || q.length > 512) {
      res.status(400).json({ error: "give a cart key (<shop>:<token>) or a token as ?q=" });
      return;
    }
    const carts = await activity().findCarts(q);
    res.json({ carts: carts.map(describeCart) });
  });

  return router;
}

/** GET /admin/overview: totals, refusals, the sender, and every shop with its activity and reconciliation. */
async function overview(
  store: Store,
  activity: ActivityQueries,
  deps: ConsoleDeps,
  nowMs: number,
): Promise<object> {
  const [shops, stats, reasons] = await Promise.all([
    activity.shops(nowMs),
    store.stats(nowMs),
    activity.deadLetterReasons(),
  ]);
  const reconcile = new Map((deps.reconcileStatus?.() ?? []).map((r) => [r.shopDomain, r]));
  const refusals = deps.refusals.counts(nowMs);
  return {
    generatedAt: iso(nowMs),
    totals: {
      pendingCarts: stats.pendingCarts,
      oldestPendingAgeSeconds:
        stats.oldestPendingSinceMs === undefined
          ? null
          : Math.round((nowMs - stats.oldestPendingSinceMs) / 1000),
      deadLetters: stats.deadLetters,
      carts: stats.carts,
    },
    refusals: { lastHour: refusals.lastHour, lastDay: refusals.lastDay, lastAt: iso(refusals.lastAtMs) },
    sender: {
      ...deps.sender(),
      problems: deps.sendingProblems?.() ?? [],
      budget: deps.budget(),
      recentErrors: deps.recentErrors
        .list()
        .map((e) => ({ at: iso(e.atMs), operation: e.operation, status: e.status })),
    },
    reconciliation: deps.reconcileStatus === undefined ? "not configured" : "configured",
    deadLetterReasons: reasons,
    // A shop reconciliation reads but no webhook reached yet is listed too: that is the broken case.
    shops: [
      ...shops,
      ...[...reconcile.keys()]
        .filter((shop) => !shops.some((s) => s.shopDomain === shop))
        .map((shopDomain) => noActivity(shopDomain)),
    ].map((s) => describeShop(s, reconcile.get(s.shopDomain), nowMs)),
  };
}

function describeShop(s: ShopActivity, r: ReconcileShopStatus | undefined, nowMs: number): object {
  return {
    shopDomain: s.shopDomain,
    lastDeliveryByTopic: Object.fromEntries(
      Object.entries(s.lastDeliveryByTopic).map(([topic, ms]) => [topic, iso(ms)]),
    ),
    deliveriesLastHour: s.deliveriesLastHour,
    deliveriesLastDay: s.deliveriesLastDay,
    pendingCarts: s.pendingCarts,
    oldestPendingAgeSeconds:
      s.oldestPendingSinceMs === undefined ? null : Math.round((nowMs - s.oldestPendingSinceMs) / 1000),
    deadLetters: s.deadLetters,
    reconciliation: r === undefined ? null : describeReconcile(r),
  };
}

function describeReconcile(r: ReconcileShopStatus): object {
  return {
    state: r.state,
    pausedReason: r.pausedReason ?? null,
    lastPassAt: iso(r.lastPassAtMs),
    lastPassSummary: r.lastPassSummary ?? null,
    lastMissed:
      r.lastMissed === undefined
        ? null
        : { ...r.lastMissed, updatedAt: iso(r.lastMissed.updatedAtMs), foundAt: iso(r.lastMissed.foundAtMs) },
  };
}

/** A cart as the lookup shows it: each property with the time of the event that set it. */
export function describeCart(c: CartRecord): object {
  return {
    key: c.key,
    shopDomain: c.shopDomain,
    status: c.state.status,
    pending: c.pendingSinceMs !== undefined,
    pendingSince: iso(c.pendingSinceMs),
    version: c.version,
    sentVersion: c.syncedVersion,
    lastSentAt: iso(c.lastSentAtMs),
    attempts: c.attempts,
    nextAttemptAt: iso(c.nextAttemptAtMs),
    lastError: c.lastError === undefined ? null : maskEmails(c.lastError),
    hubspotId: c.hubspotId ?? null,
    updatedAt: iso(c.updatedAtMs),
    properties: Object.entries(c.state.properties)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, p]) => ({
        name,
        value: p.value,
        eventTime: iso(p.stamp.timeMs),
        webhookId: p.stamp.webhookId,
      })),
  };
}
