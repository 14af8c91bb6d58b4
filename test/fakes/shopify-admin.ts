/**
 * A stateful Shopify Admin sandbox on a real local HTTP server, for tests, the demo and the benchmark.
 *
 * Routes (the shop is the first path segment, as `SHOPIFY_ADMIN_API_URL=http://127.0.0.1:<port>/{shop}`
 * makes the bridge call them):
 * - `POST /<shop>/admin/oauth/access_token`: the client credentials grant. Shops not in `permittedShops`
 *   answer 400 `shop_not_permitted`; a wrong client id or secret 400 `invalid_client`.
 * - `POST /<shop>/admin/api/<version>/graphql.json`: `abandonedCheckouts` and `orders` with cursors, the
 *   `query` filter on `updated_at` and `created_at`, `sortKey`, `reverse`. Every answer carries
 *   `extensions.cost`; the leaky bucket per shop charges the requested cost and refunds the difference to
 *   the actual cost; a query over `maxQueryCost` answers MAX_COST_EXCEEDED, one the bucket cannot pay
 *   THROTTLED (HTTP 200, no data), as Shopify does. An unknown or expired token answers 401, a shop set to
 *   `forbid` 403. `cartToken`/`checkoutToken` exist on Order from 2026-07 only.
 * Nothing happens at import time.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { parseQuery, projectConnection, requestedCost, type Field } from "./shopify-admin-graphql.ts";

export interface ShopifyAdminSandboxOptions {
  /** Bucket size in points (default 1000). */
  bucketSize?: number;
  /** Points restored per second (default 100). */
  restoreRatePerS?: number;
  /** Single-query limit (default 1000). */
  maxQueryCost?: number;
  clientId?: string;
  clientSecret?: string;
  /** Shops the client credentials grant serves (default: every shop). */
  permittedShops?: readonly string[];
  /** Lifetime of granted tokens in seconds (default 86399). */
  tokenTtlS?: number;
  /** Legacy custom-app tokens: token → shop. */
  staticTokens?: Readonly<Record<string, string>>;
  /**
   * Fields the app's scopes do not reach, e.g. `variant` and `product` without `read_products`: a query
   * selecting one anywhere is refused whole with ACCESS_DENIED, as Shopify does.
   */
  deniedFields?: readonly string[];
}

export type SandboxNode = Record<string, unknown> & { id: string; updatedAt: string; createdAt: string };

export interface SandboxRequest {
  readonly shop: string;
  readonly kind: "grant" | "graphql";
  readonly status: number;
  /** GraphQL only: the root field, requested cost and the error code when there was one. */
  readonly root?: string;
  readonly requestedCost?: number;
  readonly code?: string;
  readonly variables?: Record<string, unknown>;
  readonly atMs: number;
}

interface Bucket {
  available: number;
  atMs: number;
}

export interface ShopifyAdminSandbox {
  readonly url: string;
  /** `SHOPIFY_ADMIN_API_URL` for the bridge. */
  readonly adminApiUrl: string;
  readonly requests: SandboxRequest[];
  /** Inserts or replaces (by id) abandoned checkouts / orders. */
  putCheckouts(shop: string, nodes: readonly SandboxNode[]): void;
  putOrders(shop: string, nodes: readonly SandboxNode[]): void;
  /** Answer 403 (or 401) to every GraphQL request of this shop until cleared (undefined). */
  forbid(shop: string, status: 401 | 403 | undefined): void;
  /** Expire every granted token now (the next GraphQL request with one answers 401). */
  expireTokens(): void;
  /** Takes points out of a shop's bucket, as another query of the same app would. */
  spend(shop: string, points: number): void;
  /** Points currently in a shop's bucket. */
  available(shop: string): number;
  /** Total points charged to a shop after refunds (the queries' actual cost). */
  actualCost(shop: string): number;
  close(): Promise<void>;
}

export async function startShopifyAdminSandbox(
  opts: ShopifyAdminSandboxOptions = {},
): Promise<ShopifyAdminSandbox> {
  const bucketSize = opts.bucketSize ?? 1000;
  const restoreRate = opts.restoreRatePerS ?? 100;
  const maxQueryCost = opts.maxQueryCost ?? 1000;
  const clientId = opts.clientId ?? "sandbox-client-id";
  const clientSecret = opts.clientSecret ?? "sandbox-client-secret";
  const tokens = new Map<string, { shop: string; expiresAtMs: number }>();
  for (const [token, shop] of Object.entries(opts.staticTokens ?? {})) {
    tokens.set(token, { shop, expiresAtMs: Infinity });
  }
  const data = new Map<string, { checkouts: Map<string, SandboxNode>; orders: Map<string, SandboxNode> }>();
  const buckets = new Map<string, Bucket>();
  const charged = new Map<string, number>();
  const forbidden = new Map<string, 401 | 403>();
  const requests: SandboxRequest[] = [];

  const shopData = (shop: string) => {
    let d = data.get(shop);
    if (d === undefined) data.set(shop, (d = { checkouts: new Map(), orders: new Map() }));
    return d;
  };
  const bucket = (shop: string, nowMs: number): Bucket => {
    let b = buckets.get(shop);
    if (b === undefined) buckets.set(shop, (b = { available: bucketSize, atMs: nowMs }));
    b.available = Math.min(bucketSize, b.available + ((nowMs - b.atMs) / 1000) * restoreRate);
    b.atMs = nowMs;
    return b;
  };
  const throttleStatus = (b: Bucket) => ({
    maximumAvailable: bucketSize,
    currentlyAvailable: Math.floor(b.available),
    restoreRate,
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://sandbox");
    const parts = url.pathname.split("/").filter((p) => p !== "");
    const send = (status: number, json: unknown, record: Omit<SandboxRequest, "status" | "atMs">): void => {
      requests.push({ ...record, status, atMs: Date.now() });
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(json));
    };
    const shop = parts[0] ?? "";
    const rest = parts.slice(1).join("/");
    if (req.method === "POST" && rest === "admin/oauth/access_token") {
      const form = new URLSearchParams(
        (req.headers["content-type"] ?? "").includes("json")
          ? Object.entries(JSON.parse(body || "{}") as Record<string, string>)
          : body,
      );
      const record = { shop, kind: "grant" as const };
      if (form.get("grant_type") !== "client_credentials") {
        return send(400, { error: "unsupported_grant_type" }, record);
      }
      if (form.get("client_id") !== clientId || form.get("client_secret") !== clientSecret) {
        return send(
          400,
          { error: "invalid_client", error_description: "Client authentication failed" },
          record,
        );
      }
      if (opts.permittedShops !== undefined && !opts.permittedShops.includes(shop)) {
        return send(
          400,
          {
            error: "shop_not_permitted",
            error_description: "Client credentials cannot be performed on this shop.",
          },
          record,
        );
      }
      const token = `shpat_${randomBytes(16).toString("hex")}`;
      const ttlS = opts.tokenTtlS ?? 86_399;
      tokens.set(token, { shop, expiresAtMs: Date.now() + ttlS * 1000 });
      return send(200, { access_token: token, scope: "read_orders", expires_in: ttlS }, record);
    }
    const api = /^admin\/api\/(\d{4}-\d{2})\/graphql\.json$/.exec(rest);
    if (req.method !== "POST" || api === null)
      return send(404, { errors: "Not Found" }, { shop, kind: "graphql" });
    const version = api[1] ?? "";
    const record = { shop, kind: "graphql" as const };
    const token = req.headers["x-shopify-access-token"];
    const grant = typeof token === "string" ? tokens.get(token) : undefined;
    if (grant === undefined || grant.shop !== shop || grant.expiresAtMs <= Date.now()) {
      return send(
        401,
        { errors: "[API] Invalid API key or access token (unrecognized login or wrong password)" },
        record,
      );
    }
    const denied = forbidden.get(shop);
    if (denied !== undefined) {
      return send(
        denied,
        denied === 403
          ? { errors: "[API] This action requires merchant approval for read_orders scope." }
          : { errors: "[API] Invalid API key or access token (unrecognized login or wrong password)" },
        record,
      );
    }

    let request: { query?: unknown; variables?: unknown };
    try {
      request = JSON.parse(body) as typeof request;
    } catch {
      return send(400, { errors: "Bad Request" }, record);
    }
    const variables = (request.variables ?? {}) as Record<string, unknown>;
    let fields: readonly Field[];
    try {
      fields = parseQuery(typeof request.query === "string" ? request.query : "", variables).fields;
      for (const f of fields) checkField(f, version);
    } catch (error) {
      return send(200, { errors: [{ message: (error as Error).message }] }, { ...record, code: "PARSE" });
    }
    const root = fields.map((f) => f.name).join(",");
    const deniedField = deniedIn(fields, new Set(opts.deniedFields ?? []));
    if (deniedField !== undefined) {
      return send(
        200,
        {
          errors: [
            {
              message: `Access denied for ${deniedField} field. Required access: \`read_products\` access scope.`,
              extensions: { code: "ACCESS_DENIED", requiredAccess: "`read_products` access scope." },
            },
          ],
          data: null,
        },
        { ...record, root, code: "ACCESS_DENIED", variables },
      );
    }
    const requested = fields.reduce((total, f) => total + requestedCost(f), 0);
    const nowMs = Date.now();
    const b = bucket(shop, nowMs);
    if (requested > maxQueryCost) {
      return send(
        200,
        {
          errors: [
            {
              message: `Query cost is ${requested}, which exceeds the single query max cost limit (${maxQueryCost}).`,
              extensions: { code: "MAX_COST_EXCEEDED", cost: requested, maxCost: maxQueryCost },
            },
          ],
          extensions: {
            cost: { requestedQueryCost: requested, actualQueryCost: null, throttleStatus: throttleStatus(b) },
          },
        },
        { ...record, root, requestedCost: requested, code: "MAX_COST_EXCEEDED", variables },
      );
    }
    if (b.available < requested) {
      return send(
        200,
        {
          errors: [
            {
              message: "Throttled",
              extensions: { code: "THROTTLED", documentation: "https://shopify.dev/api/usage/rate-limits" },
            },
          ],
          extensions: {
            cost: { requestedQueryCost: requested, actualQueryCost: null, throttleStatus: throttleStatus(b) },
          },
        },
        { ...record, root, requestedCost: requested, code: "THROTTLED", variables },
      );
    }
    b.available -= requested;
    const cost = { actual: 0 };
    const out: Record<string, unknown> = {};
    try {
      for (const field of fields) out[field.alias ?? field.name] = resolveRoot(shop, field, cost);
    } catch (error) {
      b.available += requested;
      return send(
        200,
        { errors: [{ message: (error as Error).message }] },
        { ...record, root, code: "INVALID", variables },
      );
    }
    b.available = Math.min(bucketSize, b.available + (requested - cost.actual));
    charged.set(shop, (charged.get(shop) ?? 0) + cost.actual);
    return send(
      200,
      {
        data: out,
        extensions: {
          cost: {
            requestedQueryCost: requested,
            actualQueryCost: cost.actual,
            throttleStatus: throttleStatus(b),
          },
        },
      },
      { ...record, root, requestedCost: requested, variables },
    );
  }

  function checkField(field: Field, version: string): void {
    if (field.name !== "abandonedCheckouts" && field.name !== "orders") {
      throw new Error(`Field '${field.name}' doesn't exist on type 'QueryRoot'`);
    }
    const first = field.args["first"];
    if (typeof first !== "number" || first < 1 || first > 250) {
      throw new Error(`Argument 'first' on Field '${field.name}' must be between 1 and 250`);
    }
    if (field.name === "orders" && version < "2026-07") {
      const uses = (fs: readonly Field[] | undefined): boolean =>
        (fs ?? []).some((f) => f.name === "cartToken" || f.name === "checkoutToken" || uses(f.selections));
      if (uses(field.selections)) throw new Error("Field 'cartToken' doesn't exist on type 'Order'");
    }
  }

  function resolveRoot(shop: string, field: Field, cost: { actual: number }): unknown {
    const source = field.name === "orders" ? shopData(shop).orders : shopData(shop).checkouts;
    const sortKey = typeof field.args["sortKey"] === "string" ? field.args["sortKey"] : "ID";
    const allowed =
      field.name === "orders" ? ["ID", "UPDATED_AT", "CREATED_AT"] : ["ID", "CREATED_AT", "CHECKOUT_ID"];
    if (!allowed.includes(sortKey)) {
      throw new Error(`Argument 'sortKey' on Field '${field.name}' has an invalid value (${sortKey}).`);
    }
    const filter = parseFilter(typeof field.args["query"] === "string" ? field.args["query"] : "");
    const sortValue = (n: SandboxNode): number =>
      sortKey === "UPDATED_AT"
        ? Date.parse(n.updatedAt)
        : sortKey === "CREATED_AT"
          ? Date.parse(n.createdAt)
          : 0;
    const compare = (a: [number, number], b: [number, number]): number => a[0] - b[0] || a[1] - b[1];
    const keyOf = (n: SandboxNode): [number, number] => [sortValue(n), numericId(n.id)];
    const reverse = field.args["reverse"] === true;
    let nodes = [...source.values()].filter((n) => filter(n)).sort((a, b) => compare(keyOf(a), keyOf(b)));
    if (reverse) nodes.reverse();
    const after = field.args["after"];
    if (typeof after === "string" && after !== "") {
      const cursor = JSON.parse(Buffer.from(after, "base64url").toString("utf8")) as [number, number];
      nodes = nodes.filter((n) => (reverse ? -1 : 1) * compare(keyOf(n), cursor) > 0);
    }
    const first = field.args["first"] as number;
    const page = nodes.slice(0, first).map((node) => ({
      node,
      cursor: Buffer.from(JSON.stringify(keyOf(node))).toString("base64url"),
    }));
    cost.actual += 2;
    return projectConnection(page, nodes.length > first, field.selections ?? [], cost);
  }

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: String(error) }));
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    adminApiUrl: `${url}/{shop}`,
    requests,
    putCheckouts(shop, nodes) {
      for (const n of nodes) shopData(shop).checkouts.set(n.id, n);
    },
    putOrders(shop, nodes) {
      for (const n of nodes) shopData(shop).orders.set(n.id, n);
    },
    forbid(shop, status) {
      if (status === undefined) forbidden.delete(shop);
      else forbidden.set(shop, status);
    },
    expireTokens() {
      for (const t of tokens.values()) if (t.expiresAtMs !== Infinity) t.expiresAtMs = 0;
    },
    spend(shop, points) {
      const b = bucket(shop, Date.now());
      b.available = Math.max(0, b.available - points);
    },
    available: (shop) => Math.floor(bucket(shop, Date.now()).available),
    actualCost: (shop) => charged.get(shop) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function numericId(gid: string): number {
  const n = Number(gid.slice(gid.lastIndexOf("/") + 1));
  return Number.isFinite(n) ? n : 0;
}

/** Shopify search syntax, the part reconciliation uses: `updated_at:>'…'` (also >=, <, <=; created_at). */
function parseFilter(query: string): (node: SandboxNode) => boolean {
  const terms: ((n: SandboxNode) => boolean)[] = [];
  for (const m of query.matchAll(/(updated_at|created_at):(>=|<=|>|<)?'?([^'\s]+)'?/g)) {
    const field = m[1] === "updated_at" ? "updatedAt" : "createdAt";
    const op = m[2] ?? "=";
    const at = Date.parse(m[3] ?? "");
    if (!Number.isFinite(at)) throw new Error(`Invalid date in query: ${m[3]}`);
    terms.push((n) => {
      const t = Date.parse(n[field]);
      return op === ">"
        ? t > at
        : op === ">="
          ? t >= at
          : op === "<"
            ? t < at
            : op === "<="
              ? t <= at
              : t === at;
    });
  }
  return (n) => terms.every((t) => t(n));
}

/** The first selected field, at any depth, that the app may not read. */
function deniedIn(fields: readonly Field[], denied: ReadonlySet<string>): string | undefined {
  for (const f of fields) {
    if (denied.has(f.name)) return f.name;
    const inner = deniedIn(f.selections ?? [], denied);
    if (inner !== undefined) return inner;
  }
  return undefined;
}
