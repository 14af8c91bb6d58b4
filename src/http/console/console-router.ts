import { readFileSync } from "node:fs";
import express, { type RequestHandler, type Router } from "express";
import { createLoginLimiter } from "./login-limit.ts";
import { csrfProblem, type ConsoleSessions } from "./session.ts";

/**
 * The console's page and its sign-in: `GET /admin/` (one static HTML page, a script and a stylesheet —
 * no build step, no external resource, no inline script or style) and `/admin/session` (POST signs in
 * with ADMIN_TOKEN, GET tells the page whether it is signed in and its CSRF token, DELETE signs out).
 * Mounted before the admin routes' authorisation: these are the only /admin paths reachable without it.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

const ASSETS = {
  "/admin/": { file: "console.html", type: "text/html; charset=utf-8" },
  "/admin/console.js": { file: "console.js", type: "text/javascript; charset=utf-8" },
  "/admin/console.css": { file: "console.css", type: "text/css; charset=utf-8" },
} as const;

/** Headers on every /admin answer, page or JSON. */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("x-frame-options", "DENY");
  res.setHeader("referrer-policy", "no-referrer");
  res.setHeader("cross-origin-opener-policy", "same-origin");
  res.setHeader("cross-origin-resource-policy", "same-origin");
  res.setHeader("cache-control", "no-store");
  next();
};

export function consoleRouter(opts: { sessions: ConsoleSessions; now?: () => number }): Router {
  const now = opts.now ?? Date.now;
  const sessions = opts.sessions;
  const router = express.Router();
  const assets = new Map(
    Object.entries(ASSETS).map(([path, a]) => [
      path,
      { type: a.type, body: readFileSync(new URL(`./static/${a.file}`, import.meta.url)) },
    ]),
  );
  const limiter = createLoginLimiter({ perClient: 5, overall: 50, windowMs: 60_000 });

  router.get(["/admin", ...assets.keys()], (req, res) => {
    if (req.path === "/admin") {
      res.redirect(301, "/admin/");
      return;
    }
    const asset = assets.get(req.path);
    if (asset === undefined) return;
    res.setHeader("content-type", asset.type);
    res.send(asset.body);
  });

  router.post("/admin/session", express.json({ limit: "4kb" }), (req, res) => {
    const crossSite = sessions.crossSiteProblem(req);
    if (crossSite !== undefined) {
      res.status(403).json({ error: `cross-site request refused (${crossSite})` });
      return;
    }
    const client = req.socket.remoteAddress ?? "unknown";
    const wait = limiter.waitMs(client, now());
    if (wait > 0) {
      res.setHeader("retry-after", String(Math.ceil(wait / 1000)));
      res.status(429).json({ error: "too many wrong tokens; try again later" });
      return;
    }
    const token = (req.body as { token?: unknown } | undefined)?.token;
    if (typeof token !== "string" || !sessions.tokenMatches(token)) {
      limiter.recordFailure(client, now());
      res.status(401).json({ error: "wrong token" });
      return;
    }
    const session = sessions.start(req, res, now());
    res.json({
      signedIn: true,
      csrfToken: session.csrfToken,
      expiresAt: new Date(session.expiresAtMs).toISOString(),
    });
  });

  router.get("/admin/session", (req, res) => {
    const session = sessions.read(req, now());
    if (session === undefined) {
      res.status(401).json({ signedIn: false });
      return;
    }
    res.json({
      signedIn: true,
      csrfToken: session.csrfToken,
      expiresAt: new Date(session.expiresAtMs).toISOString(),
    });
  });

  router.delete("/admin/session", (req, res) => {
    const session = sessions.read(req, now());
    const problem = session === undefined ? "not signed in" : csrfProblem(sessions, req, session);
    if (problem !== undefined) {
      res.status(403).json({ error: problem });
      return;
    }
    sessions.end(req, res);
    res.json({ signedIn: false });
  });

  return router;
}
