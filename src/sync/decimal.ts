/**
 * Exact decimal numbers for money, on BigInt: no float ever touches an amount.
 *
 * Shopify sends money as decimal strings in major units with varying precision ("19.99", "52000.0", "0.0")
 * and, rarely, as JSON numbers. A `Decimal` is `units / 10^scale`; sums align scales, so
 * "52000.0" + "600.0" is exactly 52600.0.
 *
 * Accepted input: an optional "-", digits, optionally "." and digits (`/^-?\d+(\.\d+)?$/`), at most
 * `MAX_DECIMAL_LENGTH` characters; a finite JSON number is read through `String()` and must then match the
 * same pattern (so 1e21, which prints as "1e+21", is malformed). Everything else — "abc", "1e5", "1.2.3",
 * "+1", ".5", " 1" — is malformed. null, undefined and "" are absent, not malformed.
 *
 * Output (`formatDecimal`): digits with at most one ".", no exponent, no "+", at least two decimals and
 * never fewer than the input had ("52600.00", "0.00", "-1.50", "19.991") — what HubSpot `number` accepts.
 */

export interface Decimal {
  /** The value times 10^scale. */
  readonly units: bigint;
  /** Digits after the decimal point (≥ 0). */
  readonly scale: number;
}

/** The outcome of reading a money value: absent (null, undefined, ""), malformed, or a decimal. */
export type DecimalRead =
  | { readonly kind: "absent" }
  | { readonly kind: "malformed"; readonly input: string }
  | { readonly kind: "ok"; readonly value: Decimal };

/** Longer inputs are malformed: no money needs them, and BigInt parsing of huge strings is not free. */
export const MAX_DECIMAL_LENGTH = 64;

/** Decimals `formatDecimal` writes at least. */
export const MIN_FORMAT_SCALE = 2;

export const ZERO: Decimal = { units: 0n, scale: 0 };

const DECIMAL_PATTERN = /^(-?)(\d+)(?:\.(\d+))?$/;
const ABSENT: DecimalRead = { kind: "absent" };

export function readDecimal(value: unknown): DecimalRead {
  if (value === null || value === undefined || value === "") return ABSENT;
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "number" && Number.isFinite(value)) text = String(value);
  else return { kind: "malformed", input: describe(value) };
  if (text.length > MAX_DECIMAL_LENGTH) return { kind: "malformed", input: `${text.slice(0, 20)}…` };
  const match = DECIMAL_PATTERN.exec(text);
  if (match === null) return { kind: "malformed", input: text };
  const whole = match[2] ?? "";
  const fraction = match[3] ?? "";
  const magnitude = BigInt(whole + fraction);
  return { kind: "ok", value: { units: match[1] === "-" ? -magnitude : magnitude, scale: fraction.length } };
}

/** The decimal `value` denotes, or undefined when it is absent or malformed (use `readDecimal` to tell which). */
export function parseDecimal(value: unknown): Decimal | undefined {
  const read = readDecimal(value);
  return read.kind === "ok" ? read.value : undefined;
}

export function addDecimals(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

/** Σ values; the empty sum is zero. */
export function sumDecimals(values: Iterable<Decimal>): Decimal {
  let total = ZERO;
  for (const value of values) total = addDecimals(total, value);
  return total;
}

/** Canonical text: no exponent, no "+", at least `MIN_FORMAT_SCALE` decimals, never fewer than `value` has. */
export function formatDecimal(value: Decimal): string {
  const scale = Math.max(value.scale, MIN_FORMAT_SCALE);
  const units = rescale(value, scale);
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const point = digits.length - scale;
  return `${negative ? "-" : ""}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** `value` in canonical text, or undefined when absent or malformed. */
export function normalizeDecimal(value: unknown): string | undefined {
  const parsed = parseDecimal(value);
  return parsed === undefined ? undefined : formatDecimal(parsed);
}

function rescale(value: Decimal, scale: number): bigint {
  return scale === value.scale ? value.units : value.units * 10n ** BigInt(scale - value.scale);
}

function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) return "array";
  return typeof value;
}
