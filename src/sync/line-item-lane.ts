import type { HubSpotClient } from "../hubspot/client.ts";
import type { Store } from "../store/store.ts";
import type { LogSink, PauseTimings, SenderObserver } from "./lane-types.ts";
import { createLineItemSender, type LineItemSender } from "./line-item-sender.ts";
import { takeSlot } from "./pacing.ts";
import { createPortalWatcher, type PortalWatcher } from "./portal-watcher.ts";
import type { RateBudget } from "./rate-budget.ts";

/**
 * Wiring of the line item lane for service.ts: the portal's line item properties (read like the cart
 * properties, through the same rate budget) and the sender that uses them.
 */
export interface LineItemLane {
  readonly portal: PortalWatcher;
  readonly sender: LineItemSender;
  start(): void;
  wake(): void;
  degraded(): string | undefined;
  stop(): Promise<void>;
}

export function startLineItemLane(opts: {
  store: Store;
  client: HubSpotClient;
  budget: RateBudget;
  log: LogSink;
  observer: SenderObserver;
  idProperty: string;
  intervalMs: number;
  leaseMs: number;
  timings: PauseTimings;
}): LineItemLane {
  const portal = createPortalWatcher({
    client: opts.client,
    idProperty: opts.idProperty,
    log: opts.log,
    beforeRequest: () => takeSlot(opts.budget, Date.now),
    observer: opts.observer,
    onChange: () => sender.wake(),
    object: {
      list: () => opts.client.listLineItemProperties(),
      name: "line item",
      type: "line_items",
      variable: "HUBSPOT_LINE_ITEM_ID_PROPERTY",
    },
  });
  const sender: LineItemSender = createLineItemSender({
    ...opts,
    portal: () => portal.current(),
    portalProblem: () => portal.problem(),
  });
  return {
    portal,
    sender,
    start() {
      portal.start();
      sender.start();
    },
    wake: () => sender.wake(),
    degraded: () => sender.degraded(),
    async stop() {
      await sender.stop();
      portal.stop();
    },
  };
}
