import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Request, Response } from "express";

/**
 * Console sessions: the operator types ADMIN_TOKEN once; the answer is a cookie that proves it was typed.
 *
 * The cookie is stateless — `<expiresAtMs>.<nonce>.<mac>`, the mac an HMAC under a key derived from
 * ADMIN_TOKEN — so it is valid on every replica and across restarts, and changing ADMIN_TOKEN ends every
 * session. It is HttpOnly, SameSite=Strict, scoped to /admin, expires after `sessionMs`, and Secure when the
 * request came over HTTPS (directly, or through a proxy whose X-Forwarded-Proto we were told to trust).
 *
 * Cross-site request forgery: besides SameSite, every state-changing request authorised by the cookie must
 * carry the session's CSRF token (an HMAC of its nonce) in `X-CSRF-Token` — a header a cross-site form cannot
 * set and a cross-site script cannot send without a preflight we never answer — and must not be marked
 * cross-site by `Sec-Fetch-Site` or a foreign `Origin`.
 */
export const SESSION_COOKIE = "cartbridge_session";
export const CSRF_HEADER = "x-csrf-token";

export interface ConsoleSessions {
  /** Constant-time check of a typed or bearer token. */
  tokenMatches(candidate: string): boolean;
  /** Starts a session: sets the cookie and returns its CSRF token. */
  start(req: Request, res: Response, nowMs: number): { csrfToken: string; expiresAtMs: number };
  /** The session the request's cookie proves, or undefined. */
  read(req: Request, nowMs: number): { csrfToken: string; expiresAtMs: number } | undefined;
  end(req: Request, res: Response): void;
  /** Refuses requests a foreign site could have made (Sec-Fetch-Site / Origin); undefined when fine. */
  crossSiteProblem(req: Request): string | undefined;
}

export function createConsoleSessions(opts: {
  adminToken: string;
  sessionMs: number;
  trustProxy: boolean;
}): ConsoleSessions {
  const expected = digest(opts.adminToken);
  const key = createHmac("sha256", opts.adminToken).update("cartbridge console session v1").digest();
  const mac = (text: string): string => createHmac("sha256", key).update(text).digest("base64url");

  const isHttps = (req: Request): boolean => {
    if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
    if (!opts.trustProxy) return false;
    const proto = req.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
    return proto === "https";
  };

  const cookieAttributes = (req: Request, maxAgeS: number): string =>
    `Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${isHttps(req) ? "; Secure" : ""}`;

  return {
    tokenMatches(candidate) {
      // Fixed-length digests: neither the length nor the content of the token leaks through timing.
      return timingSafeEqual(digest(candidate), expected);
    },

    start(req, res, nowMs) {
      const nonce = randomBytes(18).toString("base64url");
      const expiresAtMs = nowMs + opts.sessionMs;
      const payload = `${expiresAtMs}.${nonce}`;
      res.append(
        "set-cookie",
        `${SESSION_COOKIE}=${payload}.${mac(payload)}; ${cookieAttributes(req, Math.floor(opts.sessionMs / 1000))}`,
      );
      return { csrfToken: mac(`csrf.${nonce}`), expiresAtMs };
    },

    read(req, nowMs) {
      const value = readCookie(req.get("cookie"), SESSION_COOKIE);
      if (value === undefined) return undefined;
      const match = /^(\d{1,16})\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{43})$/.exec(value);
      if (match === null) return undefined;
      const [, expires, nonce, given] = match as unknown as [string, string, string, string];
      const payload = `${expires}.${nonce}`;
      if (!timingSafeEqual(Buffer.from(given), Buffer.from(mac(payload)))) return undefined;
      const expiresAtMs = Number(expires);
      if (expiresAtMs <= nowMs) return undefined;
      return { csrfToken: mac(`csrf.${nonce}`), expiresAtMs };
    },

    end(req, res) {
      res.append("set-cookie", `${SESSION_COOKIE}=; ${cookieAttributes(req, 0)}`);
    },

    crossSiteProblem(req) {
      const site = req.get("sec-fetch-site");
      if (site !== undefined && site !== "same-origin" && site !== "none") return `Sec-Fetch-Site: ${site}`;
      const origin = req.get("origin");
      if (origin !== undefined && origin !== "null") {
        const host = req.get("host");
        let originHost: string | undefined;
        try {
          originHost = new URL(origin).host;
        } catch {
          originHost = undefined;
        }
        if (originHost === undefined || originHost !== host) return `Origin ${origin} is not this host`;
      } else if (origin === "null") {
        return "Origin null";
      }
      return undefined;
    },
  };
}

/** Checks a state-changing request authorised by the cookie: right CSRF token, not cross-site. */
export function csrfProblem(
  sessions: ConsoleSessions,
  req: Request,
  session: { csrfToken: string },
): string | undefined {
  const crossSite = sessions.crossSiteProblem(req);
  if (crossSite !== undefined) return crossSite;
  const given = req.get(CSRF_HEADER) ?? "";
  const a = digest(given);
  const b = digest(session.csrfToken);
  return timingSafeEqual(a, b) ? undefined : "missing or wrong X-CSRF-Token";
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
