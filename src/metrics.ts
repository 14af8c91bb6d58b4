import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Every metric cartbridge exports, on its own registry (no global state). */
export interface Metrics {
  readonly registry: Registry;
  readonly webhooksReceived: Counter<"topic" | "outcome">;
  readonly webhookDuration: Histogram<"status">;
  readonly groupCommitSize: Histogram;
  readonly groupCommitDuration: Histogram;
  readonly hubspotRequests: Counter<"operation" | "status">;
  readonly hubspotRequestDuration: Histogram<"operation">;
  readonly batchSize: Histogram;
  readonly rateLimitWaits: Counter;
  readonly rateLimitWaitSeconds: Counter;
  readonly deadLettersCreated: Counter<"source">;
  readonly droppedValues: Counter<"property" | "reason">;
  readonly pendingCarts: Gauge;
  readonly unappliedDeliveries: Gauge;
  readonly oldestPendingAge: Gauge;
  readonly deadLetters: Gauge;
  readonly senderPaused: Gauge<"cause">;
}

export function createMetrics(opts: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    webhooksReceived: new Counter({
      name: "webhooks_received_total",
      help: "Webhook deliveries by topic and outcome",
      labelNames: ["topic", "outcome"] as const,
      registers,
    }),
    webhookDuration: new Histogram({
      name: "webhook_response_duration_seconds",
      help: "Time from request start to the answer, by status code",
      labelNames: ["status"] as const,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    groupCommitSize: new Histogram({
      name: "store_group_commit_deliveries",
      help: "Deliveries committed together in one transaction (a group commit, or a batch applied from the SQLite inbox)",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers,
    }),
    groupCommitDuration: new Histogram({
      name: "store_group_commit_duration_seconds",
      help: "Time one group commit (or one batch applied from the SQLite inbox) took",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    hubspotRequests: new Counter({
      name: "hubspot_requests_total",
      help: "HubSpot API requests by operation and answer status (error = no answer)",
      labelNames: ["operation", "status"] as const,
      registers,
    }),
    hubspotRequestDuration: new Histogram({
      name: "hubspot_request_duration_seconds",
      help: "HubSpot API request time",
      labelNames: ["operation"] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    batchSize: new Histogram({
      name: "hubspot_batch_inputs",
      help: "Inputs per cart upsert request",
      buckets: [1, 5, 10, 25, 50, 75, 100],
      registers,
    }),
    rateLimitWaits: new Counter({
      name: "hubspot_rate_limit_waits_total",
      help: "Times a sender (carts, contacts, line items: each counts its own) waited because the rate budget was spent or HubSpot answered 429 (not the even spacing of sends)",
      registers,
    }),
    rateLimitWaitSeconds: new Counter({
      name: "hubspot_rate_limit_wait_seconds_total",
      help: "Time the senders waited (each its own) because the rate budget was spent or HubSpot answered 429",
      registers,
    }),
    deadLettersCreated: new Counter({
      name: "dead_letters_created_total",
      help: "Dead letters created, by source (mapping, hubspot)",
      labelNames: ["source"] as const,
      registers,
    }),
    droppedValues: new Counter({
      name: "hubspot_property_values_dropped_total",
      help: "Property values left out because the portal would reject them",
      labelNames: ["property", "reason"] as const,
      registers,
    }),
    pendingCarts: new Gauge({
      name: "carts_pending",
      help: "Carts changed but not yet in HubSpot",
      registers,
    }),
    unappliedDeliveries: new Gauge({
      name: "webhook_deliveries_unapplied",
      help: "Deliveries accepted into the SQLite inbox and not yet applied to the store (0 on PostgreSQL, where the answer waits for the commit)",
      registers,
    }),
    oldestPendingAge: new Gauge({
      name: "carts_oldest_pending_age_seconds",
      help: "Age of the oldest change not yet in HubSpot",
      registers,
    }),
    deadLetters: new Gauge({ name: "dead_letters", help: "Dead letters held", registers }),
    senderPaused: new Gauge({
      name: "hubspot_sender_paused",
      help: "1 while sending is paused, by cause (auth, daily_limit, setup)",
      labelNames: ["cause"] as const,
      registers,
    }),
  };
}
