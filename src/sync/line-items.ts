/**
 * A cart's line set (SPEC §10): the `line_items` of one cart, checkout or order delivery, mapped to the
 * HubSpot line items they become. Pure: parsed JSON in, values out; never throws on odd input.
 *
 * Terminology
 * - line set: every line of one event, replaced as a whole by a newer event's set (`lines` on a CartEvent;
 *   undefined when the event carries no `line_items`, as `checkouts/delete`).
 * - line key: `<cart key>:<variant id>` (product id, else title, when the line has no variant), with `:<n>`
 *   appended to the n-th (n ≥ 2) line of the same variant in one set. Written to HUBSPOT_LINE_ITEM_ID_PROPERTY,
 *   so one variant keeps its HubSpot line item from cart to checkout to order.
 *
 * Properties: `name` (title, with the variant title when there is one and the title does not already end
 * with it), `quantity`, `price` (unit price, presentment, exact decimal), `hs_sku`, `discount` (the line's
 * total discount), `hs_line_item_currency_code`. A malformed amount drops only its own property.
 *
 * Ids above 2^53 (Shopify's docs samples have them; real ids have 13–14 digits today) arrive exact: the
 * mapping parses `variant_id` and `product_id` from their source text (mapping.ts, parseBody).
 */
import { formatDecimal, readDecimal, sumDecimals, type Decimal } from "./decimal.ts";
import { asCount, currencyCode } from "./mapping-values.ts";

export interface LineDraft {
  /** `<cart key>:<variant id>[:<n>]` */
  readonly key: string;
  /** HubSpot line item properties (strings), without the id property. */
  readonly properties: Readonly<Record<string, string>>;
}

type Family = "carts" | "checkouts" | "orders";

type Json = Record<string, unknown>;

/**
 * The line set an event carries, or undefined when it carries none (no `line_items`, or a topic without
 * lines). `body` is the delivery's parsed JSON object.
 */
export function mapLineSet(
  topic: string,
  body: Readonly<Json>,
  cartKey: string,
): readonly LineDraft[] | undefined {
  if (topic === "checkouts/delete") return undefined;
  const family = topic.slice(0, topic.indexOf("/")) as Family;
  if (family !== "carts" && family !== "checkouts" && family !== "orders") return undefined;
  const items = body["line_items"];
  if (!Array.isArray(items)) return undefined;
  const fallbackCurrency =
    currencyCode(text(body["presentment_currency"])) ?? currencyCode(text(body["currency"]));
  const seen = new Map<string, number>();
  const lines: LineDraft[] = [];
  for (const item of items) {
    if (!isObject(item)) continue;
    const base = `${cartKey}:${lineIdentity(item)}`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    lines.push({
      key: n === 1 ? base : `${base}:${n}`,
      properties: lineProperties(family, item, fallbackCurrency),
    });
  }
  return lines;
}

/** Variant id, else product id, else title. */
function lineIdentity(item: Json): string {
  return (
    id(item["variant_id"]) ??
    id(item["product_id"]) ??
    text(item["title"])?.trim() ??
    text(item["presentment_title"])?.trim() ??
    text(item["name"])?.trim() ??
    "untitled"
  );
}

function lineProperties(
  family: Family,
  item: Json,
  fallbackCurrency: string | undefined,
): Record<string, string> {
  const props: Record<string, string> = {};
  const name = lineName(item);
  if (name !== undefined) props["name"] = name;
  const quantity = asCount(item["quantity"]);
  if (quantity !== undefined) props["quantity"] = String(quantity);
  const price = amount(either(presentment(item["price_set"]), item["price"]));
  if (price !== undefined) props["price"] = price;
  const sku = text(item["sku"])?.trim();
  if (sku !== undefined && sku !== "") props["hs_sku"] = sku;
  const discount = lineDiscount(family, item);
  if (discount !== undefined) props["discount"] = discount;
  const currency =
    currencyOf(item["price_set"]) ??
    currencyOf(item["line_price_set"]) ??
    (family === "carts" ? undefined : fallbackCurrency);
  if (currency !== undefined) props["hs_line_item_currency_code"] = currency;
  return props;
}

/** Title (presentment title on checkouts), with the variant title when it adds something. */
function lineName(item: Json): string | undefined {
  const title = (text(item["title"]) ?? text(item["presentment_title"]) ?? text(item["name"]))?.trim();
  const variant = (text(item["variant_title"]) ?? text(item["presentment_variant_title"]))?.trim();
  if (title === undefined || title === "")
    return variant === undefined || variant === "" ? undefined : variant;
  if (variant === undefined || variant === "" || title.endsWith(variant)) return title;
  return `${title} - ${variant}`;
}

/**
 * The line's total discount: Σ `discount_allocations` (presentment where present) when the line lists them
 * (checkouts and orders; an empty list is zero), else `total_discount` (presentment where present).
 */
function lineDiscount(family: Family, item: Json): string | undefined {
  const allocations = item["discount_allocations"];
  if (family !== "carts" && Array.isArray(allocations)) {
    const terms: Decimal[] = [];
    for (const a of allocations) {
      if (!isObject(a)) return undefined;
      const read = readDecimal(either(presentment(a["amount_set"]), a["amount"]));
      if (read.kind !== "ok") return undefined; // a partial sum would be a wrong discount
      terms.push(read.value);
    }
    if (terms.length > 0 || item["total_discount"] === undefined) return formatDecimal(sumDecimals(terms));
  }
  return amount(either(presentment(item["total_discount_set"]), item["total_discount"]));
}

function presentment(bag: unknown): unknown {
  if (!isObject(bag)) return undefined;
  const money = bag["presentment_money"];
  return isObject(money) ? money["amount"] : undefined;
}

function currencyOf(bag: unknown): string | undefined {
  if (!isObject(bag)) return undefined;
  const money = bag["presentment_money"];
  return isObject(money) ? currencyCode(text(money["currency_code"])) : undefined;
}

function amount(value: unknown): string | undefined {
  const read = readDecimal(value);
  return read.kind === "ok" ? formatDecimal(read.value) : undefined;
}

function either(preferred: unknown, fallback: unknown): unknown {
  return preferred === null || preferred === undefined || preferred === "" ? fallback : preferred;
}

function id(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  return undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
