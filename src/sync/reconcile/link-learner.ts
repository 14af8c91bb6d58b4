/**
 * Learns checkout-token → cart-token links from checkout webhooks (SPEC §9) off the request path: links are
 * collected in memory and written in batches, at most once per `flushEveryMs`, each link once per process.
 * A link is knowledge, not an acknowledged delivery: one lost in a crash is learned again from the next
 * checkout webhook of that checkout, and until then its abandoned checkout is keyed by its checkout token.
 */
import type { CartEvent } from "../cart-event.ts";
import type { CheckoutLink, ReconcileStore } from "../../store/reconcile-store.ts";

export interface LinkLearner {
  learn(event: CartEvent): void;
  /** Writes what is collected (shutdown, tests). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** Links remembered as written, so repeated checkout updates do not write again (bounded). */
const REMEMBERED = 50_000;
const MAX_BATCH = 500;

export function createLinkLearner(opts: {
  readonly store: Pick<ReconcileStore, "learnCheckoutLinks">;
  readonly flushEveryMs?: number;
  readonly onError?: (error: unknown) => void;
}): LinkLearner {
  const pending = new Map<string, CheckoutLink>();
  const written = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  async function write(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    while (pending.size > 0) {
      const batch = [...pending.entries()].slice(0, MAX_BATCH);
      for (const [id] of batch) pending.delete(id);
      try {
        await opts.store.learnCheckoutLinks(
          batch.map(([, link]) => link),
          Date.now(),
        );
        for (const [id, link] of batch) {
          if (written.size >= REMEMBERED) written.delete(written.keys().next().value ?? "");
          written.set(id, link.cartToken);
        }
      } catch (error) {
        opts.onError?.(error);
        return;
      }
    }
  }

  const flush = (): Promise<void> => (writing = writing.then(write));

  return {
    learn(event) {
      if (event.checkoutToken === undefined) return;
      const id = `${event.shopDomain}\n${event.checkoutToken}`;
      if (written.get(id) === event.token) return;
      pending.set(id, {
        shopDomain: event.shopDomain,
        checkoutToken: event.checkoutToken,
        cartToken: event.token,
      });
      if (pending.size >= MAX_BATCH) void flush();
      else if (timer === undefined) {
        timer = setTimeout(() => void flush(), opts.flushEveryMs ?? 1000);
        timer.unref();
      }
    },
    flush,
    async stop() {
      clearTimeout(timer);
      await flush();
    },
  };
}
