import { createHash, timingSafeEqual } from "node:crypto";
import express, { type RequestHandler, type Router } from "express";
import { describeDeadLetter, type Store } from "../store/store.ts";
import { allDeadLetterIds, type ReplayResult } from "../sync/replay.ts";
import { consoleApiRouter, type ConsoleDeps } from "./console/api.ts";
import { consoleRouter, securityHeaders } from "./console/console-router.ts";
import { createConsoleSessions, csrfProblem, type ConsoleSessions } from "./console/session.ts";

export interface AdminDeps {
  readonly adminToken: string | undefined;
  readonly store: Store;
  readonly status: () => Promise<object>;
  readonly replay: (ids: readonly number[]) => Promise<ReplayResult[]>;
  /** The operator console (GET /admin/ and its JSON); without it only the bearer API is served. */
  readonly console?: ConsoleDeps;
  /** Resolves once every acknowledged delivery is in the store, so admin reads see them (the inbox). */
  readonly settle?: (withinMs: number) => Promise<void>;
}

/** /admin/*: status, dead letters and replay behind a bearer token; 404 everywhere when no token is set. */
export function adminRouter(deps: AdminDeps): Router {
  const router = express.Router();
  const expected = deps.adminToken === undefined ? undefined : digest(deps.adminToken);
  const sessions =
    deps.adminToken === undefined || deps.console === undefined
      ? undefined
      : createConsoleSessions({
          adminToken: deps.adminToken,
          sessionMs: 8 * 3_600_000,
          trustProxy: deps.console.trustProxy,
        });

  const authorize = authorization(expected, sessions);
  if (sessions !== undefined) router.use("/admin", securityHeaders).use(consoleRouter({ sessions }));
  router.use("/admin", authorize, express.json({ limit: "1mb" }));
  if (deps.settle !== undefined) {
    const settle = deps.settle;
    // Read what was acknowledged: deliveries still on their way from the inbox go in first (a store that is
    // down is not waited for long; the answer then shows what the store has).
    router.use("/admin", (_req, _res, next) => {
      settle(1000).then(
        () => next(),
        () => next(),
      );
    });
  }
  if (deps.console !== undefined) router.use(consoleApiRouter(deps.store, deps.console));

  router.get("/admin/status", async (_req, res) => {
    res.json(await deps.status());
  });

  router.get("/admin/dead-letters", listDeadLetters(deps.store));
  router.post("/admin/dead-letters/replay", replayDeadLetters(deps));

  router.use("/admin", (_req, res) => {
    res.status(404).json({ error: "not found" });
  });
  return router;
}

/**
 * The admin authorisation: 404 when no token is set; the console's session cookie (a state-changing
 * request must also prove it is not cross-site, else 403); else a bearer token (401 without a valid one).
 */
function authorization(expected: Buffer | undefined, sessions: ConsoleSessions | undefined): RequestHandler {
  return (req, res, next) => {
    if (expected === undefined) {
      res.status(404).json({ error: "not found" });
      return;
    }
    // The console's session cookie; a state-changing request must also prove it is not cross-site.
    const session = sessions?.read(req, Date.now());
    if (sessions !== undefined && session !== undefined && req.get("authorization") === undefined) {
      const problem =
        req.method === "GET" || req.method === "HEAD" ? undefined : csrfProblem(sessions, req, session);
      if (problem !== undefined) {
        res.status(403).json({ error: `refused: ${problem}` });
        return;
      }
      next();
      return;
    }
    const header = req.get("authorization") ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    // Compare fixed-length digests so neither length nor content leaks through timing.
    if (match === null || !timingSafeEqual(digest(match[1] ?? ""), expected)) {
      res.setHeader("www-authenticate", 'Bearer realm="cartbridge-admin"');
      res.status(401).json({ error: "unauthorized" });
      return;
    }
    next();
  };
}

/** GET /admin/dead-letters: oldest first by default, or the console's filters and newest-first paging. */
function listDeadLetters(store: Store): RequestHandler {
  return async (req, res) => {
    const limit = clampInt(req.query["limit"], 1, 1000, 100);
    const afterId = clampInt(req.query["after"], 0, Number.MAX_SAFE_INTEGER, 0);
    const filter = deadLetterFilter(req.query);
    // Filters and newest-first paging (?order=newest&before=<id>) are the console's (store/activity.ts).
    const letters =
      store.activity === undefined
        ? await store.listDeadLetters({ limit, afterId })
        : await store.activity.findDeadLetters({
            ...filter,
            limit,
            afterId,
            newestFirst: req.query["order"] === "newest",
            beforeId: clampInt(req.query["before"], 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
          });
    res.json({
      deadLetters: letters.map(describeDeadLetter),
      next: letters.length === limit ? letters[letters.length - 1]?.id : null,
      ...(store.activity === undefined ? {} : { total: await store.activity.countDeadLetters(filter) }),
    });
  };
}

/** POST /admin/dead-letters/replay: {"ids": [...]} or {"all": true} (with the console's filters). */
function replayDeadLetters(deps: AdminDeps): RequestHandler {
  return async (req, res) => {
    const body = (req.body ?? {}) as { ids?: unknown; all?: unknown };
    let ids: number[];
    if (body.all === true) {
      const filter = deadLetterFilter(body);
      ids =
        deps.store.activity !== undefined && (filter.shopDomain !== undefined || filter.reason !== undefined)
          ? await deps.store.activity.deadLetterIds(filter)
          : await allDeadLetterIds(deps.store);
    } else if (Array.isArray(body.ids) && body.ids.every((id) => Number.isSafeInteger(id))) {
      ids = body.ids as number[];
    } else {
      res.status(400).json({ error: 'send {"ids": [1, 2]} or {"all": true}' });
      return;
    }
    const results = await deps.replay(ids);
    res.json({ results });
  };
}

/** `shop` and `reason` from a query string or a JSON body (empty means no filter). */
function deadLetterFilter(source: Record<string, unknown>): { shopDomain?: string; reason?: string } {
  const text = (v: unknown): string | undefined =>
    typeof v === "string" && v.trim() !== "" ? v.trim().slice(0, 512) : undefined;
  const shopDomain = text(source["shop"])?.toLowerCase();
  const reason = text(source["reason"]);
  return { ...(shopDomain === undefined ? {} : { shopDomain }), ...(reason === undefined ? {} : { reason }) };
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function clampInt(value: unknown, min: number, max: number, fallback: number): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : fallback;
  return Math.min(max, Math.max(min, n));
}
