/**
 * A stateful fake HubSpot on a real local HTTP server, for tests, the demo and the benchmark.
 *
 * Every request goes through, in order: authentication (401, not counted), the rate limits (daily, then the
 * rolling 10 s window per token; 429), queued faults (`failNext`), then routing to the CRM rules in
 * `hubspot-carts.ts`, `hubspot-contacts.ts` and `hubspot-line-items.ts`. Every request is recorded, rejected ones included. Nothing happens at import time.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { cartKeyPropertyDefinition, defaultCartProperties } from "./hubspot-properties.ts";
import type { PropertyDefinition } from "./hubspot-properties.ts";
import { errorBody } from "./hubspot-batch.ts";
import type { FakeResponse } from "./hubspot-batch.ts";
import { FakeCartStore } from "./hubspot-carts.ts";
import type { FakeCart, UpsertEcho } from "./hubspot-carts.ts";
import { FakeContactStore } from "./hubspot-contacts.ts";
import type { FakeAssociation, FakeContact } from "./hubspot-contacts.ts";
import {
  parseVersionedPath,
  testHubSpotApiVersion,
  versionEnforcesRequiredProperties,
} from "./hubspot-versions.ts";
import { lineItemRoute, setUpLineItems, type FakeLineItems } from "./hubspot-line-items-routes.ts";

export { defaultCartProperties } from "./hubspot-properties.ts";
export type { PropertyDefinition, PropertyType } from "./hubspot-properties.ts";
export type { FakeCart, UpsertEcho } from "./hubspot-carts.ts";
export type { FakeAssociation, FakeContact } from "./hubspot-contacts.ts";
export type { FakeLineItem } from "./hubspot-line-items.ts";

export interface FakeHubSpotOptions {
  /** Default "test-token". Requests need `Authorization: Bearer <token>`. */
  accessToken?: string;
  /** Rolling 10 s window per token, default 190. */
  maxRequestsPer10s?: number;
  /** Default Infinity (no Daily headers). */
  dailyLimit?: number;
  /** Default `defaultCartProperties()`. */
  cartProperties?: PropertyDefinition[];
  /** Add the unique custom property `shopify_cart_key` (default true). */
  withCartKeyProperty?: boolean;
  /** Delay added before answering each request, default 0. */
  latencyMs?: number;
  /** Keep every request in `requests` (default true); turn off for long benchmarks. */
  recordRequests?: boolean;
  /**
   * The one HubSpot API version whose paths are routed (`v3` = the /crm/v3 and /crm/v4 paths, or a date
   * version such as `2026-09`); other versions' paths answer 404, so a test proves the bridge used the version
   * it was configured with. `any` routes both schemes. Default: the test environment's HUBSPOT_API_VERSION
   * (v3 when unset).
   */
  apiVersion?: string;
  /** Cart properties the portal requires: enforced on every write through a 2026-09 or later path. */
  requiredCartProperties?: string[];
  /** Add the unique custom line item property `shopify_line_item_key` (default true). */
  withLineItemKeyProperty?: boolean;
}

export interface RecordedRequest {
  method: string;
  /** Path and query string, as sent. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body, the raw text when it is not JSON, or undefined when empty. */
  body: unknown;
  /** Status answered; 0 while pending, or when the socket was destroyed or the request hung. */
  status: number;
  /** When the request arrived (epoch ms, sub-millisecond precision). */
  atMs: number;
  /** When it was answered (epoch ms); undefined while pending or when never answered. */
  doneMs?: number;
}

export interface FakeFault {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  delayMs?: number;
  /** Reset the connection without answering. */
  destroySocket?: boolean;
  /** Never answer (the client must time out). */
  hang?: boolean;
  /** Only slow: after `delayMs`, the request is handled as HubSpot would (`status` is ignored). */
  slowOnly?: boolean;
}

export interface FakeHubSpot extends FakeLineItems {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Carts by the id-property value they were created with (e.g. "shop.myshopify.com:token"). */
  carts(): Map<string, FakeCart>;
  cartByKey(key: string): FakeCart | undefined;
  /** Contacts by lower-cased e-mail. */
  contacts(): Map<string, FakeContact>;
  associations(): FakeAssociation[];
  /** The next `times` (default 1) requests whose path contains `path` (default: any) get this answer. */
  failNext(fault: FakeFault, opts?: { times?: number; path?: string }): void;
  /** Drops every queued fault (`failNext`) not yet used. */
  clearFaults(): void;
  /** Upserts containing this id get a per-input error (207 with trace ids, else a whole-batch 400). */
  rejectCartId(id: string, message?: string): void;
  /** Undoes rejectCartId. */
  acceptCartId(id: string): void;
  /** false: a bad input fails the whole upsert with 400, trace ids or not (as if HubSpot gave no 207). */
  setPartialUpserts(enabled: boolean): void;
  /** What cart upsert answers echo (trace ids, the id property, how 207 errors name inputs); see UpsertEcho. */
  setUpsertEcho(echo: Partial<UpsertEcho>): void;
  /** Simulates a revoked or rotated token. */
  setAccessToken(token: string): void;
  addCartProperty(def: PropertyDefinition): void;
  /** Makes a cart property required, or optional again (HubSpot enforces it from API version 2026-09). */
  requireCartProperty(name: string, required?: boolean): void;
  /**
   * `contacts: false` → contacts and associations endpoints answer 403 MISSING_SCOPES; same for `carts`;
   * `schemas: false` → creating a property answers 403 (a token without crm.schemas.carts.write, as service
   * keys may be); `lineItems: false` → line item endpoints answer 403.
   */
  setScopes(scopes: { contacts?: boolean; carts?: boolean; schemas?: boolean; lineItems?: boolean }): void;
  /** A contacts upsert containing this e-mail fails as a whole (400). */
  rejectContactEmail(email: string): void;
  /** Associations from this cart (id or key) get a per-input error in a 207 (see FakeContactStore). */
  rejectAssociation(cart: string, opts?: { message?: string; category?: string; times?: number }): void;
  acceptAssociation(cart: string): void;
  /** Clears the recorded requests (not the state). */
  reset(): void;
  close(): Promise<void>;
}

export const RATE_LIMIT_INTERVAL_MS = 10_000;

/** The most requests whose `atMs` fall within any window of `windowMs` (half-open, as the fake counts). */
export function maxRequestsInAnyWindow(
  requests: readonly RecordedRequest[],
  windowMs = RATE_LIMIT_INTERVAL_MS,
): number {
  const times = requests.map((r) => r.atMs).sort((a, b) => a - b);
  let max = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while ((times[end] ?? 0) - (times[start] ?? 0) >= windowMs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

/** Timestamps of admitted requests for one token; old ones are dropped from the front. */
interface RollingWindow {
  stamps: number[];
  head: number;
}

function countInWindow(w: RollingWindow, atMs: number): number {
  while (w.head < w.stamps.length && atMs - (w.stamps[w.head] ?? 0) >= RATE_LIMIT_INTERVAL_MS) w.head++;
  if (w.head > 1024 && w.head * 2 > w.stamps.length) {
    w.stamps = w.stamps.slice(w.head);
    w.head = 0;
  }
  return w.stamps.length - w.head;
}

interface QueuedFault {
  fault: FakeFault;
  remaining: number;
  path: string | undefined;
}

const nowMs = (): number => performance.timeOrigin + performance.now();

export function missingScopes(scope: string): FakeResponse {
  return {
    status: 403,
    body: errorBody(
      "MISSING_SCOPES",
      "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
      {
        errors: [
          {
            message: "One or more of the following scopes are required.",
            context: { requiredGranularScopes: [scope] },
          },
        ],
      },
    ),
  };
}

/** HubSpot's 429 once the portal's daily API limit is spent (policy DAILY), as a queued fault. */
export function dailyLimitFault(): FakeFault {
  return {
    status: 429,
    body: {
      status: "error",
      message: "You have reached your daily limit.",
      errorType: "RATE_LIMIT",
      policyName: "DAILY",
    },
  };
}

function defaultFaultBody(status: number): unknown {
  if (status === 429) {
    return {
      status: "error",
      message: "You have reached your ten_secondly_rolling limit.",
      errorType: "RATE_LIMIT",
      correlationId: randomUUID(),
      policyName: "TEN_SECONDLY_ROLLING",
      groupName: "publicapi:private-app-api-calls-ten-secondly:fake",
    };
  }
  if (status === 401) return errorBody("INVALID_AUTHENTICATION", "Authentication credentials not found.");
  if (status === 403) return missingScopes("crm.objects.carts.write").body;
  if (status === 423) return errorBody("LOCKED", "The resource is locked; retry after at least 2 seconds.");
  return errorBody(status >= 500 ? "INTERNAL_ERROR" : "VALIDATION_ERROR", `Injected fault (HTTP ${status})`);
}

const CART_TYPES = "(?:carts|cart|0-142)";
const CONTACT_TYPES = "(?:contacts|contact|0-1)";
const ROUTES = {
  cartUpsert: new RegExp(`^/crm/v3/objects/${CART_TYPES}/batch/upsert$`),
  cartGet: new RegExp(`^/crm/v3/objects/${CART_TYPES}/([^/]+)$`),
  contactUpsert: new RegExp(`^/crm/v3/objects/${CONTACT_TYPES}/batch/upsert$`),
  associate: new RegExp(`^/crm/v4/associations/${CART_TYPES}/${CONTACT_TYPES}/batch/create$`),
  propertyGroups: new RegExp(`^/crm/v3/properties/${CART_TYPES}/groups$`),
  properties: new RegExp(`^/crm/v3/properties/${CART_TYPES}$`),
  property: new RegExp(`^/crm/v3/properties/${CART_TYPES}/([^/]+)$`),
};

export async function startFakeHubSpot(opts: FakeHubSpotOptions = {}): Promise<FakeHubSpot> {
  let accessToken = opts.accessToken ?? "test-token";
  const maxPer10s = opts.maxRequestsPer10s ?? 190;
  const dailyLimit = opts.dailyLimit ?? Number.POSITIVE_INFINITY;
  const latencyMs = opts.latencyMs ?? 0;
  const record = opts.recordRequests ?? true;
  const properties = [...(opts.cartProperties ?? defaultCartProperties())];
  if (
    opts.withCartKeyProperty !== false &&
    !properties.some((p) => p.name === cartKeyPropertyDefinition().name)
  ) {
    properties.push(cartKeyPropertyDefinition());
  }
  const cartStore = new FakeCartStore(properties);
  for (const name of opts.requiredCartProperties ?? []) cartStore.requireCartProperty(name);
  const servedVersion = opts.apiVersion ?? testHubSpotApiVersion();
  const contactStore = new FakeContactStore(
    (id) => cartStore.hasCartId(id),
    (id) => cartStore.keyOfCartId(id),
  );
  const scopes = { contacts: true, carts: true, schemas: true, lineItems: true };
  const lineItems = setUpLineItems(opts.withLineItemKeyProperty !== false, (id) => cartStore.hasCartId(id));
  const windows = new Map<string, RollingWindow>();
  let dailyUsed = 0;
  const faults: QueuedFault[] = [];
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  let closed = false;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  function rateLimitHeaders(token: string, at: number): Record<string, string> {
    const w = windows.get(token);
    const used = w ? countInWindow(w, at) : 0;
    const headers: Record<string, string> = {
      "X-HubSpot-RateLimit-Max": String(maxPer10s),
      "X-HubSpot-RateLimit-Remaining": String(Math.max(0, maxPer10s - used)),
      "X-HubSpot-RateLimit-Interval-Milliseconds": String(RATE_LIMIT_INTERVAL_MS),
    };
    if (Number.isFinite(dailyLimit)) {
      headers["X-HubSpot-RateLimit-Daily"] = String(dailyLimit);
      headers["X-HubSpot-RateLimit-Daily-Remaining"] = String(Math.max(0, dailyLimit - dailyUsed));
    }
    return headers;
  }

  /** Counts the request against the budgets; returns the 429 to answer when one is exhausted. */
  function admit(token: string, at: number): FakeResponse | null {
    if (dailyUsed >= dailyLimit) {
      const body = {
        status: "error",
        message: "You have reached your daily limit.",
        errorType: "RATE_LIMIT",
        correlationId: randomUUID(),
        policyName: "DAILY",
        requestId: randomUUID(),
      };
      return { status: 429, body };
    }
    let w = windows.get(token);
    if (!w) windows.set(token, (w = { stamps: [], head: 0 }));
    if (countInWindow(w, at) >= maxPer10s) return { status: 429, body: defaultFaultBody(429) };
    w.stamps.push(at);
    dailyUsed += 1;
    return null;
  }

  function takeFault(path: string): FakeFault | undefined {
    const i = faults.findIndex((f) => f.path === undefined || path.includes(f.path));
    const queued = faults[i];
    if (!queued) return undefined;
    queued.remaining -= 1;
    if (queued.remaining <= 0) faults.splice(i, 1);
    return queued.fault;
  }

  function route(method: string, url: URL, body: unknown): FakeResponse {
    const rawPath = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    const versioned = parseVersionedPath(rawPath);
    if (versioned === undefined || (servedVersion !== "any" && versioned.version !== servedVersion)) {
      const served = servedVersion === "any" ? "" : ` (this sandbox serves API version ${servedVersion})`;
      return {
        status: 404,
        body: errorBody("OBJECT_NOT_FOUND", `No route for ${method} ${rawPath}${served}`),
      };
    }
    const path = versioned.legacyPath;
    const enforceRequired = versionEnforcesRequiredProperties(versioned.version);
    const needsJson = method === "POST";
    if (needsJson && (body === undefined || typeof body === "string")) {
      return {
        status: 400,
        body: errorBody("VALIDATION_ERROR", "Invalid input JSON: the request body must be a JSON object"),
      };
    }
    const lineItemAnswer = lineItemRoute(lineItems.store, method, path, body, scopes.lineItems);
    if (lineItemAnswer !== undefined) return lineItemAnswer;
    const isContacts = ROUTES.contactUpsert.test(path) || ROUTES.associate.test(path);
    if (isContacts && !scopes.contacts) return missingScopes("crm.objects.contacts.write");
    if (!isContacts && path.startsWith("/crm/") && !scopes.carts)
      return missingScopes("crm.objects.carts.write");

    if (method === "POST" && ROUTES.cartUpsert.test(path))
      return cartStore.upsertCarts(body, { enforceRequired });
    if (method === "POST" && ROUTES.contactUpsert.test(path)) return contactStore.upsertContacts(body);
    if (method === "POST" && ROUTES.associate.test(path))
      return contactStore.createCartContactAssociations(body);
    if (method === "GET" && ROUTES.propertyGroups.test(path)) return cartStore.listCartPropertyGroups();
    if (ROUTES.properties.test(path)) {
      if (method === "GET") return cartStore.listCartProperties();
      if (method === "POST")
        return scopes.schemas ? cartStore.createCartProperty(body) : missingScopes("crm.schemas.carts.write");
    }
    const property = ROUTES.property.exec(path);
    if (method === "GET" && property?.[1] !== undefined)
      return cartStore.getCartProperty(decodeURIComponent(property[1]));
    const cart = ROUTES.cartGet.exec(path);
    if (method === "GET" && cart?.[1] !== undefined && cart[1] !== "batch") {
      return cartStore.getCart(decodeURIComponent(cart[1]), url.searchParams.get("idProperty"));
    }
    return { status: 404, body: errorBody("OBJECT_NOT_FOUND", `No route for ${method} ${path}`) };
  }

  function send(
    res: ServerResponse,
    rec: RecordedRequest,
    status: number,
    body: unknown,
    headers: Record<string, string>,
  ): void {
    rec.status = status;
    if (res.destroyed || res.headersSent) return;
    rec.doneMs = nowMs();
    const payload = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, {
      "Content-Type": "application/json;charset=utf-8",
      "Content-Length": String(Buffer.byteLength(payload)),
      ...headers,
    });
    res.end(payload);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = nowMs();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = text === "" ? undefined : text;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text; POST routes answer 400
      }
    }
    const method = req.method ?? "GET";
    const rawPath = req.url ?? "/";
    const rec: RecordedRequest = {
      method,
      path: rawPath,
      headers: { ...req.headers },
      body,
      status: 0,
      atMs: at,
    };
    if (record) requests.push(rec);
    if (latencyMs > 0) await sleep(latencyMs);
    if (closed) return;

    const auth = req.headers.authorization ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice("Bearer ".length) : "";
    if (token !== accessToken) {
      const message =
        token === ""
          ? "Authentication credentials not found."
          : "The access token provided is invalid or has been revoked.";
      send(res, rec, 401, errorBody("INVALID_AUTHENTICATION", message), rateLimitHeaders(accessToken, at));
      return;
    }
    const limited = admit(token, at);
    if (limited) {
      send(res, rec, limited.status, limited.body, rateLimitHeaders(token, at));
      return;
    }
    const fault = takeFault(rawPath);
    if (fault) {
      if (fault.delayMs !== undefined && fault.delayMs > 0) await sleep(fault.delayMs);
      if (fault.hang === true || closed) return;
      if (fault.destroySocket === true) {
        req.socket.destroy();
        return;
      }
    }
    if (fault && fault.slowOnly !== true) {
      const headers = { ...rateLimitHeaders(token, at), ...fault.headers };
      send(res, rec, fault.status, fault.body ?? defaultFaultBody(fault.status), headers);
      return;
    }
    if (method === "POST" && !(req.headers["content-type"] ?? "").includes("application/json")) {
      const body415 = errorBody(
        "VALIDATION_ERROR",
        "HTTP 415 Unsupported Media Type: send Content-Type: application/json",
      );
      send(res, rec, 415, body415, rateLimitHeaders(token, at));
      return;
    }
    const answer = route(method, new URL(rawPath, "http://fake.hubspot.local"), body);
    send(res, rec, answer.status, answer.body, rateLimitHeaders(token, at));
  }

  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        const payload = JSON.stringify(errorBody("INTERNAL_ERROR", `fake HubSpot bug: ${String(error)}`));
        res.writeHead(500, {
          "Content-Type": "application/json",
          "Content-Length": String(Buffer.byteLength(payload)),
        });
        res.end(payload);
      }
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("fake HubSpot: unexpected server address");

  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    carts: () => cartStore.cartsByKey,
    cartByKey: (key) => cartStore.cartsByKey.get(key),
    contacts: () => contactStore.contactsByEmail,
    associations: () => contactStore.associations(),
    failNext(fault, options = {}) {
      faults.push({ fault, remaining: options.times ?? 1, path: options.path });
    },
    clearFaults() {
      faults.length = 0;
    },
    rejectCartId(id, message = `Cart ${id} rejected by the fake HubSpot`) {
      cartStore.rejectCartId(id, message);
    },
    acceptCartId(id) {
      cartStore.acceptCartId(id);
    },
    setPartialUpserts(enabled) {
      cartStore.partialUpserts = enabled;
    },
    setUpsertEcho(echo) {
      cartStore.echo = { ...cartStore.echo, ...echo };
    },
    setAccessToken(token) {
      accessToken = token;
    },
    addCartProperty(def) {
      cartStore.addCartProperty(def);
    },
    requireCartProperty(name, required = true) {
      cartStore.requireCartProperty(name, required);
    },
    setScopes(next) {
      if (next.contacts !== undefined) scopes.contacts = next.contacts;
      if (next.carts !== undefined) scopes.carts = next.carts;
      if (next.schemas !== undefined) scopes.schemas = next.schemas;
      if (next.lineItems !== undefined) scopes.lineItems = next.lineItems;
    },
    ...lineItems.api,
    rejectContactEmail(email) {
      contactStore.rejectContactEmail(email);
    },
    rejectAssociation(cart, rejection) {
      contactStore.rejectAssociation(cart, rejection);
    },
    acceptAssociation(cart) {
      contactStore.acceptAssociation(cart);
    },
    reset() {
      requests.length = 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await done;
    },
  };
}
