import type { Config } from "./config.ts";
import type { Print } from "./cli.ts";
import { setUpReconciliation } from "./reconcile-setup.ts";
import { openStore } from "./store/open.ts";
import type { PageProgress } from "./sync/reconcile/pass.ts";

/**
 * `cartbridge reconcile [--shop <domain>] [--since <ISO date | Nd>]`: one pass now (SPEC §9), a progress
 * line per page and a summary per shop. What it changes is pending in the store: the running bridge (or
 * the next one started) sends it. Exit 0 when every pass completed, 1 otherwise, 64 on bad arguments.
 */
export async function reconcileCommand(
  config: Config,
  args: readonly string[],
  print: Print,
): Promise<number> {
  const parsed = parseArgs(args, Date.now());
  if (typeof parsed === "string") {
    print(`${parsed}\nusage: cartbridge reconcile [--shop <shop>.myshopify.com] [--since <ISO date | 30d>]`);
    return 64;
  }
  const configured = new Set([...config.reconcile.shops, ...config.reconcile.adminTokens.keys()]);
  if (parsed.shop !== undefined && !configured.has(parsed.shop)) {
    print(
      `${parsed.shop} is not a shop this bridge reconciles: add it to SHOPIFY_SHOPS (with SHOPIFY_CLIENT_ID/SECRET) ` +
        `or SHOPIFY_ADMIN_TOKENS${configured.size > 0 ? ` (configured: ${[...configured].join(", ")})` : ""}`,
    );
    return 64;
  }
  const store = await openStore(config.databaseUrl);
  const quiet = { info: () => {}, warn: () => {} };
  try {
    const reconciler = setUpReconciliation({
      config: config.reconcile,
      store,
      log: quiet,
      syncContacts: config.hubspotSyncContacts,
      ...(parsed.shop === undefined ? {} : { onlyShop: parsed.shop }),
    });
    if (reconciler === undefined) {
      print(
        "no shop to reconcile: set SHOPIFY_SHOPS (with SHOPIFY_CLIENT_ID/SECRET) or SHOPIFY_ADMIN_TOKENS",
      );
      return 1;
    }
    let ok = true;
    for (const { shopDomain } of reconciler.status()) {
      const result = await reconciler.runOnce(shopDomain, {
        ...(parsed.sinceMs === undefined ? {} : { sinceMs: parsed.sinceMs }),
        onPage: (p) => print(progressLine(p)),
      });
      const s = result.summary;
      const counts = `read ${s.read}, changed ${s.changed}, missed ${s.missed}, skipped without a key ${s.skipped}`;
      if (result.outcome === "completed") print(`${shopDomain}: pass completed: ${counts}`);
      else {
        ok = false;
        const reason = "reason" in result ? `: ${result.reason}` : "";
        const why =
          result.outcome === "leased"
            ? "another replica is reconciling this shop"
            : `${result.outcome}${reason}`;
        print(`${shopDomain}: pass not completed (${why}); ${counts}`);
      }
    }
    return ok ? 0 : 1;
  } finally {
    await store.close();
  }
}

function progressLine(p: PageProgress): string {
  return `${p.shopDomain} ${p.source} page ${p.page}: read ${p.read}, changed ${p.changed}, missed ${p.missed}, skipped ${p.skipped}${p.hasNextPage ? "" : " (last page)"}`;
}

/** `--since 30d` or an ISO date; `--shop` lower-cased. A string is the problem. */
export function parseArgs(
  args: readonly string[],
  nowMs: number,
): { shop?: string; sinceMs?: number } | string {
  const out: { shop?: string; sinceMs?: number } = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if ((flag === "--shop" || flag === "--since") && (value === undefined || value.startsWith("--"))) {
      return `${flag} needs a value`;
    }
    if (flag === "--shop") out.shop = (value ?? "").trim().toLowerCase();
    else if (flag === "--since") {
      const days = /^(\d+)d$/.exec(value ?? "");
      const ms = days?.[1] !== undefined ? nowMs - Number(days[1]) * 86_400_000 : Date.parse(value ?? "");
      if (!Number.isFinite(ms)) return `--since must be an ISO date or a number of days like 30d`;
      out.sinceMs = ms;
    } else return `unknown argument ${flag ?? ""}`;
    i++;
  }
  return out;
}
