/**
 * The Shopify Admin GraphQL API per shop (SPEC §9), on `@shopify/admin-api-client` with undici's fetch
 * underneath, pinned to `SHOPIFY_API_VERSION`. One attempt per call, classified (as the HubSpot client
 * does): the caller (reconciliation) owns waiting and retrying.
 *
 * `SHOPIFY_ADMIN_API_URL` (tests, the demo) replaces `https://<shop>` for GraphQL and the token grant,
 * with `{shop}` substituted. The library always builds `https://<shop>/admin/api/<version>/graphql.json`,
 * so the override is applied in the fetch it is given.
 */
import { createAdminApiClient, type AdminApiClient, type ClientResponse } from "@shopify/admin-api-client";
import { fetch } from "undici";
import { createAdminTokenSource, type AdminTokenSource } from "./admin-tokens.ts";

/** `extensions.cost` of an answer. */
export interface QueryCost {
  readonly requestedQueryCost: number;
  readonly actualQueryCost: number | null;
  readonly throttleStatus: {
    readonly maximumAvailable: number;
    readonly currentlyAvailable: number;
    readonly restoreRate: number;
  };
}

export type AdminAnswer<T> =
  | { kind: "ok"; data: T; cost: QueryCost | undefined }
  /** Not enough points in the bucket: wait (see `cost`) and ask again. */
  | { kind: "throttled"; cost: QueryCost | undefined }
  /** The query alone costs more than the single-query limit: ask for a smaller page. */
  | { kind: "max_cost"; requestedCost: number | undefined }
  /** No token, or it was refused (401 after a renewal, 403): pause the shop with `reason`. */
  | { kind: "auth"; reason: string }
  /** Fields the token's scopes do not reach (e.g. products without `read_products`): ask without them. */
  | { kind: "access_denied"; reason: string }
  /** Network trouble, 5xx, 429 or a GraphQL error: retry later. */
  | { kind: "failed"; reason: string };

export interface ShopifyAdmin {
  /** The shops reconciliation serves (from SHOPIFY_SHOPS and SHOPIFY_ADMIN_TOKENS), lower-case. */
  readonly shops: readonly string[];
  query<T>(shop: string, operation: string, variables: Record<string, unknown>): Promise<AdminAnswer<T>>;
  /** Aborts every request in flight (shutdown must not wait for a slow Admin API); later ones fail at once. */
  close(): void;
}

export interface ShopifyAdminOptions {
  readonly apiVersion: string;
  readonly adminApiUrl: string | undefined;
  readonly shops: readonly string[];
  readonly adminTokens: ReadonlyMap<string, string>;
  readonly clientId: string | undefined;
  readonly clientSecret: string | undefined;
  readonly timeoutMs?: number;
}

export function createShopifyAdmin(opts: ShopifyAdminOptions): ShopifyAdmin {
  const closing = new AbortController();
  const baseUrlOf = (shop: string): string =>
    opts.adminApiUrl === undefined
      ? `https://${shop}`
      : opts.adminApiUrl.replaceAll("{shop}", shop).replace(/\/+$/, "");
  const tokens: AdminTokenSource = createAdminTokenSource({
    staticTokens: opts.adminTokens,
    clientCredentials:
      opts.clientId !== undefined && opts.clientSecret !== undefined
        ? { clientId: opts.clientId, clientSecret: opts.clientSecret }
        : undefined,
    baseUrlOf,
    signal: closing.signal,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  const shops = [...new Set([...opts.shops, ...opts.adminTokens.keys()])];
  const clientFor = createClientCache(opts, baseUrlOf, closing.signal);

  async function attempt<T>(
    shop: string,
    operation: string,
    variables: Record<string, unknown>,
  ): Promise<AdminAnswer<T> | Unauthorized> {
    const token = await tokens.get(shop, Date.now());
    if (token.kind === "refused") return { kind: "auth", reason: token.reason };
    if (token.kind === "unavailable") return { kind: "failed", reason: token.reason };
    const answer = await clientFor(shop, token.token).request<T>(operation, { variables });
    const cost = (answer.extensions as { cost?: QueryCost } | undefined)?.cost;
    const errors = answer.errors;
    if (errors === undefined) return { kind: "ok", data: answer.data as T, cost };
    return classifyErrors<T>(errors, cost);
  }

  return {
    shops,
    close: () => closing.abort(),
    async query<T>(
      shop: string,
      operation: string,
      variables: Record<string, unknown>,
    ): Promise<AdminAnswer<T>> {
      try {
        const first = await attempt<T>(shop, operation, variables);
        if (first.kind !== "unauthorized") return first;
        // A granted token may have been revoked or expired early: ask for a new one once.
        if (!tokens.rejected(shop)) return { kind: "auth", reason: first.reason };
        const second = await attempt<T>(shop, operation, variables);
        return second.kind === "unauthorized" ? { kind: "auth", reason: second.reason } : second;
      } catch (error) {
        return { kind: "failed", reason: error instanceof Error ? error.message : String(error) };
      }
    },
  };
}

/** An answer refused with 401: the caller asks for a new token once before pausing the shop. */
type Unauthorized = { kind: "unauthorized"; reason: string };

/**
 * One library client per shop, made again when the shop's token changed. The library's fetch goes to
 * `baseUrlOf(shop)` (the SHOPIFY_ADMIN_API_URL override) with a timeout, and aborts when the admin closes.
 */
function createClientCache(
  opts: Pick<ShopifyAdminOptions, "apiVersion" | "timeoutMs">,
  baseUrlOf: (shop: string) => string,
  closing: AbortSignal,
): (shop: string, token: string) => AdminApiClient {
  const clients = new Map<string, { token: string; client: AdminApiClient }>();
  return function clientFor(shop, token) {
    const held = clients.get(shop);
    if (held?.token === token) return held.client;
    const libraryOrigin = `https://${shop}`;
    const client = createAdminApiClient({
      storeDomain: shop,
      apiVersion: opts.apiVersion,
      accessToken: token,
      userAgentPrefix: "cartbridge",
      // The library warns on console about versions newer than it knows; the version is validated by config.
      logger: () => {},
      customFetchApi: (url, init) => {
        const target = url.startsWith(libraryOrigin)
          ? baseUrlOf(shop) + url.slice(libraryOrigin.length)
          : url;
        return fetch(target, {
          ...init,
          signal: AbortSignal.any([AbortSignal.timeout(opts.timeoutMs ?? 30_000), closing]),
        });
      },
    });
    clients.set(shop, { token, client });
    return client;
  };
}

/**
 * A failed answer by what the caller does next: 401 unauthorized (renew the token once), 403 auth (pause
 * the shop), THROTTLED (wait), MAX_COST_EXCEEDED (smaller page), anything else failed (retry later).
 */
async function classifyErrors<T>(
  errors: NonNullable<ClientResponse<T>["errors"]>,
  cost: QueryCost | undefined,
): Promise<AdminAnswer<T> | Unauthorized> {
  const status = errors.networkStatusCode;
  if (errors.response !== undefined && !errors.response.bodyUsed) await errors.response.body?.cancel();
  if (status === 401)
    return { kind: "unauthorized", reason: "Admin API answered 401 (token invalid or revoked)" };
  if (status === 403) {
    return {
      kind: "auth",
      reason: "Admin API answered 403 (the app lacks read_orders or was uninstalled)",
    };
  }
  const graphQLErrors = (errors.graphQLErrors ?? []) as {
    message?: string;
    extensions?: { code?: string; cost?: number };
  }[];
  const codes = graphQLErrors.map((e) => e.extensions?.code);
  if (codes.includes("THROTTLED")) return { kind: "throttled", cost };
  if (codes.includes("MAX_COST_EXCEEDED")) {
    const requested = graphQLErrors.find((e) => e.extensions?.code === "MAX_COST_EXCEEDED")?.extensions?.cost;
    return { kind: "max_cost", requestedCost: requested ?? cost?.requestedQueryCost };
  }
  const message = graphQLErrors[0]?.message ?? errors.message ?? "unknown error";
  if (codes.length > 0 && codes.every((c) => c === "ACCESS_DENIED"))
    return { kind: "access_denied", reason: message };
  return { kind: "failed", reason: status === undefined ? message : `HTTP ${status}: ${message}` };
}
