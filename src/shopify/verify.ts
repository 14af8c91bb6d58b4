import { createHmac, timingSafeEqual } from "node:crypto";

export type VerifyResult =
  | { readonly valid: true }
  | { readonly valid: false; readonly reason: "missing_hmac" | "malformed_hmac" | "mismatch" };

/**
 * The one base64 string of 32 bytes that Shopify sends (and @shopify/shopify-api compares): 43 characters,
 * the last carrying 4 bits and two zero bits, then one `=`. Node's decoder would also take the same bytes
 * unpadded, over-padded or with those two bits set; Shopify's library refuses them, so this does too.
 */
const HMAC_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/**
 * Checks X-Shopify-Hmac-Sha256 against the raw body under every configured secret, in constant time.
 * Every secret is tried even after a match, so the answer time does not tell which secret matched.
 */
export function verifyShopifyHmac(
  rawBody: Buffer,
  header: string | undefined,
  secrets: readonly string[],
): VerifyResult {
  if (header === undefined || header === "") return { valid: false, reason: "missing_hmac" };
  const trimmed = header.trim();
  if (!HMAC_BASE64.test(trimmed)) return { valid: false, reason: "malformed_hmac" };
  const given = Buffer.from(trimmed, "base64");
  let matched = false;
  for (const secret of secrets) {
    const expected = createHmac("sha256", secret).update(rawBody).digest();
    if (timingSafeEqual(expected, given)) matched = true;
  }
  return matched ? { valid: true } : { valid: false, reason: "mismatch" };
}

/** Signs a body as Shopify does; for tests, the demo and the benchmark. */
export function signShopifyBody(rawBody: Buffer | string, secret: string): string {
  return createHmac("sha256", secret).update(rawBody).digest("base64");
}
