import express, { type Router } from "express";
import type { Metrics } from "../metrics.ts";
import type { Readiness } from "../readiness.ts";

export function healthRouter(deps: {
  readiness: () => Promise<Readiness>;
  metrics: Metrics;
  /** Refreshes gauges that come from the store before a scrape. */
  beforeScrape: () => Promise<void>;
}): Router {
  const router = express.Router();
  router.get("/healthz", (_req, res) => {
    res.status(200).json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const r = await deps.readiness();
    const degraded = r.degraded !== undefined && r.degraded.length > 0 ? { degraded: r.degraded } : {};
    if (r.ready) res.status(200).json({ status: "ready", ...degraded });
    else
      res
        .status(503)
        .json({ status: "not_ready", reason: r.reasons.join("; "), reasons: r.reasons, ...degraded });
  });
  router.get("/metrics", async (_req, res) => {
    try {
      await deps.beforeScrape();
    } catch {
      // Scrape what we have; readiness reports the store.
    }
    res.setHeader("content-type", deps.metrics.registry.contentType);
    res.status(200).send(await deps.metrics.registry.metrics());
  });
  return router;
}
