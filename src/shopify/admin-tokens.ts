/**
 * Admin API access tokens per shop (SPEC §9): a legacy custom app's token as given (`SHOPIFY_ADMIN_TOKENS`),
 * or one from the client credentials grant (`SHOPIFY_CLIENT_ID`/`SHOPIFY_CLIENT_SECRET` for `SHOPIFY_SHOPS`),
 * asked for again before it expires and after a 401. Tokens are secrets: they never leave this module
 * except as the value of the request header, and no message here carries one.
 */
import { fetch } from "undici";

export type TokenResult =
  | { kind: "token"; token: string }
  /** The grant was refused (a 4xx or an OAuth error such as `shop_not_permitted`): pause the shop. */
  | { kind: "refused"; reason: string }
  /** Shopify could not answer (5xx, 429): try again later, without pausing the shop. */
  | { kind: "unavailable"; reason: string };

export interface AdminTokenSource {
  /** A usable token for `shop`, or why there is none (the grant refused, e.g. `shop_not_permitted`). */
  get(shop: string, nowMs: number): Promise<TokenResult>;
  /** The token was answered 401: a granted one is asked for again next time; a given one cannot be. */
  rejected(shop: string): boolean;
}

export interface AdminTokenOptions {
  readonly staticTokens: ReadonlyMap<string, string>;
  readonly clientCredentials?: { readonly clientId: string; readonly clientSecret: string } | undefined;
  /** Origin (and path) of a shop's Admin API: `https://<shop>` or the configured override. */
  readonly baseUrlOf: (shop: string) => string;
  readonly timeoutMs?: number;
  /** Aborted at shutdown. */
  readonly signal?: AbortSignal;
}

/** Ask again this long before a granted token expires (they last 24 h). */
const RENEW_BEFORE_MS = 10 * 60_000;

export function createAdminTokenSource(opts: AdminTokenOptions): AdminTokenSource {
  const granted = new Map<string, { token: string; expiresAtMs: number }>();
  const inFlight = new Map<string, Promise<TokenResult>>();

  async function grant(shop: string, nowMs: number): Promise<TokenResult> {
    const creds = opts.clientCredentials;
    if (creds === undefined) return { kind: "refused", reason: "no token configured for this shop" };
    const body = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: creds.clientId,
      client_secret: creds.clientSecret,
    });
    const res = await fetch(`${opts.baseUrlOf(shop)}/admin/oauth/access_token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: body.toString(),
      signal: AbortSignal.any([
        AbortSignal.timeout(opts.timeoutMs ?? 20_000),
        ...(opts.signal === undefined ? [] : [opts.signal]),
      ]),
    });
    const text = await res.text();
    let json: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } =
      {};
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      // Reported below without the body (it could echo a secret).
    }
    if (res.status >= 500 || res.status === 429) {
      return { kind: "unavailable", reason: `token grant failed (HTTP ${res.status}); trying again later` };
    }
    if (!res.ok || typeof json.access_token !== "string") {
      const code = typeof json.error === "string" ? json.error : `HTTP ${res.status}`;
      const detail = typeof json.error_description === "string" ? `: ${json.error_description}` : "";
      return { kind: "refused", reason: `token grant refused (${code}${detail})` };
    }
    const ttlMs = (typeof json.expires_in === "number" ? json.expires_in : 86_399) * 1000;
    granted.set(shop, { token: json.access_token, expiresAtMs: nowMs + ttlMs });
    return { kind: "token", token: json.access_token };
  }

  return {
    async get(shop, nowMs) {
      const given = opts.staticTokens.get(shop);
      if (given !== undefined) return { kind: "token", token: given };
      const held = granted.get(shop);
      if (held !== undefined && held.expiresAtMs - RENEW_BEFORE_MS > nowMs)
        return { kind: "token", token: held.token };
      let pending = inFlight.get(shop);
      if (pending === undefined) {
        pending = grant(shop, nowMs).finally(() => inFlight.delete(shop));
        inFlight.set(shop, pending);
      }
      return pending;
    },
    rejected(shop) {
      if (opts.staticTokens.has(shop)) return false;
      granted.delete(shop);
      return true;
    },
  };
}
