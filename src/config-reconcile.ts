import { z } from "zod";
import { integer } from "./config-fields.ts";

/** Reconciliation's configuration (SPEC §2, §9); part of `Config` as `reconcile`. */
export interface ReconcileConfig {
  readonly clientId: string | undefined;
  readonly clientSecret: string | undefined;
  /** Shops served by the client credentials grant. */
  readonly shops: readonly string[];
  /** Shops with a legacy custom app's token (shop → token). */
  readonly adminTokens: ReadonlyMap<string, string>;
  readonly apiVersion: string;
  readonly adminApiUrl: string | undefined;
  readonly intervalMs: number;
  readonly lookbackDays: number;
}

const SHOP_PATTERN = /^[a-z0-9][a-z0-9-]*\.myshopify\.com$/;
const list = (raw: string): string[] =>
  raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
/** Fields of the environment schema in config.ts. Messages never quote a value (tokens are secrets). */
export const reconcileEnvShape = {
  SHOPIFY_CLIENT_ID: z.string().trim().optional(),
  SHOPIFY_CLIENT_SECRET: z.string().trim().optional(),
  SHOPIFY_SHOPS: z
    .string()
    .transform((raw) => list(raw).map((s) => s.toLowerCase()))
    .pipe(z.array(z.string().regex(SHOP_PATTERN, "must list <shop>.myshopify.com domains")))
    .optional(),
  SHOPIFY_ADMIN_TOKENS: z
    .string()
    .transform((raw, ctx) => {
      const tokens = new Map<string, string>();
      for (const pair of list(raw)) {
        const at = pair.indexOf("=");
        const shop = pair.slice(0, Math.max(at, 0)).trim().toLowerCase();
        const token = pair.slice(at + 1).trim();
        if (at < 0 || !SHOP_PATTERN.test(shop) || token === "") {
          ctx.addIssue({
            code: "custom",
            message: "must be <shop>.myshopify.com=<token> pairs, comma-separated",
          });
          return z.NEVER;
        }
        tokens.set(shop, token);
      }
      return tokens;
    })
    .optional(),
  SHOPIFY_API_VERSION: z
    .string()
    .trim()
    .regex(/^\d{4}-(01|04|07|10)$/, "must be a Shopify API version like 2026-10")
    .refine((v) => v >= "2026-07", "must be 2026-07 or later (Order.cartToken)")
    .default("2026-10"),
  SHOPIFY_ADMIN_API_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .transform((u) => u.replace(/\/+$/, ""))
    .optional(),
  RECONCILE_INTERVAL_MS: integer(0, 7 * 86_400_000).default(300_000),
  RECONCILE_LOOKBACK_DAYS: integer(0, 3650).default(30),
};

type Parsed = z.output<z.ZodObject<typeof reconcileEnvShape>>;

/** Problems across variables (the grant needs both credentials), as `path: message` lines. */
export function reconcileProblems(
  e: Pick<Parsed, "SHOPIFY_CLIENT_ID" | "SHOPIFY_CLIENT_SECRET" | "SHOPIFY_SHOPS">,
): string[] {
  const problems: string[] = [];
  const hasId = e.SHOPIFY_CLIENT_ID !== undefined && e.SHOPIFY_CLIENT_ID !== "";
  const hasSecret = e.SHOPIFY_CLIENT_SECRET !== undefined && e.SHOPIFY_CLIENT_SECRET !== "";
  if ((e.SHOPIFY_SHOPS?.length ?? 0) > 0 && !(hasId && hasSecret)) {
    problems.push("SHOPIFY_SHOPS: needs SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET");
  }
  if (hasId !== hasSecret)
    problems.push("SHOPIFY_CLIENT_ID, SHOPIFY_CLIENT_SECRET: must be set together (or neither)");
  return problems;
}

export function readReconcileConfig(e: Parsed): ReconcileConfig {
  return {
    clientId: e.SHOPIFY_CLIENT_ID || undefined,
    clientSecret: e.SHOPIFY_CLIENT_SECRET || undefined,
    shops: e.SHOPIFY_SHOPS ?? [],
    adminTokens: e.SHOPIFY_ADMIN_TOKENS ?? new Map(),
    apiVersion: e.SHOPIFY_API_VERSION,
    adminApiUrl: e.SHOPIFY_ADMIN_API_URL,
    intervalMs: e.RECONCILE_INTERVAL_MS,
    lookbackDays: e.RECONCILE_LOOKBACK_DAYS,
  };
}
