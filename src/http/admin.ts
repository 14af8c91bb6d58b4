import { createHash, timingSafeEqual } from "node:crypto";
import express, { type RequestHandler, type Router } from "express";
import { describeDeadLetter, type Store } from "../store/store.ts";
import type { ReplayResult } from "../sync/replay.ts";

export interface AdminDeps {
  readonly adminToken: string | undefined;
  readonly store: Store;
  readonly status: () => Promise<object>;
  readonly replay: (ids: readonly number[]) => Promise<ReplayResult[]>;
}

/** /admin/*: status, dead letters and replay behind a bearer token; 404 everywhere when no token is set. */
export function adminRouter(deps: AdminDeps): Router {
  const router = express.Router();
  const expected = deps.adminToken === undefined ? undefined : digest(deps.adminToken);

  const authorize: RequestHandler = (req, res, next) => {
    if (expected === undefined) {
      res.status(404).json({ error: "not found" });
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

  router.use("/admin", authorize, express.json({ limit: "1mb" }));

  router.get("/admin/status", async (_req, res) => {
    res.json(await deps.status());
  });

  router.get("/admin/dead-letters", async (req, res) => {
    const limit = clampInt(req.query["limit"], 1, 1000, 100);
    const afterId = clampInt(req.query["after"], 0, Number.MAX_SAFE_INTEGER, 0);
    const letters = await deps.store.listDeadLetters({ limit, afterId });
    res.json({
      deadLetters: letters.map(describeDeadLetter),
      next: letters.length === limit ? letters[letters.length - 1]?.id : null,
    });
  });

  router.post("/admin/dead-letters/replay", async (req, res) => {
    const body = (req.body ?? {}) as { ids?: unknown; all?: unknown };
    let ids: number[];
    if (body.all === true) {
      ids = await allDeadLetterIds(deps.store);
    } else if (Array.isArray(body.ids) && body.ids.every((id) => Number.isSafeInteger(id))) {
      ids = body.ids as number[];
    } else {
      res.status(400).json({ error: 'send {"ids": [1, 2]} or {"all": true}' });
      return;
    }
    const results = await deps.replay(ids);
    res.json({ results });
  });

  router.use("/admin", (_req, res) => {
    res.status(404).json({ error: "not found" });
  });
  return router;
}

export async function allDeadLetterIds(store: Store): Promise<number[]> {
  const ids: number[] = [];
  let afterId = 0;
  for (;;) {
    const page = await store.listDeadLetters({ limit: 1000, afterId });
    if (page.length === 0) return ids;
    for (const l of page) ids.push(l.id);
    afterId = page[page.length - 1]?.id ?? afterId;
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function clampInt(value: unknown, min: number, max: number, fallback: number): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : fallback;
  return Math.min(max, Math.max(min, n));
}
