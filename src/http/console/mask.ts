/**
 * Personal data masked out of a stored delivery before an operator sees it: e-mails, names, phones,
 * addresses (every field of an address object), IP addresses and notes. The shape stays, so the operator
 * can still see which fields were there and what the amounts and line items were.
 */
export const MASK = "•••";

const PERSONAL_KEY =
  /^(e-?mail|contact_email|customer_email|first_?name|last_?name|phone|browser_ip|note|company|latitude|longitude)$/i;
/** Objects whose every field is personal: addresses, the customer, the buyer's browser. */
const PERSONAL_CONTAINER = /address|client_details|customer/i;

/** Masks a delivery body: JSON is walked; anything else is replaced whole (it cannot be shown safely). */
export function maskDeliveryBody(body: Buffer | undefined): unknown {
  if (body === undefined || body.length === 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return `${MASK} (${body.length} bytes that are not JSON, not shown)`;
  }
  return maskValue(parsed, false);
}

function maskValue(value: unknown, insidePersonal: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => maskValue(v, insidePersonal));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = PERSONAL_KEY.test(k)
        ? maskLeaf(v)
        : maskValue(v, insidePersonal || PERSONAL_CONTAINER.test(k));
    }
    return out;
  }
  return insidePersonal ? maskLeaf(value) : value;
}

function maskLeaf(v: unknown): unknown {
  if (v === null || v === undefined || v === "") return v;
  if (typeof v === "object") return maskValue(v, true);
  return MASK;
}
