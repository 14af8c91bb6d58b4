import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { topicLabel } from "../http/webhooks.ts";
import type { Metrics } from "../metrics.ts";
import { createGroupCommitter } from "../store/group-commit.ts";
import type { Store } from "../store/store.ts";
import type { CartEvent } from "../sync/cart-event.ts";
import { startInboxIntake, type InboxIntakeOptions } from "../sync/inbox-intake.ts";
import { createDeliveryMapper, createGroupIntake, type Intake, type OutcomeSink } from "../sync/intake.ts";

/**
 * The intake the store calls for: the inbox for a SQLite file (the answer waits for an fsync off the event
 * loop, the store's transaction runs behind it), the group commit otherwise (PostgreSQL's I/O is async
 * already). Either way every delivery's outcome is counted once, when it is known.
 */
export async function startIntake(
  config: Config,
  log: Logger,
  options: Pick<InboxIntakeOptions, "applyDelayMs">,
  parts: {
    store: Store;
    metrics: Metrics;
    onChanged: () => void;
    onCheckoutEvent?: (event: CartEvent) => void;
  },
): Promise<Intake> {
  const { store, metrics } = parts;
  const map = createDeliveryMapper({
    syncContacts: config.hubspotSyncContacts,
    syncLineItems: config.hubspotSyncLineItems,
    log,
    onCheckoutEvent: parts.onCheckoutEvent,
  });
  const onOutcome: OutcomeSink = (delivery, outcome) => {
    metrics.webhooksReceived.inc({ topic: topicLabel(delivery.topic), outcome });
    if (outcome === "applied") parts.onChanged();
    if (outcome === "dead_lettered") metrics.deadLettersCreated.inc({ source: "mapping" });
    log.debug(
      { topic: delivery.topic, shop: delivery.shopDomain, webhookId: delivery.webhookId, outcome },
      "delivery received",
    );
  };
  const observe = (size: number, seconds: number): void => {
    metrics.groupCommitSize.observe(size);
    metrics.groupCommitDuration.observe(seconds);
  };
  if (store.inbox !== undefined) {
    const intake = await startInboxIntake(store.inbox, map, onOutcome, {
      ...options,
      onApply: observe,
      onError: (err, what) => log.error({ err }, what),
    });
    if (intake.replayed > 0)
      log.info({ deliveries: intake.replayed }, "applied what the inbox held from before");
    return intake;
  }
  return createGroupIntake(createGroupCommitter(store, { onCommit: observe }), map, onOutcome);
}
