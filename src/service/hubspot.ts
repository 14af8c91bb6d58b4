import type { Config } from "../config.ts";
import { createHubSpotClient, type HubSpotClient } from "../hubspot/client.ts";
import type { Store } from "../store/store.ts";
import { createRateBudget, type RateBudget, type SharedSlots } from "../sync/rate-budget.ts";

/** The HubSpot client every sender lane shares, and the one request budget they all take slots from. */
export interface HubSpotConnection {
  readonly client: HubSpotClient;
  readonly budget: RateBudget;
}

export function connectHubSpot(
  config: Config,
  store: Store,
  timeoutMs: number | undefined,
): HubSpotConnection {
  const client: HubSpotClient = createHubSpotClient({
    baseUrl: config.hubspotBaseUrl,
    accessToken: config.hubspotAccessToken,
    apiVersion: config.hubspotApiVersion,
    // A request must end well within the claim lease (renewed every third of it).
    headersTimeoutMs: timeoutMs ?? 20_000,
    bodyTimeoutMs: timeoutMs ?? 20_000,
  });
  // Replicas on PostgreSQL share one budget through the store; SQLite serves one instance.
  const shared: SharedSlots | undefined = store.takeRateSlot?.bind(store);
  const budget = createRateBudget({
    maxRequests: config.hubspotMaxRequestsPer10s,
    ...(shared === undefined ? {} : { shared }),
  });
  return { client, budget };
}
