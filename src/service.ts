import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Config } from "./config.ts";
import { createHubSpotClient, type HubSpotClient } from "./hubspot/client.ts";
import { createApp } from "./http/app.ts";
import { isErrorStatus, createRecentErrors } from "./http/console/recent-errors.ts";
import { createRefusalCounter } from "./http/console/refusals.ts";
import type { Readiness } from "./http/health.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createGroupCommitter } from "./store/group-commit.ts";
import { openStore } from "./store/open.ts";
import type { Store } from "./store/store.ts";
import { createContactSender, type ContactSender } from "./sync/contact-sender.ts";
import { startLineItemLane, type LineItemLane } from "./sync/line-item-lane.ts";
import { createFlusher, type Flusher } from "./sync/flusher.ts";
import { DEFAULT_TIMINGS, type PauseTimings, type SenderObserver } from "./sync/lane-types.ts";
import { handlePrivacyDelivery } from "./sync/privacy.ts";
import { createPortalWatcher, type PortalWatcher } from "./sync/portal-watcher.ts";
import { takeSlot } from "./sync/pacing.ts";
import { createRateBudget, type SharedSlots } from "./sync/rate-budget.ts";
import { replayDeadLetters } from "./sync/replay.ts";
import { setUpReconciliation } from "./reconcile-setup.ts";
import type { Reconciler } from "./sync/reconcile/reconciler.ts";
import { createLinkLearner } from "./sync/reconcile/link-learner.ts";
import type { CartEvent } from "./sync/cart-event.ts";
import { createRequiredPropertyWatch } from "./sync/required-properties.ts";

/** A running bridge: HTTP server, store, flusher. `stop()` is the SIGTERM path. */
export interface Service {
  readonly url: string;
  readonly server: Server;
  readonly store: Store;
  readonly flusher: Flusher;
  readonly portal: PortalWatcher;
  readonly metrics: Metrics;
  /** Undefined when no shop is configured for reconciliation. */
  readonly reconciler: Reconciler | undefined;
  readiness(): Promise<Readiness>;
  /** Stop accepting, finish in-flight requests, send what is pending within `drainMs`, close. */
  stop(opts?: { drainMs?: number }): Promise<void>;
}

const PURGE_EVERY_MS = 60 * 60_000;

export interface ServiceOptions {
  readonly host?: string;
  /** Shorter pauses and timeouts for tests; production uses the defaults. */
  readonly timings?: Partial<PauseTimings>;
  readonly hubspotTimeoutMs?: number;
}

export async function startService(config: Config, log: Logger, opts: ServiceOptions = {}): Promise<Service> {
  const store = await openStore(config.databaseUrl, { server: true });
  const metrics = createMetrics();
  const client: HubSpotClient = createHubSpotClient({
    baseUrl: config.hubspotBaseUrl,
    accessToken: config.hubspotAccessToken,
    apiVersion: config.hubspotApiVersion,
    // A request must end well within the claim lease (renewed every third of it).
    headersTimeoutMs: opts.hubspotTimeoutMs ?? 20_000,
    bodyTimeoutMs: opts.hubspotTimeoutMs ?? 20_000,
  });
  // Replicas on PostgreSQL share one budget through the store; SQLite serves one instance.
  const shared: SharedSlots | undefined = store.takeRateSlot?.bind(store);
  const budget = createRateBudget({
    maxRequests: config.hubspotMaxRequestsPer10s,
    ...(shared === undefined
      ? {}
      : { shared: (now: number, max: number, windowMs: number) => shared(now, max, windowMs) }),
  });
  let onPortalChange = (): void => {};
  const portal = createPortalWatcher({
    client,
    idProperty: config.hubspotCartIdProperty,
    log,
    onChange: () => onPortalChange(),
    beforeRequest: () => takeSlot(budget, Date.now),
  });
  let shuttingDown = false;

  let contactSender: ContactSender | undefined;
  const recentErrors = createRecentErrors();
  const requiredCartProperties = createRequiredPropertyWatch({ objectType: "carts", log });
  let lineItemLane: LineItemLane | undefined;
  const senderObserver: SenderObserver = {
    request(operation, status, seconds, size) {
      if (isErrorStatus(status)) recentErrors.record({ atMs: Date.now(), operation, status });
      metrics.hubspotRequests.inc({ operation, status });
      metrics.hubspotRequestDuration.observe({ operation }, seconds);
      if (operation === "carts_upsert") metrics.batchSize.observe(size);
    },
    rateLimitWait(ms) {
      metrics.rateLimitWaits.inc();
      metrics.rateLimitWaitSeconds.inc(ms / 1000);
    },
    deadLettered(count, reasons) {
      metrics.deadLettersCreated.inc({ source: "hubspot" }, count);
      requiredCartProperties.rejected(reasons ?? []);
    },
    droppedValue(d) {
      metrics.droppedValues.inc({ property: d.property, reason: d.reason });
    },
    sent() {
      requiredCartProperties.sent();
      contactSender?.wake();
      lineItemLane?.wake();
    },
  };

  const flusher = createFlusher({
    store,
    client,
    budget,
    idProperty: config.hubspotCartIdProperty,
    flushIntervalMs: config.flushIntervalMs,
    portal: () => portal.current(),
    onSetupProblem: () => void portal.refresh(),
    ...(opts.timings === undefined ? {} : { timings: opts.timings }),
    log,
    observer: senderObserver,
    leaseMs: config.claimLeaseMs,
  });

  onPortalChange = () => flusher.resume();
  if (config.hubspotSyncContacts) {
    contactSender = createContactSender({
      store,
      client,
      budget,
      log,
      observer: senderObserver,
      intervalMs: config.flushIntervalMs,
      // Two requests (upsert, associate) per claim and no renewal: a longer lease.
      leaseMs: config.claimLeaseMs * 3,
      timings: { ...DEFAULT_TIMINGS, ...opts.timings },
    });
  }

  const reconciler = setUpReconciliation({
    config: config.reconcile,
    store,
    log,
    syncContacts: config.hubspotSyncContacts,
    registry: metrics.registry,
    onChanged: () => flusher.wake(),
  });
  const links =
    reconciler === undefined
      ? undefined
      : createLinkLearner({
          store: store.reconcile,
          onError: (err) => log.warn({ err }, "checkout links not saved"),
        });
  if (config.hubspotSyncLineItems) {
    lineItemLane = startLineItemLane({
      store,
      client,
      budget,
      log,
      observer: senderObserver,
      idProperty: config.hubspotLineItemIdProperty,
      intervalMs: config.flushIntervalMs,
      leaseMs: config.claimLeaseMs * 3,
      timings: { ...DEFAULT_TIMINGS, ...opts.timings },
    });
  }

  const committer = createGroupCommitter(store, {
    onCommit(size, seconds) {
      metrics.groupCommitSize.observe(size);
      metrics.groupCommitDuration.observe(seconds);
    },
  });

  async function readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    if (shuttingDown) reasons.push("shutting down");
    try {
      await store.ping();
    } catch (error) {
      reasons.push(`store unavailable: ${error instanceof Error ? error.message : String(error)}`);
    }
    const portalProblem = portal.problem();
    if (portalProblem !== undefined) reasons.push(portalProblem);
    const health = flusher.health();
    if (health.state === "paused") reasons.push(health.reason);
    const contacts = contactSender?.degraded();
    const lines = lineItemLane?.degraded();
    // A required property (HubSpot 2026-09) refuses only the carts without it: degraded, not unready, so a
    // load balancer keeps taking the webhooks the bridge can store.
    const required = requiredCartProperties.problem();
    const degraded = [
      ...[contacts, lines, required].filter((d) => d !== undefined),
      ...(reconciler?.degraded() ?? []),
    ];
    return { ready: reasons.length === 0, reasons, degraded };
  }

  async function refreshGauges(): Promise<void> {
    const now = Date.now();
    const stats = await store.stats(now);
    metrics.pendingCarts.set(stats.pendingCarts);
    metrics.oldestPendingAge.set(
      stats.oldestPendingSinceMs === undefined ? 0 : (now - stats.oldestPendingSinceMs) / 1000,
    );
    metrics.deadLetters.set(stats.deadLetters);
    const health = flusher.health();
    for (const cause of ["auth", "daily_limit"] as const) {
      metrics.senderPaused.set({ cause }, health.state === "paused" && health.cause === cause ? 1 : 0);
    }
    metrics.senderPaused.set({ cause: "setup" }, portal.problem() === undefined ? 0 : 1);
  }

  const replay = (ids: readonly number[]) =>
    replayDeadLetters(store, ids, {
      nowMs: Date.now(),
      syncContacts: config.hubspotSyncContacts,
      syncLineItems: config.hubspotSyncLineItems,
      onChanged: () => flusher.wake(),
    });

  const app = createApp({
    webhooks: {
      secrets: config.shopifyWebhookSecrets,
      maxBodyBytes: config.maxBodyBytes,
      committer,
      metrics,
      log,
      onChanged: () => flusher.wake(),
      isShuttingDown: () => shuttingDown,
      ...(links === undefined ? {} : { onCheckoutEvent: (event: CartEvent) => links.learn(event) }),
      syncContacts: config.hubspotSyncContacts,
      syncLineItems: config.hubspotSyncLineItems,
      handleOther: (delivery) => handlePrivacyDelivery(store, log, delivery),
    },
    admin: {
      adminToken: config.adminToken,
      store,
      replay,
      console: {
        sender: () => flusher.health(),
        budget: () => ({
          maxPer10s: config.hubspotMaxRequestsPer10s,
          inUse: Math.max(0, config.hubspotMaxRequestsPer10s - budget.available(Date.now())),
        }),
        refusals: createRefusalCounter(),
        recentErrors,
        trustProxy: config.adminTrustProxy,
        ...(reconciler === undefined ? {} : { reconcileStatus: () => reconciler.status() }),
      },
      status: async () => ({
        ...(await store.stats(Date.now())),
        sender: flusher.health(),
        reconciliation: reconciler?.status() ?? [],
        readiness: await readiness(),
      }),
    },
    readiness,
    beforeScrape: refreshGauges,
    metrics,
    log,
  });

  // Shopify allows 5 s per delivery: a request (headers and body) slower than 10 s is not Shopify and is cut
  // off, checked every second, so trickled bodies cannot hold connections open.
  const server = createServer(
    {
      requestTimeout: 10_000,
      headersTimeout: 5_000,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 65_000,
    },
    app,
  );
  server.maxHeadersCount = 200;
  // A socket silent for 2 minutes (one that never sent a request, say) is closed.
  server.timeout = 120_000;
  server.listen(config.port, opts.host ?? "0.0.0.0");
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  const url = `http://${address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address}:${address.port}`;

  portal.start();
  flusher.start();
  contactSender?.start();
  reconciler?.start();
  lineItemLane?.start();
  const purge = async (): Promise<void> => {
    try {
      const removed = await store.purgeExpired(Date.now() - config.deliveryRetentionDays * 86_400_000);
      if (removed > 0) log.info({ removed }, "expired deliveries and dead letters purged");
    } catch (error) {
      log.warn({ err: error }, "purge failed");
    }
  };
  void purge();
  const purgeTimer = setInterval(() => void purge(), PURGE_EVERY_MS);
  purgeTimer.unref();
  log.info({ port: address.port, store: config.databaseUrl.split(":")[0] }, "cartbridge started");

  let stopping: Promise<void> | undefined;
  return {
    url,
    server,
    store,
    flusher,
    portal,
    metrics,
    reconciler,
    readiness,
    stop({ drainMs = 10_000 } = {}) {
      stopping ??= (async () => {
        shuttingDown = true;
        clearInterval(purgeTimer);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // In-flight requests finish (their commits land); then the sender drains what is pending.
        await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
        server.closeAllConnections();
        await committer.drain();
        await reconciler?.stop();
        await links?.stop();
        await flusher.stop({ deadlineMs: drainMs });
        await contactSender?.stop();
        await lineItemLane?.stop();
        portal.stop();
        await client.close();
        await store.close();
        log.info({}, "cartbridge stopped");
      })();
      return stopping;
    },
  };
}
