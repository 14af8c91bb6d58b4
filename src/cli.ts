import type { Config } from "./config.ts";
import { createHubSpotClient } from "./hubspot/client.ts";
import { HubSpotAuthError } from "./hubspot/errors.ts";
import {
  adviceFor,
  ensureKeyProperty,
  keyPropertySpec,
  readKeyProperty,
  type KeyPropertySpec,
} from "./hubspot/key-property.ts";
import { openStore } from "./store/open.ts";
import { describeDeadLetter } from "./store/store.ts";
import { allDeadLetterIds, replayDeadLetters } from "./sync/replay.ts";

/** The one-shot commands; each returns the process exit code (main.ts exits). */
export type Print = (line: string) => void;

export async function setupHubSpot(config: Config, print: Print): Promise<number> {
  const client = createHubSpotClient({
    baseUrl: config.hubspotBaseUrl,
    accessToken: config.hubspotAccessToken,
    apiVersion: config.hubspotApiVersion,
  });
  try {
    const carts = await ensureOne(client, keyPropertySpec("carts", config.hubspotCartIdProperty), print);
    if (carts !== 0 || !config.hubspotSyncLineItems) return carts;
    return await ensureOne(client, keyPropertySpec("line_items", config.hubspotLineItemIdProperty), print);
  } finally {
    await client.close();
  }
}

/** ensureKeyProperty, with a refused token or a failure said in words (exit code 1). */
async function ensureOne(
  client: ReturnType<typeof createHubSpotClient>,
  spec: KeyPropertySpec,
  print: Print,
): Promise<number> {
  try {
    return await ensureKeyProperty(client, spec, print);
  } catch (error) {
    if (error instanceof HubSpotAuthError) {
      const type = spec.objectType;
      print(
        `HubSpot refused (${error.status}): ${error.message}\n` +
          `The access token needs the crm.objects.${type}.read/write scopes, and crm.schemas.${type}.write to ` +
          `create properties` +
          (type === "line_items" ? " (or set HUBSPOT_SYNC_LINE_ITEMS=false)." : "."),
      );
      return 1;
    }
    print(`setup failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

/** What `status` says about HubSpot: the key property's advice (as /readyz gives it), or why it was not read. */
async function hubspotSetupProblems(config: Config): Promise<string[]> {
  const client = createHubSpotClient({
    baseUrl: config.hubspotBaseUrl,
    accessToken: config.hubspotAccessToken,
    apiVersion: config.hubspotApiVersion,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
  });
  try {
    const spec = keyPropertySpec("carts", config.hubspotCartIdProperty);
    const advice = adviceFor(spec, await readKeyProperty(client, spec));
    return advice === undefined ? [] : [advice];
  } catch (error) {
    return [`HubSpot could not be read: ${error instanceof Error ? error.message : String(error)}`];
  } finally {
    await client.close();
  }
}

export async function deadLetters(config: Config, args: readonly string[], print: Print): Promise<number> {
  const [sub, ...rest] = args;
  const store = await openStore(config.databaseUrl);
  try {
    if (sub === "list") {
      let count = 0;
      let afterId = 0;
      for (;;) {
        const page = await store.listDeadLetters({ limit: 500, afterId });
        if (page.length === 0) break;
        for (const l of page) {
          print(JSON.stringify(describeDeadLetter(l)));
          count++;
        }
        afterId = page[page.length - 1]?.id ?? afterId;
      }
      print(`${count} dead letter(s)`);
      return 0;
    }
    if (sub === "replay") {
      const ids = rest.includes("--all") ? await allDeadLetterIds(store) : rest.map(Number);
      if (ids.length === 0 || ids.some((id) => !Number.isSafeInteger(id) || id <= 0)) {
        print("usage: cartbridge dead-letters replay <id>… | --all");
        return 64;
      }
      const results = await replayDeadLetters(store, ids, {
        nowMs: Date.now(),
        syncContacts: config.hubspotSyncContacts,
        syncLineItems: config.hubspotSyncLineItems,
      });
      for (const r of results) print(JSON.stringify(r));
      const replayed = results.filter((r) => r.outcome === "replayed").length;
      print(
        `${replayed} of ${results.length} replayed; a running bridge sends them within about 30 s (it reads the store at least that often)`,
      );
      return results.every((r) => r.outcome === "replayed") ? 0 : 1;
    }
    print("usage: cartbridge dead-letters list | replay <id>… | replay --all");
    return 64;
  } finally {
    await store.close();
  }
}

export async function status(config: Config, print: Print): Promise<number> {
  const store = await openStore(config.databaseUrl);
  try {
    const now = Date.now();
    const s = await store.stats(now);
    const hubspotSetup = await hubspotSetupProblems(config);
    print(
      JSON.stringify(
        {
          carts: s.carts,
          pendingCarts: s.pendingCarts,
          oldestPendingAgeSeconds:
            s.oldestPendingSinceMs === undefined ? 0 : Math.round((now - s.oldestPendingSinceMs) / 1000),
          deadLetters: s.deadLetters,
          hubspotSetup,
        },
        null,
        2,
      ),
    );
    return 0;
  } finally {
    await store.close();
  }
}
