/**
 * Whether a kept body (a delivery kept for a dead letter, a dead letter) names a data subject, for
 * customers/redact and customers/data_request (SPEC §6: "exact e-mail or phone match").
 *
 * A body names the subject when it holds the subject's e-mail (compared without case) or phone as a whole
 * value, never as part of a longer one: `ann@x.com` is not in `joann@x.com`, `ann@x.com.au` or
 * `+ann@x.com`, and `+4477` is not in `+44771`. Bodies are Shopify's JSON (or, for a dead letter, whatever
 * could not be mapped), so the match looks at the text, not at JSON fields: an e-mail in a note or a
 * malformed body still counts.
 *
 * SQLite runs `bodyNamesSubject` as a SQL function (sqlite.ts); PostgreSQL runs the same patterns as
 * regular expressions (postgres-sql.ts: EMAIL_BEFORE / EMAIL_AFTER / PHONE_BEFORE / PHONE_AFTER around the
 * escaped value), so both stores erase exactly the same rows.
 */

/** What may not come before an e-mail: anything that could extend its local part. */
export const EMAIL_BEFORE = "(?<![a-z0-9._%+-])";
/** What may not come after: anything that could extend its domain (a sentence's full stop may). */
export const EMAIL_AFTER = "(?![a-z0-9_%+-]|\\.[a-z0-9])";
/** A phone is whole when no digit (or leading +) touches it. */
export const PHONE_BEFORE = "(?<![0-9+])";
export const PHONE_AFTER = "(?![0-9])";

const escapeRegExp = (text: string): string => text.replace(/[^a-zA-Z0-9]/g, (c) => `\\${c}`);

/** `email` as a whole e-mail, compared without case. */
export function emailPattern(email: string): RegExp {
  return new RegExp(`${EMAIL_BEFORE}${escapeRegExp(email)}${EMAIL_AFTER}`, "i");
}

export function phonePattern(phone: string): RegExp {
  return new RegExp(`${PHONE_BEFORE}${escapeRegExp(phone)}${PHONE_AFTER}`);
}

/**
 * A matcher for one subject (patterns compiled once). `email` and `phone` as the privacy request gives
 * them; either may be null. With neither, nothing matches (a whole-shop request does not look at bodies).
 */
export function createSubjectMatcher(): (
  body: Uint8Array | null,
  email: string | null,
  phone: string | null,
) => boolean {
  let cached: { email: string | null; phone: string | null; e?: RegExp; p?: RegExp } = {
    email: null,
    phone: null,
  };
  return (body, email, phone) => {
    if (body === null || (email === null && phone === null)) return false;
    if (cached.email !== email || cached.phone !== phone) {
      cached = {
        email,
        phone,
        ...(email === null ? {} : { e: emailPattern(email) }),
        ...(phone === null ? {} : { p: phonePattern(phone) }),
      };
    }
    const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8");
    return (cached.e?.test(text) ?? false) || (cached.p?.test(text) ?? false);
  };
}
