import type { ClaimedCart, Store } from "../store/store.ts";
import type { LogSink } from "./lane-types.ts";

/**
 * Claims lost while a batch is out: their renewal failed or found the lease gone, so another sender may own
 * the cart now. The batch must not mark such a cart sent, nor send it again (narrowing); the cart is made
 * pending to be sent again.
 */
export interface LostClaims {
  has(claim: ClaimedCart): boolean;
  /** Records claims as lost; logs once for those not lost before. */
  lose(claims: readonly ClaimedCart[]): void;
}

export const CLAIMS_LOST_MESSAGE = "claims lost while sending; those carts will be sent again";

export function createLostClaims(log: LogSink): LostClaims {
  const lost = new WeakSet<ClaimedCart>();
  return {
    has: (claim) => lost.has(claim),
    lose(claims) {
      const fresh = claims.filter((c) => !lost.has(c));
      if (fresh.length === 0) return;
      log.warn({ count: fresh.length }, CLAIMS_LOST_MESSAGE);
      for (const c of fresh) lost.add(c);
    },
  };
}

/**
 * Keeps `claims` alive while their batch is out (a slow HubSpot, a narrowed rejection), renewing every
 * third of the lease, so another replica never takes over carts this one is still sending; a dead replica's
 * claims just expire. A claim the renewal did not find held (or a renewal that failed) is lost. Returns the
 * function that stops the renewals.
 */
export function renewWhileSending(
  claims: readonly ClaimedCart[],
  opts: {
    store: Store;
    owner: string;
    leaseMs: number;
    now: () => number;
    log: LogSink;
    lost: LostClaims;
  },
): () => void {
  const { store, owner, leaseMs, now, log, lost } = opts;
  const keys = claims.map((c) => c.key);
  const renewal = setInterval(() => {
    store.renewClaims(keys, owner, { nowMs: now(), leaseMs }).then(
      (held) => {
        if (held.length < claims.length) lost.lose(claims.filter((c) => !held.includes(c.key)));
      },
      (error: unknown) => {
        log.warn({ err: error }, "claim renewal failed");
        lost.lose(claims);
      },
    );
  }, leaseMs / 3);
  return () => clearInterval(renewal);
}
