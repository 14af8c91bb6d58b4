import { randomUUID } from "node:crypto";
import { Pool, errors as undiciErrors } from "undici";
import type { HubSpotError } from "./errors.ts";
import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotRequestRefusedError,
  HubSpotUnavailableError,
} from "./errors.ts";
import { hubspotPaths, type HubSpotObjectType } from "./paths.ts";
import type {
  AssociationInput,
  BatchOutcome,
  InputError,
  LineItemAssociation,
  PropertyDefinition,
  RateLimitInfo,
  UpsertInput,
  UpsertResult,
} from "./types.ts";

/**
 * HubSpot over one keep-alive undici pool. Every method makes exactly one attempt and either returns the
 * answer or throws a classified HubSpotError; retries belong to the caller (the flusher).
 */
export interface HubSpotClient {
  upsertCarts(inputs: readonly UpsertInput[]): Promise<BatchOutcome>;
  upsertContacts(inputs: readonly UpsertInput[]): Promise<BatchOutcome>;
  associateCartsWithContacts(inputs: readonly AssociationInput[]): Promise<BatchOutcome>;
  listCartProperties(): Promise<PropertyDefinition[]>;
  createCartProperty(def: PropertyCreate): Promise<"created" | "exists">;
  listCartPropertyGroups(): Promise<string[]>;
  /** The same three for any object type (line items' key property, say). */
  listProperties(type: HubSpotObjectType): Promise<PropertyDefinition[]>;
  createProperty(type: HubSpotObjectType, def: PropertyCreate): Promise<"created" | "exists">;
  listPropertyGroups(type: HubSpotObjectType): Promise<string[]>;
  upsertLineItems(inputs: readonly UpsertInput[]): Promise<BatchOutcome>;
  /** HubSpot's default line item → cart association (no type needed). */
  associateLineItemsWithCarts(inputs: readonly LineItemAssociation[]): Promise<BatchOutcome>;
  /** Archives line items by HubSpot id (204; archiving an archived one is a no-op). */
  archiveLineItems(ids: readonly string[]): Promise<{ rateLimit: RateLimitInfo | undefined }>;
  listLineItemProperties(): Promise<PropertyDefinition[]>;
  createLineItemProperty(def: PropertyCreate): Promise<"created" | "exists">;
  close(): Promise<void>;
}

export interface PropertyCreate {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly fieldType: string;
  readonly groupName: string;
  readonly hasUniqueValue: boolean;
  readonly description?: string;
}

export interface HubSpotClientOptions {
  readonly baseUrl: string;
  readonly accessToken: string;
  readonly connections?: number;
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  /** `v3` (default) or a HubSpot date version such as `2026-09`: see paths.ts. */
  readonly apiVersion?: string;
}

const CART_TO_CONTACT = 586;

export function createHubSpotClient(opts: HubSpotClientOptions): HubSpotClient {
  const pool = new Pool(opts.baseUrl, {
    connections: opts.connections ?? 8,
    keepAliveTimeout: 30_000,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 30_000,
    connectTimeout: 10_000,
  });
  const prefix = new URL(opts.baseUrl).pathname.replace(/\/+$/, "");
  const authorization = `Bearer ${opts.accessToken}`;
  const paths = hubspotPaths(opts.apiVersion);

  async function call(method: "GET" | "POST", path: string, body?: unknown): Promise<Answer> {
    let res;
    try {
      res = await pool.request({
        method,
        path: prefix + path,
        headers: {
          authorization,
          accept: "application/json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw networkError(cause);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (cause) {
      throw networkError(cause);
    }
    const rateLimit = readRateLimit(res.headers);
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return { status: res.statusCode, json, rateLimit };
    throw classify(res.statusCode, res.headers, json, text, rateLimit);
  }

  async function batchUpsert(
    objectType: HubSpotObjectType,
    inputs: readonly UpsertInput[],
  ): Promise<BatchOutcome> {
    const answer = await call("POST", paths.batchUpsert(objectType), { inputs });
    return readBatch(answer, inputs[0]?.idProperty);
  }

  const client: HubSpotClient = {
    upsertCarts: (inputs) => batchUpsert("carts", inputs),
    upsertContacts: (inputs) => batchUpsert("contacts", inputs),

    async associateCartsWithContacts(inputs) {
      const answer = await call("POST", paths.associationsBatchCreate("carts", "contacts"), {
        inputs: inputs.map((a) => ({
          from: { id: a.cartId },
          to: { id: a.contactId },
          types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: CART_TO_CONTACT }],
        })),
      });
      return readBatch(answer);
    },

    upsertLineItems: (inputs) => batchUpsert("line_items", inputs),

    async associateLineItemsWithCarts(inputs) {
      const answer = await call("POST", paths.associationsBatchDefault("line_items", "carts"), {
        inputs: inputs.map((a) => ({ from: { id: a.lineItemId }, to: { id: a.cartId } })),
      });
      return readBatch(answer);
    },

    async archiveLineItems(ids) {
      const answer = await call("POST", paths.batchArchive("line_items"), {
        inputs: ids.map((id) => ({ id })),
      });
      return { rateLimit: answer.rateLimit };
    },

    listLineItemProperties: () => client.listProperties("line_items"),
    createLineItemProperty: (def) => client.createProperty("line_items", def),

    listCartProperties: () => client.listProperties("carts"),
    createCartProperty: (def) => client.createProperty("carts", def),
    listCartPropertyGroups: () => client.listPropertyGroups("carts"),

    async listProperties(type) {
      const answer = await call("GET", paths.properties(type));
      const results = (answer.json as { results?: unknown[] } | undefined)?.results ?? [];
      return results.flatMap((raw): PropertyDefinition[] => {
        const p = raw as Record<string, unknown>;
        if (typeof p["name"] !== "string") return [];
        const meta = p["modificationMetadata"] as { readOnlyValue?: unknown } | undefined;
        const options = Array.isArray(p["options"]) ? (p["options"] as Array<{ value?: unknown }>) : [];
        return [
          {
            name: p["name"],
            type: typeof p["type"] === "string" ? p["type"] : "string",
            ...(typeof p["fieldType"] === "string" ? { fieldType: p["fieldType"] } : {}),
            hasUniqueValue: p["hasUniqueValue"] === true,
            readOnlyValue: meta?.readOnlyValue === true,
            options: options.flatMap((o) => (typeof o.value === "string" ? [o.value] : [])),
          },
        ];
      });
    },

    async createProperty(type, def) {
      try {
        await call("POST", paths.properties(type), def);
        return "created";
      } catch (error) {
        if (error instanceof HubSpotRequestRefusedError && error.status === 409) return "exists";
        throw error;
      }
    },

    async listPropertyGroups(type) {
      const answer = await call("GET", paths.propertyGroups(type));
      const results = (answer.json as { results?: Array<{ name?: unknown }> } | undefined)?.results ?? [];
      return results.flatMap((g) => (typeof g.name === "string" ? [g.name] : []));
    },

    async close() {
      // A hanging HubSpot must not hold shutdown up: in-flight requests get a moment, then are aborted.
      const closed = pool.close().then(() => true);
      const late = new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000).unref());
      if (!(await Promise.race([closed, late]))) await pool.destroy();
    },
  };
  return client;
}

interface Answer {
  readonly status: number;
  readonly json: unknown;
  readonly rateLimit: RateLimitInfo | undefined;
}

function readBatch(answer: Answer, idProperty?: string): BatchOutcome {
  const body = (answer.json ?? {}) as { results?: unknown[]; errors?: unknown[] };
  const results = (body.results ?? []).flatMap((raw): UpsertResult[] => {
    const r = raw as { id?: unknown; objectWriteTraceId?: unknown; properties?: Record<string, unknown> };
    if (typeof r.id !== "string" && typeof r.id !== "number") return [];
    return [
      {
        id: String(r.id),
        objectWriteTraceId: typeof r.objectWriteTraceId === "string" ? r.objectWriteTraceId : undefined,
        idValue:
          idProperty !== undefined && typeof r.properties?.[idProperty] === "string"
            ? r.properties[idProperty]
            : undefined,
      },
    ];
  });
  const errors = (body.errors ?? []).map((raw): InputError => {
    const e = raw as { message?: unknown; category?: unknown; context?: Record<string, unknown> };
    return {
      message: typeof e.message === "string" ? e.message : "rejected by HubSpot",
      category: typeof e.category === "string" ? e.category : undefined,
      traceIds: stringList(e.context?.["objectWriteTraceId"]),
      ids: stringList(e.context?.["ids"] ?? e.context?.["id"]),
      context: Object.fromEntries(Object.entries(e.context ?? {}).map(([k, v]) => [k, stringList(v)])),
    };
  });
  return { results, errors, rateLimit: answer.rateLimit };
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function headerNumber(headers: Headers, name: string): number | undefined {
  const v = header(headers, name);
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export function readRateLimit(headers: Headers): RateLimitInfo | undefined {
  const info = {
    max: headerNumber(headers, "x-hubspot-ratelimit-max"),
    remaining: headerNumber(headers, "x-hubspot-ratelimit-remaining"),
    intervalMs: headerNumber(headers, "x-hubspot-ratelimit-interval-milliseconds"),
    daily: headerNumber(headers, "x-hubspot-ratelimit-daily"),
    dailyRemaining: headerNumber(headers, "x-hubspot-ratelimit-daily-remaining"),
  };
  const present = Object.fromEntries(Object.entries(info).filter(([, v]) => v !== undefined));
  return Object.keys(present).length === 0 ? undefined : present;
}

/** Retry-After in seconds or as an HTTP date; undefined when absent or unreadable. */
function retryAfterMs(headers: Headers): number | undefined {
  const v = header(headers, "retry-after");
  if (v === undefined) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function classify(
  status: number,
  headers: Headers,
  json: unknown,
  text: string,
  rateLimit: RateLimitInfo | undefined,
): HubSpotError {
  const body = (json ?? {}) as {
    message?: unknown;
    category?: unknown;
    policyName?: unknown;
    context?: Record<string, string[]>;
  };
  const message = typeof body.message === "string" ? body.message : `HTTP ${status}: ${text.slice(0, 200)}`;
  const category = typeof body.category === "string" ? body.category : undefined;
  if (status === 429) {
    const policy = typeof body.policyName === "string" ? body.policyName : "TEN_SECONDLY_ROLLING";
    // A daily limit does not roll over in an interval: only an explicit Retry-After says when it returns.
    const daily = policy.toUpperCase() === "DAILY";
    const wait = retryAfterMs(headers) ?? (daily ? 0 : (rateLimit?.intervalMs ?? 10_000));
    return new HubSpotRateLimitError(message, {
      policy,
      retryAfterMs: wait,
      ...(rateLimit ? { rateLimit } : {}),
    });
  }
  if (status === 401 || status === 403) {
    return new HubSpotAuthError(message, {
      status,
      ...(category ? { category } : {}),
      ...(rateLimit ? { rateLimit } : {}),
    });
  }
  if (status === 423) return new HubSpotUnavailableError(message, { status, minDelayMs: 2000 });
  if (status === 477)
    return new HubSpotUnavailableError(message, { status, minDelayMs: retryAfterMs(headers) ?? 60_000 });
  if (status >= 500 || status === 408) {
    return new HubSpotUnavailableError(message, { status, minDelayMs: retryAfterMs(headers) ?? 0 });
  }
  // Only a validation error (400) or a request too large (413, split until the big input is alone)
  // blames an input; any other 4xx blames the request or the setup (see HubSpotRequestRefusedError).
  if (status !== 400 && status !== 413) {
    return new HubSpotRequestRefusedError(message, {
      status,
      ...(category ? { category } : {}),
      ...(rateLimit ? { rateLimit } : {}),
    });
  }
  return new HubSpotRejectedError(message, {
    status,
    ...(category ? { category } : {}),
    ...(body.context ? { context: body.context } : {}),
    ...(rateLimit ? { rateLimit } : {}),
  });
}

function networkError(cause: unknown): HubSpotError {
  const name =
    cause instanceof undiciErrors.HeadersTimeoutError || cause instanceof undiciErrors.BodyTimeoutError
      ? "timed out"
      : cause instanceof undiciErrors.ConnectTimeoutError
        ? "connect timed out"
        : cause instanceof Error
          ? cause.message
          : "network error";
  return new HubSpotUnavailableError(`HubSpot unreachable: ${name}`, { cause });
}

export function newTraceId(): string {
  return randomUUID();
}
