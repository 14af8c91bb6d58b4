import type { Server } from "node:http";
import type { Logger } from "pino";
import type { Config } from "./config.ts";
import { createApp } from "./http/app.ts";
import { isErrorStatus, createRecentErrors, type RecentErrors } from "./http/console/recent-errors.ts";
import { createRefusalCounter } from "./http/console/refusals.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import type { Readiness } from "./readiness.ts";
import { setUpReconciliation } from "./reconcile-setup.ts";
import { createGaugeRefresh, createReadinessCheck, sendingProblems } from "./service/health.ts";
import { connectHubSpot, type HubSpotConnection } from "./service/hubspot.ts";
import { createFollowerLanes, type FollowerLanes } from "./service/lanes.ts";
import { closeServer, listen } from "./service/listen.ts";
import { startIntake } from "./service/intake.ts";
import { startPurging } from "./service/purge.ts";
import { createSenderObserver } from "./service/sender-observer.ts";
import { openStore } from "./store/open.ts";
import type { Store } from "./store/store.ts";
import { createFlusher, type Flusher } from "./sync/flusher.ts";
import { DEFAULT_TIMINGS, type PauseTimings, type SenderObserver } from "./sync/lane-types.ts";
import type { CartEvent } from "./sync/cart-event.ts";
import type { InboxIntakeOptions } from "./sync/inbox-intake.ts";
import type { Intake } from "./sync/intake.ts";
import { takeSlot } from "./sync/pacing.ts";
import { createPortalWatcher, type PortalWatcher } from "./sync/portal-watcher.ts";
import { handlePrivacyDelivery } from "./sync/privacy.ts";
import { createLinkLearner, type LinkLearner } from "./sync/reconcile/link-learner.ts";
import type { Reconciler } from "./sync/reconcile/reconciler.ts";
import { replayDeadLetters } from "./sync/replay.ts";
import { createRequiredPropertyWatch, type RequiredPropertyWatch } from "./sync/required-properties.ts";

/**
 * The service: the one place that wires the bridge together and the only module that imports http/.
 * `startService` reads top to bottom: store and metrics, HubSpot, the cart sender and the lanes that
 * follow it, reconciliation, the HTTP app, listen, start. Its parts live in service/ (one concern each).
 */

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

export interface ServiceOptions {
  readonly host?: string;
  /** Shorter pauses and timeouts for tests; production uses the defaults. */
  readonly timings?: Partial<PauseTimings>;
  readonly hubspotTimeoutMs?: number;
  /** The inbox's batching (tests hold deliveries back to see what waits for them). */
  readonly intake?: Pick<InboxIntakeOptions, "applyDelayMs">;
}

export async function startService(config: Config, log: Logger, opts: ServiceOptions = {}): Promise<Service> {
  const store = await openStore(config.databaseUrl, { server: true });
  const metrics = createMetrics();
  const hubspot = connectHubSpot(config, store, opts.hubspotTimeoutMs);
  const senders = createSenders(config, log, opts, { store, metrics, hubspot });
  const { portal, flusher, lanes } = senders;
  const { reconciler, links } = setUpReconcileParts(config, log, { store, metrics, flusher });
  // A SQLite file's inbox applies what a crash left in it here, before the bridge listens.
  const intake = await startIntake(config, log, opts.intake ?? {}, {
    store,
    metrics,
    onChanged: () => flusher.wake(),
    ...(links === undefined ? {} : { onCheckoutEvent: (event: CartEvent) => links.learn(event) }),
  });
  let shuttingDown = false;
  const isShuttingDown = (): boolean => shuttingDown;
  const health = { ...senders, store, reconciler };
  const readiness = createReadinessCheck({ ...health, isShuttingDown });
  const app = buildApp(config, log, {
    store,
    metrics,
    hubspot,
    flusher,
    reconciler,
    intake,
    readiness,
    isShuttingDown,
    recentErrors: senders.recentErrors,
    sendingProblems: () => sendingProblems(senders),
    refreshGauges: createGaugeRefresh(metrics, { ...health, intake }),
  });

  const { server, url, port } = await listen(app, config.port, opts.host ?? "0.0.0.0");
  portal.start();
  flusher.start();
  lanes.contacts?.start();
  reconciler?.start();
  lanes.lineItems?.start();
  const stopPurging = startPurging(store, config.deliveryRetentionDays, log);
  log.info({ port, store: config.databaseUrl.split(":")[0] }, "cartbridge started");

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
        stopPurging();
        // In-flight requests finish (their commits land); then the sender drains what is pending.
        await closeServer(server);
        await intake.close();
        await reconciler?.stop();
        await links?.stop();
        await flusher.stop({ deadlineMs: drainMs });
        await lanes.contacts?.stop();
        await lanes.lineItems?.stop();
        portal.stop();
        await hubspot.client.close();
        await store.close();
        log.info({}, "cartbridge stopped");
      })();
      return stopping;
    },
  };
}

/** The cart sender, the portal watch it depends on, the lanes that follow it, and what they report to. */
interface Senders {
  readonly portal: PortalWatcher;
  readonly flusher: Flusher;
  readonly lanes: FollowerLanes;
  readonly requiredCartProperties: RequiredPropertyWatch;
  /** The console's list of failed HubSpot requests (fed by the senders' observer). */
  readonly recentErrors: RecentErrors;
}

function createSenders(
  config: Config,
  log: Logger,
  opts: ServiceOptions,
  { store, metrics, hubspot }: { store: Store; metrics: Metrics; hubspot: HubSpotConnection },
): Senders {
  const { client, budget } = hubspot;
  const recentErrors = createRecentErrors();
  const requiredCartProperties = createRequiredPropertyWatch({ objectType: "carts", log });
  let wakeFollowers = (): void => {};
  const senderObserver: SenderObserver = createSenderObserver({
    metrics,
    onRequest: (operation, status) => {
      if (isErrorStatus(status)) recentErrors.record({ atMs: Date.now(), operation, status });
    },
    requiredCartProperties,
    afterCartsSent: () => wakeFollowers(),
  });
  let onPortalChange = (): void => {};
  const portal = createPortalWatcher({
    client,
    idProperty: config.hubspotCartIdProperty,
    log,
    onChange: () => onPortalChange(),
    beforeRequest: () => takeSlot(budget, Date.now),
    observer: senderObserver,
  });
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
  const timings = { ...DEFAULT_TIMINGS, ...opts.timings };
  const lanes = createFollowerLanes(config, {
    store,
    client,
    budget,
    log,
    observer: senderObserver,
    timings,
  });
  wakeFollowers = () => {
    lanes.contacts?.wake();
    lanes.lineItems?.wake();
  };
  return { portal, flusher, lanes, requiredCartProperties, recentErrors };
}

/** Reconciliation (undefined without a configured shop) and the checkout links it learns from webhooks. */
function setUpReconcileParts(
  config: Config,
  log: Logger,
  { store, metrics, flusher }: { store: Store; metrics: Metrics; flusher: Flusher },
): { reconciler: Reconciler | undefined; links: LinkLearner | undefined } {
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
  return { reconciler, links };
}

/** What the HTTP app needs from the running parts. */
interface AppParts {
  readonly store: Store;
  readonly metrics: Metrics;
  readonly hubspot: HubSpotConnection;
  readonly flusher: Flusher;
  readonly reconciler: Reconciler | undefined;
  readonly intake: Intake;
  readonly recentErrors: RecentErrors;
  /** What stops part of the sending while carts flow (the console's sender tile). */
  readonly sendingProblems: () => readonly string[];
  readonly readiness: () => Promise<Readiness>;
  readonly isShuttingDown: () => boolean;
  readonly refreshGauges: () => Promise<void>;
}

/** The HTTP app (webhooks, health, admin and its console) over the running parts; no listening. */
function buildApp(config: Config, log: Logger, p: AppParts): ReturnType<typeof createApp> {
  const { store, metrics, flusher, reconciler, readiness } = p;
  const replay = (ids: readonly number[]) =>
    replayDeadLetters(store, ids, {
      nowMs: Date.now(),
      syncContacts: config.hubspotSyncContacts,
      syncLineItems: config.hubspotSyncLineItems,
      onChanged: () => flusher.wake(),
    });
  return createApp({
    webhooks: {
      secrets: config.shopifyWebhookSecrets,
      maxBodyBytes: config.maxBodyBytes,
      intake: p.intake,
      metrics,
      log,
      isShuttingDown: p.isShuttingDown,
      handleOther: (delivery) => handlePrivacyDelivery(store, log, delivery),
    },
    admin: {
      adminToken: config.adminToken,
      store,
      replay,
      console: {
        sender: () => flusher.health(),
        sendingProblems: p.sendingProblems,
        budget: () => ({
          maxPer10s: config.hubspotMaxRequestsPer10s,
          inUse: Math.max(0, config.hubspotMaxRequestsPer10s - p.hubspot.budget.available(Date.now())),
        }),
        refusals: createRefusalCounter(),
        recentErrors: p.recentErrors,
        trustProxy: config.adminTrustProxy,
        ...(reconciler === undefined ? {} : { reconcileStatus: () => reconciler.status() }),
      },
      settle: (withinMs) => p.intake.settle(withinMs),
      status: async () => ({
        ...(await store.stats(Date.now())),
        sender: flusher.health(),
        reconciliation: reconciler?.status() ?? [],
        readiness: await readiness(),
      }),
    },
    readiness,
    beforeScrape: p.refreshGauges,
    metrics,
    log,
  });
}
