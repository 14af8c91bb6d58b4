import type { BuyerContact, EventStamp } from "../sync/cart-event.ts";
import type { ClaimedContact, DeadLetter } from "./store.ts";

/** Decoding of rows both stores share (SQLite and PostgreSQL return the same columns). */

type Row = Record<string, unknown>;

/** `{ [name]: value }` when the column is not NULL, else `{}` (optional fields stay absent). */
function optionalField(name: string, value: unknown): Record<string, string> {
  return value === null || value === undefined ? {} : { [name]: asText(value) };
}

/** A column's value as text (TEXT arrives as a string, BIGINT as a string, INTEGER as a number). */
function asText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Code-unit order, only to make the order of inserts deterministic. */
export function compareText(a: unknown, b: unknown): number {
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function optionalNumber(v: unknown): number | undefined {
  return v === null || v === undefined ? undefined : Number(v);
}

export function optionalString(v: unknown): string | undefined {
  return v === null || v === undefined ? undefined : asText(v);
}

/** A `dead_letters` row. */
export function toDeadLetter(row: Row): DeadLetter {
  const body = row["body"];
  return {
    id: Number(row["id"]),
    createdAtMs: Number(row["created_at"]),
    source: row["source"] === "hubspot" ? "hubspot" : "mapping",
    topic: String(row["topic"]),
    shopDomain: String(row["shop"]),
    webhookId: optionalString(row["webhook_id"]),
    cartKey: optionalString(row["cart_key"]),
    reason: String(row["reason"]),
    category: optionalString(row["category"]),
    headers: JSON.parse(String(row["headers"])) as Record<string, string>,
    body: body instanceof Uint8Array ? (Buffer.isBuffer(body) ? body : Buffer.from(body)) : undefined,
  };
}

/** The buyer columns of a `contact_links` row (email, firstname, lastname, phone); none when email is NULL. */
export function contactOf(row: Row): BuyerContact | undefined {
  const email = row["email"];
  return email === null || email === undefined
    ? undefined
    : {
        email: asText(email),
        ...optionalField("firstname", row["firstname"]),
        ...optionalField("lastname", row["lastname"]),
        ...optionalField("phone", row["phone"]),
      };
}

/** The stamp columns of a `contact_links` row. */
export function stampOf(row: Row): EventStamp {
  return {
    timeMs: Number(row["stamp_time"]),
    topicRank: Number(row["stamp_rank"]),
    webhookId: String(row["stamp_webhook"]),
  };
}

/** A claimed `contact_links` row joined with its cart's HubSpot id (claims only take rows with an e-mail). */
export function toClaimedContact(row: Row): ClaimedContact {
  const contact = contactOf(row);
  if (contact === undefined) throw new Error(`claimed contact of ${String(row["cart_key"])} has no e-mail`);
  return {
    cartKey: String(row["cart_key"]),
    cartId: String(row["hubspot_id"]),
    version: Number(row["version"]),
    attempts: Number(row["attempts"]),
    contact,
  };
}
