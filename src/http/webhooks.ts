import express, { type Request, type RequestHandler, type Router } from "express";
import type { Logger } from "pino";
import type { Metrics } from "../metrics.ts";
import { headersToKeep, headerValue, SHOPIFY_HEADERS } from "../shopify/headers.ts";
import { verifyShopifyHmac } from "../shopify/verify.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { IngestOutcome } from "../store/store.ts";
import type { CartEvent } from "../sync/cart-event.ts";
import { mapVerifiedDelivery } from "../sync/delivery-mapping.ts";
import { MAPPED_TOPICS, type MapResult } from "../sync/mapping.ts";
import { createMappingWarningReporter } from "../sync/mapping-warnings.ts";
import { PRIVACY_TOPICS } from "../sync/privacy.ts";

export interface WebhookDeps {
  readonly secrets: readonly string[];
  readonly maxBodyBytes: number;
  readonly committer: GroupCommitter;
  /** A verified checkout delivery that names both a cart and a checkout token (reconciliation's links). */
  readonly onCheckoutEvent?: (event: CartEvent) => void;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** A delivery changed a cart (the flusher may want to send). */
  readonly onChanged: () => void;
  readonly isShuttingDown: () => boolean;
  /** When false, buyers are never kept (HUBSPOT_SYNC_CONTACTS=false). */
  readonly syncContacts: boolean;
  /** false: line sets are not kept (HUBSPOT_SYNC_LINE_ITEMS=false). Default true. */
  readonly syncLineItems?: boolean;
  /** Topics handled outside cart mapping (privacy/compliance); answers the outcome or undefined. */
  readonly handleOther?: (delivery: VerifiedDelivery) => Promise<string | undefined>;
}

export interface VerifiedDelivery {
  readonly topic: string;
  readonly shopDomain: string;
  readonly webhookId: string | undefined;
  readonly body: Buffer;
  readonly receivedAtMs: number;
  /** The headers kept with a dead letter (never the HMAC). */
  readonly headers: Readonly<Record<string, string>>;
}

const EMPTY = Buffer.alloc(0);

/**
 * POST /webhooks/shopify: read the raw bytes (413 past the limit), verify the HMAC before anything else
 * (401), require topic and shop (400), map (pure), commit with the group (503 when the store cannot), 200.
 */
export function webhookRouter(deps: WebhookDeps): Router {
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const { metrics, log } = deps;
  const reportMappingWarnings = createMappingWarningReporter(log);

  const receive: RequestHandler = async (req, res) => {
    const receivedAtMs = Date.now();
    const answer = (status: number, outcome: string, topic: string, body: object): void => {
      metrics.webhooksReceived.inc({ topic, outcome });
      res.status(status).json(body);
    };
    const checked = verifyRequest(deps, req, receivedAtMs);
    if ("status" in checked) {
      if (checked.outcome === "shutting_down") res.setHeader("connection", "close");
      answer(checked.status, checked.outcome, checked.topic, checked.body);
      return;
    }
    const delivery = checked;
    const { topic, shopDomain, webhookId } = delivery;
    const metricTopic = topicLabel(topic);

    try {
      const other = await deps.handleOther?.(delivery);
      if (other !== undefined) {
        if (other === "dead_lettered") metrics.deadLettersCreated.inc({ source: "mapping" });
        answer(200, other, metricTopic, { outcome: other });
        return;
      }
      const mapped = mapRequest(deps, delivery, req, reportMappingWarnings);
      let outcome: IngestOutcome;
      if (mapped.kind === "unhandled") outcome = "ignored";
      else if (mapped.kind === "unkeyed") outcome = "unkeyed";
      else {
        outcome = await deps.committer.submit({
          webhookId,
          topic,
          shopDomain,
          receivedAtMs,
          headers: delivery.headers,
          body: delivery.body,
          mapped,
        });
      }
      if (outcome === "applied") deps.onChanged();
      if (outcome === "dead_lettered") metrics.deadLettersCreated.inc({ source: "mapping" });
      log.debug({ topic, shop: shopDomain, webhookId, outcome }, "delivery received");
      answer(200, outcome, metricTopic, { outcome });
    } catch (error) {
      log.error({ err: error, topic, shop: shopDomain }, "delivery could not be committed");
      answer(503, "store_unavailable", metricTopic, { error: "could not store the delivery; retry later" });
    }
  };

  router.post("/webhooks/shopify", rawBody, receive);
  return router;
}

/** A request that is not a delivery to store, as the answer to give (status, metric outcome and topic, body). */
interface Refusal {
  readonly status: number;
  readonly outcome: "shutting_down" | "unauthorized" | "bad_request";
  readonly topic: string;
  readonly body: object;
}

/**
 * The checks before anything is read: not shutting down (503), the HMAC over the raw bytes (401), topic
 * and shop headers present (400). Returns the verified delivery or the refusal.
 */
function verifyRequest(deps: WebhookDeps, req: Request, receivedAtMs: number): VerifiedDelivery | Refusal {
  if (deps.isShuttingDown()) {
    return {
      status: 503,
      outcome: "shutting_down",
      topic: "unknown",
      body: { error: "shutting down; retry later" },
    };
  }
  const body = Buffer.isBuffer(req.body) ? req.body : EMPTY;
  const verdict = verifyShopifyHmac(body, headerValue(req.headers, SHOPIFY_HEADERS.hmac), deps.secrets);
  if (!verdict.valid) {
    deps.log.debug({ reason: verdict.reason }, "delivery refused");
    return {
      status: 401,
      outcome: "unauthorized",
      topic: "unknown",
      body: { error: "invalid webhook signature", reason: verdict.reason },
    };
  }
  const topic = headerValue(req.headers, SHOPIFY_HEADERS.topic)?.toLowerCase();
  const shopDomain = headerValue(req.headers, SHOPIFY_HEADERS.shopDomain)?.toLowerCase();
  if (topic === undefined || shopDomain === undefined) {
    const missing = [
      ...(topic === undefined ? ["X-Shopify-Topic"] : []),
      ...(shopDomain === undefined ? ["X-Shopify-Shop-Domain"] : []),
    ];
    return {
      status: 400,
      outcome: "bad_request",
      topic: topic ?? "unknown",
      body: { error: `missing header: ${missing.join(", ")}` },
    };
  }
  return {
    topic,
    shopDomain,
    webhookId: headerValue(req.headers, SHOPIFY_HEADERS.webhookId),
    body,
    receivedAtMs,
    headers: headersToKeep(req.headers),
  };
}

/** Maps a verified delivery (pure) and tells who listens: mapping warnings, checkout links. */
function mapRequest(
  deps: WebhookDeps,
  delivery: VerifiedDelivery,
  req: Request,
  reportMappingWarnings: ReturnType<typeof createMappingWarningReporter>,
): MapResult {
  const mapped: MapResult = mapVerifiedDelivery({
    topic: delivery.topic,
    shopDomain: delivery.shopDomain,
    body: delivery.body,
    webhookId: delivery.webhookId,
    triggeredAt: headerValue(req.headers, SHOPIFY_HEADERS.triggeredAt),
    receivedAtMs: delivery.receivedAtMs,
    syncContacts: deps.syncContacts,
    syncLineItems: deps.syncLineItems !== false,
  });
  if (mapped.kind === "event") reportMappingWarnings(delivery.topic, mapped.warnings);
  if (mapped.kind === "event" && mapped.event.checkoutToken !== undefined) {
    deps.onCheckoutEvent?.(mapped.event);
  }
  return mapped;
}

const KNOWN_TOPICS = new Set([...MAPPED_TOPICS, ...PRIVACY_TOPICS]);

/** Keeps metric label cardinality bounded: unknown topics share one label. */
function topicLabel(topic: string): string {
  return KNOWN_TOPICS.has(topic) ? topic : "other";
}
