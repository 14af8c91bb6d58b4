/**
 * Wiring of reconciliation (SPEC §9) for service.ts and the CLI: the Admin client, the metrics and the
 * reconciler, from configuration. Undefined when no shop is configured (webhooks alone).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Counter, type Registry } from "prom-client";
import type { ReconcileConfig } from "./config-reconcile.ts";
import { createShopifyAdmin } from "./shopify/admin-client.ts";
import type { Store } from "./store/store.ts";
import { createReconciler, type Reconciler, type ReconcilerLog } from "./sync/reconcile/reconciler.ts";

export function setUpReconciliation(opts: {
  readonly config: ReconcileConfig;
  readonly store: Pick<Store, "ingestBatch" | "reconcile">;
  readonly log: ReconcilerLog;
  readonly syncContacts: boolean;
  readonly registry?: Registry;
  readonly onChanged?: () => void;
  /** Shops to serve instead of all configured ones (the CLI's --shop). */
  readonly onlyShop?: string;
}): Reconciler | undefined {
  const c = opts.config;
  const admin = createShopifyAdmin({
    apiVersion: c.apiVersion,
    adminApiUrl: c.adminApiUrl,
    shops: c.shops,
    adminTokens: c.adminTokens,
    clientId: c.clientId,
    clientSecret: c.clientSecret,
  });
  if (admin.shops.length === 0) return undefined;
  const registers = opts.registry === undefined ? [] : [opts.registry];
  const missed = new Counter({
    name: "reconcile_missed_total",
    help: "Changes reconciliation found that webhooks had not brought (older than 10 minutes), by topic",
    labelNames: ["topic"] as const,
    registers,
  });
  const passes = new Counter({
    name: "reconcile_passes_total",
    help: "Reconciliation passes by outcome",
    labelNames: ["outcome"] as const,
    registers,
  });
  for (const topic of ["checkouts", "orders"]) missed.inc({ topic }, 0);
  return createReconciler({
    admin: opts.onlyShop === undefined ? admin : { ...admin, shops: [opts.onlyShop] },
    store: opts.store,
    intervalMs: c.intervalMs,
    lookbackDays: c.lookbackDays,
    syncContacts: opts.syncContacts,
    owner: `${hostname()}:${process.pid}:${randomUUID()}`,
    log: opts.log,
    ...(opts.onChanged === undefined ? {} : { onChanged: opts.onChanged }),
    onMissed: (topic) => missed.inc({ topic }),
    onPass: (outcome) => passes.inc({ outcome }),
  });
}
