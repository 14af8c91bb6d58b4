import { Pool, errors as undiciErrors } from "undici";
import { classify } from "./classify.ts";
import type { HubSpotError } from "./errors.ts";
import { HubSpotUnavailableError } from "./errors.ts";
import { readRateLimit } from "./rate-limit-headers.ts";
import type { RateLimitInfo } from "./types.ts";

/**
 * One keep-alive undici pool to HubSpot and the one way requests go through it: exactly one attempt, a 2xx
 * answer returned, anything else thrown as a classified HubSpotError (classify.ts).
 */
export interface Transport {
  readonly call: (method: "GET" | "POST", path: string, body?: unknown) => Promise<Answer>;
  /** In-flight requests get a moment, then are aborted. */
  readonly close: () => Promise<void>;
}

/** A successful answer: status, parsed JSON (undefined when empty or unreadable) and the rate limit headers. */
export interface Answer {
  readonly status: number;
  readonly json: unknown;
  readonly rateLimit: RateLimitInfo | undefined;
}

export interface TransportOptions {
  readonly baseUrl: string;
  readonly accessToken: string;
  readonly connections?: number;
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
}

export function createTransport(opts: TransportOptions): Transport {
  const pool = new Pool(opts.baseUrl, {
    connections: opts.connections ?? 8,
    keepAliveTimeout: 30_000,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 30_000,
    connectTimeout: 10_000,
  });
  const prefix = new URL(opts.baseUrl).pathname.replace(/\/+$/, "");
  const authorization = `Bearer ${opts.accessToken}`;

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

  return {
    call,
    async close() {
      // A hanging HubSpot must not hold shutdown up: in-flight requests get a moment, then are aborted.
      const closed = pool.close().then(() => true);
      const late = new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000).unref());
      if (!(await Promise.race([closed, late]))) await pool.destroy();
    },
  };
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
