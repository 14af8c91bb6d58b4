import type { Metrics } from "../metrics.ts";
import type { Readiness } from "../readiness.ts";
import type { Store } from "../store/store.ts";
import type { Intake } from "../sync/intake.ts";
import type { Flusher } from "../sync/flusher.ts";
import type { PortalWatcher } from "../sync/portal-watcher.ts";
import type { Reconciler } from "../sync/reconcile/reconciler.ts";
import type { RequiredPropertyWatch } from "../sync/required-properties.ts";
import type { FollowerLanes } from "./lanes.ts";

/** The parts of a running bridge whose state readiness and the gauges report. */
interface HealthSources {
  readonly store: Store;
  readonly portal: PortalWatcher;
  readonly flusher: Flusher;
  readonly lanes: FollowerLanes;
  readonly requiredCartProperties: RequiredPropertyWatch;
  readonly reconciler: Reconciler | undefined;
  readonly isShuttingDown: () => boolean;
}

/**
 * /readyz: unready while shutting down, when the store does not answer, the portal is unusable or the cart
 * sender is paused; degraded (still ready) when a following lane, a required property or reconciliation is.
 */
export function createReadinessCheck(s: HealthSources): () => Promise<Readiness> {
  return async function readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    if (s.isShuttingDown()) reasons.push("shutting down");
    try {
      await s.store.ping();
    } catch (error) {
      reasons.push(`store unavailable: ${error instanceof Error ? error.message : String(error)}`);
    }
    const portalProblem = s.portal.problem();
    if (portalProblem !== undefined) reasons.push(portalProblem);
    const health = s.flusher.health();
    if (health.state === "paused") reasons.push(health.reason);
    const degraded = [...sendingProblems(s), ...(s.reconciler?.degraded() ?? [])];
    return { ready: reasons.length === 0, reasons, degraded };
  };
}

/**
 * What stops part of the sending while carts flow (readiness's degraded, the console's sender): a following
 * lane refused (contacts, line items), or a required property (HubSpot 2026-09) that refuses only the
 * carts without it — degraded, not unready, so a load balancer keeps taking the webhooks the bridge can store.
 */
export function sendingProblems(s: Pick<HealthSources, "lanes" | "requiredCartProperties">): string[] {
  return [
    s.lanes.contacts?.degraded(),
    s.lanes.lineItems?.degraded(),
    s.requiredCartProperties.problem(),
  ].filter((d) => d !== undefined);
}

/** Before a scrape: the gauges that come from the store, the inbox's backlog and the senders' pauses. */
export function createGaugeRefresh(
  metrics: Metrics,
  s: Pick<HealthSources, "store" | "flusher" | "portal"> & { readonly intake: Pick<Intake, "unapplied"> },
): () => Promise<void> {
  return async function refreshGauges(): Promise<void> {
    // Before the store's read: a store that does not answer must not hide the backlog behind it.
    metrics.unappliedDeliveries.set(s.intake.unapplied());
    const now = Date.now();
    const stats = await s.store.stats(now);
    metrics.pendingCarts.set(stats.pendingCarts);
    metrics.oldestPendingAge.set(
      stats.oldestPendingSinceMs === undefined ? 0 : (now - stats.oldestPendingSinceMs) / 1000,
    );
    metrics.deadLetters.set(stats.deadLetters);
    const health = s.flusher.health();
    for (const cause of ["auth", "daily_limit"] as const) {
      metrics.senderPaused.set({ cause }, health.state === "paused" && health.cause === cause ? 1 : 0);
    }
    metrics.senderPaused.set({ cause: "setup" }, s.portal.problem() === undefined ? 0 : 1);
  };
}
