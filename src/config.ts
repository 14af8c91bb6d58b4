import { z } from "zod";
import { integer } from "./config-fields.ts";
import { ConfigError } from "./errors.ts";
import {
  readReconcileConfig,
  reconcileEnvShape,
  reconcileProblems,
  type ReconcileConfig,
} from "./config-reconcile.ts";
import { DEFAULT_HUBSPOT_API_VERSION, HUBSPOT_API_VERSION_PATTERN } from "./hubspot/paths.ts";

/** Validated configuration; see .env.example and README for each variable's meaning. */
export interface Config {
  readonly shopifyWebhookSecrets: readonly string[];
  readonly hubspotAccessToken: string;
  readonly hubspotBaseUrl: string;
  readonly hubspotCartIdProperty: string;
  /** `v3` or a HubSpot date version (`2026-03`, `2026-09`): which paths every HubSpot request uses. */
  readonly hubspotApiVersion: string;
  readonly hubspotMaxRequestsPer10s: number;
  readonly databaseUrl: string;
  readonly port: number;
  readonly flushIntervalMs: number;
  readonly logLevel: string;
  readonly adminToken: string | undefined;
  /** The console trusts X-Forwarded-Proto (a TLS-terminating proxy in front) for its cookie's Secure flag. */
  readonly adminTrustProxy: boolean;
  readonly hubspotSyncContacts: boolean;
  readonly hubspotSyncLineItems: boolean;
  readonly hubspotLineItemIdProperty: string;
  readonly deliveryRetentionDays: number;
  readonly maxBodyBytes: number;
  readonly claimLeaseMs: number;
  readonly reconcile: ReconcileConfig;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** A `true`/`false` variable (any case, spaces trimmed). */
function flag(defaultValue: boolean) {
  return z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(["true", "false"], { error: "must be true or false" }))
    .default(defaultValue ? "true" : "false")
    .transform((v) => v === "true");
}

const schema = z.object({
  SHOPIFY_WEBHOOK_SECRETS: z
    .string({ error: "is required" })
    .transform((raw) =>
      raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    )
    .pipe(z.array(z.string()).min(1, "must name at least one secret")),
  HUBSPOT_ACCESS_TOKEN: z.string({ error: "is required" }).trim().min(1, "must not be empty"),
  HUBSPOT_BASE_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .default("https://api.hubapi.com")
    .transform((u) => u.replace(/\/+$/, "")),
  HUBSPOT_CART_ID_PROPERTY: z
    .string()
    .trim()
    .regex(/^[a-z][a-z0-9_]*$/, "must be a HubSpot property name (lower-case letters, digits, _)")
    .default("shopify_cart_key"),
  HUBSPOT_API_VERSION: z
    .string()
    .trim()
    .regex(HUBSPOT_API_VERSION_PATTERN, "must be v3 or a HubSpot date version such as 2026-03 or 2026-09")
    .default(DEFAULT_HUBSPOT_API_VERSION),
  HUBSPOT_MAX_REQUESTS_PER_10S: integer(1, 100_000).default(100),
  DATABASE_URL: z
    .string()
    .trim()
    .refine(
      (u) => /^sqlite:.+/.test(u) || /^postgres(ql)?:\/\/.+/.test(u),
      "must be sqlite:<path> or postgres://…",
    )
    .default("sqlite:data/cartbridge.db"),
  PORT: integer(0, 65_535).default(3000),
  FLUSH_INTERVAL_MS: integer(1, 3_600_000).default(1000),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  ADMIN_TOKEN: z
    .string()
    .optional()
    .transform((t) => (t === undefined || t.trim() === "" ? undefined : t)),
  ADMIN_TRUST_PROXY: flag(false),
  HUBSPOT_SYNC_CONTACTS: flag(true),
  HUBSPOT_SYNC_LINE_ITEMS: flag(true),
  HUBSPOT_LINE_ITEM_ID_PROPERTY: z
    .string()
    .trim()
    .regex(/^[a-z][a-z0-9_]*$/, "must be a HubSpot property name (lower-case letters, digits, _)")
    .default("shopify_line_item_key"),
  DELIVERY_RETENTION_DAYS: integer(1, 3650).default(7),
  MAX_BODY_BYTES: integer(1, 1024 * 1024 * 1024).default(2_097_152),
  CLAIM_LEASE_MS: integer(1000, 3_600_000).default(30_000),
  ...reconcileEnvShape,
});

/** Reads configuration from an env record; throws ConfigError naming every problem at once. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  // An empty variable counts as unset, so `FOO=` in an env file falls back to the default.
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    // Messages name the variable and the rule, never the value (it may be a secret).
    const problems = parsed.error.issues.map((issue) => {
      const [name, item] = issue.path;
      return `${String(name)}${typeof item === "number" ? ` (entry ${item + 1})` : ""}: ${issue.message}`;
    });
    // The cross-variable rules too, from the raw values, so one message names every problem.
    const raw = (name: string): string | undefined => input[name];
    const shops = raw("SHOPIFY_SHOPS")
      ?.split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    problems.push(
      ...reconcileProblems({
        SHOPIFY_CLIENT_ID: raw("SHOPIFY_CLIENT_ID"),
        SHOPIFY_CLIENT_SECRET: raw("SHOPIFY_CLIENT_SECRET"),
        SHOPIFY_SHOPS: shops,
      }),
    );
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const problems = reconcileProblems(e);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    shopifyWebhookSecrets: e.SHOPIFY_WEBHOOK_SECRETS,
    hubspotAccessToken: e.HUBSPOT_ACCESS_TOKEN,
    hubspotBaseUrl: e.HUBSPOT_BASE_URL,
    hubspotCartIdProperty: e.HUBSPOT_CART_ID_PROPERTY,
    hubspotApiVersion: e.HUBSPOT_API_VERSION,
    hubspotMaxRequestsPer10s: e.HUBSPOT_MAX_REQUESTS_PER_10S,
    databaseUrl: e.DATABASE_URL,
    port: e.PORT,
    flushIntervalMs: e.FLUSH_INTERVAL_MS,
    logLevel: e.LOG_LEVEL,
    adminToken: e.ADMIN_TOKEN,
    adminTrustProxy: e.ADMIN_TRUST_PROXY,
    hubspotSyncContacts: e.HUBSPOT_SYNC_CONTACTS,
    hubspotSyncLineItems: e.HUBSPOT_SYNC_LINE_ITEMS,
    hubspotLineItemIdProperty: e.HUBSPOT_LINE_ITEM_ID_PROPERTY,
    deliveryRetentionDays: e.DELIVERY_RETENTION_DAYS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    claimLeaseMs: e.CLAIM_LEASE_MS,
    reconcile: readReconcileConfig(e),
  };
}
