import express, { type Request, type RequestHandler, type Router } from "express";
import type { Logger } from "pino";
import type { Metrics } from "../metrics.ts";
import { headersToKeep, headerValue, SHOPIFY_HEADERS } from "../shopify/headers.ts";
import { verifyShopifyHmac } from "../shopify/verify.ts";
import type { VerifiedDelivery } from "../store/store.ts";
import type { Intake } from "../sync/intake.ts";
import { MAPPED_TOPICS } from "../sync/mapping.ts";
import { ERASURE_TOPICS, PRIVACY_TOPICS } from "../sync/privacy.ts";

export interface WebhookDeps {
  readonly secrets: readonly string[];
  readonly maxBodyBytes: number;
  /** Where a verified delivery goes (the group commit or the inbox; sync/intake.ts). */
  readonly intake: Intake;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly isShuttingDown: () => boolean;
  /** Topics handled outside cart mapping (privacy/compliance); answers the outcome or undefined. */
  readonly handleOther?: (delivery: VerifiedDelivery) => Promise<string | undefined>;
}

const EMPTY = Buffer.alloc(0);

/**
 * POST /webhooks/shopify: read the raw bytes (413 past the limit), verify the HMAC before anything else
 * (401), require topic and shop (400), hand it to the intake (503 when the store cannot take it), 200.
 */
export function webhookRouter(deps: WebhookDeps): Router {
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const { metrics, log } = deps;

  /**
   * Whether shutdown had begun when the request arrived: a delivery already on its way (its body still
   * arriving) is finished, not refused (SPEC §7); one that starts after is answered 503.
   */
  const arrival: RequestHandler = (_req, res, next) => {
    res.locals["lateForShutdown"] = deps.isShuttingDown();
    next();
  };

  const receive: RequestHandler = async (req, res) => {
    const receivedAtMs = Date.now();
    // The connection closes after the answer once shutting down, so the server can finish closing.
    if (deps.isShuttingDown()) res.setHeader("connection", "close");
    const answer = (status: number, outcome: string, topic: string, body: object): void => {
      metrics.webhooksReceived.inc({ topic, outcome });
      res.status(status).json(body);
    };
    const checked = verifyRequest(deps, req, receivedAtMs, res.locals["lateForShutdown"] === true);
    if ("status" in checked) {
      answer(checked.status, checked.outcome, checked.topic, checked.body);
      return;
    }
    const delivery = checked;
    const { topic, shopDomain } = delivery;
    const metricTopic = topicLabel(topic);

    try {
      if (PRIVACY_TOPICS.has(topic)) {
        // Compliance topics act on what the store holds: everything acknowledged before goes in first.
        await deps.intake.settle();
        const other = await deps.handleOther?.(delivery);
        // The raw deliveries the inbox still keeps (applied, but not yet rolled away) go too.
        if (ERASURE_TOPICS.has(topic)) await deps.intake.purge();
        if (other !== undefined) {
          if (other === "dead_lettered") metrics.deadLettersCreated.inc({ source: "mapping" });
          answer(200, other, metricTopic, { outcome: other });
          return;
        }
      }
      // The intake counts the outcome (when the delivery is applied, which may be after this answer).
      const outcome = await deps.intake.accept(delivery);
      res.status(200).json({ outcome });
    } catch (error) {
      log.error({ err: error, topic, shop: shopDomain }, "delivery could not be committed");
      answer(503, "store_unavailable", metricTopic, { error: "could not store the delivery; retry later" });
    }
  };

  router.post("/webhooks/shopify", arrival, rawBody, receive);
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
 * The checks before anything is read: not arrived after shutdown began (503), the HMAC over the raw bytes
 * (401), topic and shop headers present (400). Returns the verified delivery or the refusal.
 */
function verifyRequest(
  deps: WebhookDeps,
  req: Request,
  receivedAtMs: number,
  lateForShutdown: boolean,
): VerifiedDelivery | Refusal {
  if (lateForShutdown) {
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

const KNOWN_TOPICS = new Set([...MAPPED_TOPICS, ...PRIVACY_TOPICS]);

/** Keeps metric label cardinality bounded: unknown topics share one label. */
export function topicLabel(topic: string): string {
  return KNOWN_TOPICS.has(topic) ? topic : "other";
}
