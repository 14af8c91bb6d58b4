/**
 * The value readers the topic mappers share (mapping-topics.ts): each writes one property into `Props` or
 * leaves it out with a warning, and never throws. Pure.
 */
import type { Person } from "../shopify/payloads.ts";
import { formatDecimal, readDecimal, sumDecimals } from "./decimal.ts";
import type { Decimal } from "./decimal.ts";

/** Properties under construction, plus what was left out and why. */
export interface Props {
  readonly values: Record<string, string>;
  readonly warnings: string[];
}

/**
 * An ISO 8601 instant ("2021-12-31T19:00:00-05:00", "2023-12-11T04:40:09.792Z", or Shopify's
 * X-Shopify-Triggered-At "2025-07-10T16:15:47.000000Z") as epoch ms, or undefined. Fractions are cut to
 * milliseconds before `Date.parse`, which does not take six digits everywhere; other formats are refused.
 */
export function parseInstantMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = INSTANT_PATTERN.exec(value.trim());
  if (match === null) return undefined;
  const [, dateTime, fraction = "", zone = ""] = match;
  const millis = fraction.slice(0, 3).padEnd(3, "0");
  const offset =
    zone === "Z" || zone === "z" ? "Z" : zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const ms = Date.parse(`${dateTime}.${millis}${offset}`);
  return Number.isFinite(ms) ? ms : undefined;
}

const INSTANT_PATTERN = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|z|[+-]\d{2}:?\d{2})$/;
export function newProps(): Props {
  return { values: {}, warnings: [] };
}

export function putText(props: Props, name: string, value: string | null | undefined): void {
  const text = nonEmpty(value);
  if (text !== undefined) props.values[name] = text;
}

export function putAmount(props: Props, name: string, value: unknown): void {
  const read = readDecimal(value);
  if (read.kind === "ok") props.values[name] = formatDecimal(read.value);
  else if (read.kind === "malformed") props.warnings.push(`${name}: malformed amount "${read.input}"`);
}

/** Writes Σ pick(item); an empty list is a zero sum, an absent list writes nothing. */
export function putSum<T>(
  props: Props,
  name: string,
  items: readonly T[] | null | undefined,
  pick: (item: T) => unknown,
): void {
  if (items === null || items === undefined) return;
  const terms: Decimal[] = [];
  for (const [index, item] of items.entries()) {
    const read = readDecimal(pick(item));
    if (read.kind === "ok") terms.push(read.value);
    else {
      const problem = read.kind === "absent" ? "has no amount" : `has malformed amount "${read.input}"`;
      props.warnings.push(`${name}: item ${index} ${problem}`);
      return;
    }
  }
  props.values[name] = formatDecimal(sumDecimals(terms));
}

export function putInstant(props: Props, name: string, value: string | null | undefined): void {
  if (nonEmpty(value) === undefined) return;
  const ms = parseInstantMs(value);
  if (ms === undefined) props.warnings.push(`${name}: malformed date "${value}"`);
  else props.values[name] = new Date(ms).toISOString();
}

/** The first value that is present (not null, undefined or ""); MoneyBag presentment amount before the plain one. */
export function either(preferred: unknown, fallback: unknown): unknown {
  return preferred === null || preferred === undefined || preferred === "" ? fallback : preferred;
}

/** Tokens are opaque non-empty strings; numbers are ids, not tokens. */
export function asToken(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

export function asEmail(value: string | null | undefined): string | undefined {
  const email = value?.trim().toLowerCase();
  return email !== undefined && EMAIL_PATTERN.test(email) ? email : undefined;
}

const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+$/;

export function asPerson(value: Person | readonly unknown[] | null | undefined): Person | undefined {
  return value === null || value === undefined || Array.isArray(value) ? undefined : (value as Person);
}

export function nonEmpty(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === "" ? undefined : value;
}

/** A count: a non-negative integer, or a string of digits (some stores send `"quantity": "3"`). */
export function asCount(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === "string" && /^\s*\d+\s*$/.test(value)) {
    const count = Number(value);
    return Number.isSafeInteger(count) ? count : undefined;
  }
  return undefined;
}

/** An ISO 4217 code as HubSpot's enumeration holds it ("eur" → "EUR"); none when empty. */
export function currencyCode(value: string | null | undefined): string | undefined {
  return nonEmpty(value?.trim())?.toUpperCase();
}
