import express, { type ErrorRequestHandler, type Express } from "express";
import type { Logger } from "pino";
import type { Metrics } from "../metrics.ts";
import { adminRouter, type AdminDeps } from "./admin.ts";
import type { Readiness } from "../readiness.ts";
import { healthRouter } from "./health.ts";
import { webhookRouter, type WebhookDeps } from "./webhooks.ts";

export interface AppDeps {
  readonly webhooks: WebhookDeps;
  readonly admin: AdminDeps;
  readonly readiness: () => Promise<Readiness>;
  readonly beforeScrape: () => Promise<void>;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** Builds the HTTP app without listening (main.ts and tests listen). */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      if (req.path !== "/webhooks/shopify") return;
      if (res.statusCode === 401) deps.admin.console?.refusals.record(Date.now());
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      deps.metrics.webhookDuration.observe({ status: String(res.statusCode) }, seconds);
    });
    next();
  });

  app.use(webhookRouter(deps.webhooks));
  app.use(
    healthRouter({ readiness: deps.readiness, metrics: deps.metrics, beforeScrape: deps.beforeScrape }),
  );
  app.use(adminRouter(deps.admin));

  app.use((_req, res) => {
    res.status(404).json({ error: "not found" });
  });

  const onError: ErrorRequestHandler = (
    err: { status?: number; type?: string; message?: string },
    req,
    res,
    _next,
  ) => {
    const status = typeof err.status === "number" && err.status >= 400 && err.status < 600 ? err.status : 500;
    if (status === 413) {
      deps.metrics.webhooksReceived.inc({ topic: "unknown", outcome: "too_large" });
      res.status(413).json({ error: "body too large" });
      return;
    }
    if (status >= 500) deps.log.error({ err, path: req.path }, "request failed");
    else deps.log.debug({ type: err.type, path: req.path }, "request refused");
    if (!res.headersSent)
      res.status(status).json({ error: status >= 500 ? "internal error" : (err.type ?? "bad request") });
  };
  app.use(onError);
  return app;
}
