import type { RateLimitInfo } from "./types.ts";

/** Reading HubSpot's answer headers: X-HubSpot-RateLimit-* and Retry-After. */
export type Headers = Record<string, string | string[] | undefined>;

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
export function retryAfterMs(headers: Headers): number | undefined {
  const v = header(headers, "retry-after");
  if (v === undefined) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
