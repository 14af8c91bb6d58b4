import type { IngestItem } from "../../store/store.ts";
import type { MissedChange, ReconcileSource } from "../../store/reconcile-store.ts";
import { mapAbandonedCheckout, mapOrder, tokenFromCheckoutUrl, type ReconciledDelivery } from "./map.ts";
import type { AbandonedCheckoutNode, OrderNode } from "./map.ts";
import type { PassDeps, PassSummary } from "./pass.ts";

/** A change found this much older than now, that the store did not have, was missed by webhooks. */
export const MISSED_AFTER_MS = 10 * 60_000;

/**
 * One page of Admin API nodes into the store: map each node (checkouts find their cart token through the
 * links learned from webhooks), ingest them in one batch like webhooks, count what was read, changed,
 * skipped and missed (see pass.ts), and wake the sender when something changed.
 */
export async function ingestPage(
  deps: PassDeps,
  shop: string,
  source: ReconcileSource,
  nodes: readonly unknown[],
  summary: PassSummary,
): Promise<void> {
  let deliveries: ReconciledDelivery[];
  if (source === "checkouts") {
    const checkouts = nodes as readonly AbandonedCheckoutNode[];
    const checkoutTokens = checkouts
      .map((n) => tokenFromCheckoutUrl(n.abandonedCheckoutUrl))
      .filter((t) => t?.kind === "checkout")
      .map((t) => t?.token ?? "");
    const links =
      checkoutTokens.length === 0
        ? new Map<string, string>()
        : await deps.store.reconcile.cartTokensOf(shop, checkoutTokens);
    deliveries = checkouts.map((n) => mapAbandonedCheckout(shop, n, (token) => links.get(token)));
  } else {
    deliveries = (nodes as readonly OrderNode[]).map((n) => mapOrder(shop, n));
  }
  summary.read += nodes.length;
  const nowMs = deps.now();
  const items: IngestItem[] = [];
  for (const d of deliveries) {
    let mapped = d.mapped;
    if (mapped.kind !== "event") {
      summary.skipped += 1;
      continue;
    }
    if (!deps.syncContacts && mapped.event.contact !== undefined) {
      const { contact: _dropped, ...event } = mapped.event;
      mapped = { ...mapped, event };
    }
    items.push({
      webhookId: undefined,
      topic: d.topic,
      shopDomain: shop,
      receivedAtMs: nowMs,
      headers: { "x-cartbridge-source": "reconciliation" },
      body: d.body,
      mapped,
      reconciled: true,
    });
  }
  if (items.length === 0) return;
  const outcomes = await deps.store.ingestBatch(items);
  let changed = false;
  let lastMissed: MissedChange | undefined;
  for (const [i, outcome] of outcomes.entries()) {
    if (outcome !== "applied") continue;
    changed = true;
    summary.changed += 1;
    const item = items[i];
    if (item?.mapped.kind !== "event") continue;
    const updatedAtMs = item.mapped.event.stamp.timeMs;
    if (updatedAtMs < nowMs - MISSED_AFTER_MS) {
      summary.missed += 1;
      lastMissed = { topic: source, cartKey: item.mapped.event.key, updatedAtMs, foundAtMs: nowMs };
      deps.onMissed?.({ shopDomain: shop, ...lastMissed });
    }
  }
  // Kept in the store: a restart, another replica and `cartbridge reconcile` all show it (SPEC §9). The page
  // is ingested already and the metric counted it: a store that fails here does not fail the pass (it is
  // logged, and the reconciler's status still shows the change until the next periodic read).
  if (lastMissed !== undefined)
    await deps.store.reconcile
      .recordMissed(shop, lastMissed)
      .catch((error: unknown) =>
        deps.onError?.(error, "recording reconciliation's last missed change failed"),
      );
  if (changed) deps.onChanged?.();
}
