import type { Metrics } from "../metrics.ts";
import type { SenderObserver } from "../sync/lane-types.ts";
import type { RequiredPropertyWatch } from "../sync/required-properties.ts";

/**
 * The one observer every sender lane reports to: HubSpot requests, rate-limit waits, dead letters and
 * dropped values become metrics; refusals feed the required-property watch; a sent batch of carts wakes
 * the lanes that follow carts (contacts, line items).
 */
export function createSenderObserver(deps: {
  readonly metrics: Metrics;
  /** Every HubSpot request's operation and status (the console keeps the failed ones). */
  readonly onRequest: (operation: string, status: string) => void;
  readonly requiredCartProperties: RequiredPropertyWatch;
  readonly afterCartsSent: () => void;
}): SenderObserver {
  const { metrics, onRequest, requiredCartProperties, afterCartsSent } = deps;
  return {
    request(operation, status, seconds, size) {
      onRequest(operation, status);
      metrics.hubspotRequests.inc({ operation, status });
      metrics.hubspotRequestDuration.observe({ operation }, seconds);
      if (operation === "carts_upsert") metrics.batchSize.observe(size);
    },
    rateLimitWait(ms) {
      metrics.rateLimitWaits.inc();
      metrics.rateLimitWaitSeconds.inc(ms / 1000);
    },
    deadLettered(count, reasons) {
      metrics.deadLettersCreated.inc({ source: "hubspot" }, count);
      requiredCartProperties.rejected(reasons ?? []);
    },
    droppedValue(d) {
      metrics.droppedValues.inc({ property: d.property, reason: d.reason });
    },
    sent() {
      requiredCartProperties.sent();
      afterCartsSent();
    },
  };
}
