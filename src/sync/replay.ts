import { headerValue, SHOPIFY_HEADERS } from "../shopify/headers.ts";
import type { DeadLetter, Store } from "../store/store.ts";
import { mapVerifiedDelivery } from "./delivery-mapping.ts";
import { PRIVACY_TOPICS } from "./privacy.ts";
import { RECONCILE_TOPIC_RANK } from "./reconcile/map.ts";

/** The header reconciliation puts on the deliveries it makes (see reconcile/pass.ts). */
const RECONCILIATION_SOURCE_HEADER = "x-cartbridge-source";

const PRIVACY_NOT_REPLAYED =
  "a privacy request is not replayed; act on it by hand (it expires with DELIVERY_RETENTION_DAYS)";

export interface ReplayResult {
  readonly id: number;
  readonly outcome: "replayed" | "still_failing" | "not_found";
  readonly reason?: string;
}

/** Every dead letter's id, oldest first (a replay of "all": the CLI's --all, the admin API's {"all": true}). */
export async function allDeadLetterIds(store: Pick<Store, "listDeadLetters">): Promise<number[]> {
  const ids: number[] = [];
  let afterId = 0;
  for (;;) {
    const page = await store.listDeadLetters({ limit: 1000, afterId });
    if (page.length === 0) return ids;
    for (const l of page) ids.push(l.id);
    afterId = page[page.length - 1]?.id ?? afterId;
  }
}

/**
 * Maps each dead letter's stored delivery again and commits the result. A fixed mapping, or a property
 * the portal now has, lets an old failure through; the dead letter is removed once it passed.
 */
export async function replayDeadLetters(
  store: Store,
  ids: readonly number[],
  opts: { nowMs: number; syncContacts: boolean; syncLineItems?: boolean; onChanged?: () => void },
): Promise<ReplayResult[]> {
  const letters = await store.getDeadLetters(ids);
  const byId = new Map(letters.map((l) => [l.id, l]));
  const results: ReplayResult[] = [];
  for (const id of ids) {
    const letter = byId.get(id);
    if (letter === undefined) {
      results.push({ id, outcome: "not_found" });
      continue;
    }
    results.push(await replayOne(store, letter, opts));
  }
  opts.onChanged?.();
  return results;
}

async function replayOne(
  store: Store,
  letter: DeadLetter,
  { nowMs, syncContacts, syncLineItems }: { nowMs: number; syncContacts: boolean; syncLineItems?: boolean },
): Promise<ReplayResult> {
  // Mapped as live ingest maps it: the same tie-breaker, and no buyer kept when contact sync is off.
  let mapped = mapVerifiedDelivery({
    topic: letter.topic,
    shopDomain: letter.shopDomain,
    body: letter.body ?? Buffer.alloc(0),
    webhookId: letter.webhookId,
    triggeredAt: headerValue(letter.headers, SHOPIFY_HEADERS.triggeredAt),
    receivedAtMs: letter.createdAtMs,
    syncContacts,
    ...(syncLineItems === undefined ? {} : { syncLineItems }),
  });
  if (mapped.kind === "invalid") return { id: letter.id, outcome: "still_failing", reason: mapped.reason };
  // A delivery reconciliation made (no webhook id) keeps reconciliation's rank: a webhook still wins a tie.
  if (
    mapped.kind === "event" &&
    headerValue(letter.headers, RECONCILIATION_SOURCE_HEADER) === "reconciliation"
  ) {
    const { lines: _none, ...event } = mapped.event;
    mapped = { ...mapped, event: { ...event, stamp: { ...event.stamp, topicRank: RECONCILE_TOPIC_RANK } } };
  }
  if (mapped.kind === "unhandled" && PRIVACY_TOPICS.has(letter.topic)) {
    // An unreadable privacy request: deleting it would answer nothing. The operator acts on it by hand.
    return { id: letter.id, outcome: "still_failing", reason: PRIVACY_NOT_REPLAYED };
  }
  if (mapped.kind === "event") {
    await store.ingestBatch([
      {
        webhookId: letter.webhookId,
        topic: letter.topic,
        shopDomain: letter.shopDomain,
        receivedAtMs: nowMs,
        headers: letter.headers,
        body: letter.body ?? Buffer.alloc(0),
        mapped,
        replay: true,
      },
    ]);
    // HubSpot rejected the cart before: send it again even when the delivery changed nothing now.
    await store.markPending(mapped.event.key, nowMs);
  } else if (letter.source === "hubspot" && letter.cartKey !== undefined) {
    await store.markPending(letter.cartKey, nowMs);
  }
  await store.deleteDeadLetters([letter.id]);
  return { id: letter.id, outcome: "replayed" };
}
