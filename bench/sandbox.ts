/**
 * The HubSpot sandbox (the stateful fake in test/fakes) and a tap on what it received: every answered
 * request is folded into a compact record and dropped from the fake's own list, so a long run keeps
 * neither full request bodies nor headers.
 */
import { startFakeHubSpot, type FakeHubSpot, type FakeHubSpotOptions } from "../test/fakes/hubspot-server.ts";
import { seqOfPrice } from "./deliveries.ts";

export interface UpsertRecord {
  /** When the sandbox received the request (epoch ms). */
  readonly atMs: number;
  readonly status: number;
  readonly inputs: number;
  /** Per input: cart key and the change marker it carried (only with `keepInputs`). */
  readonly carts?: ReadonlyArray<readonly [key: string, seq: number | undefined]>;
}

export interface SandboxTap {
  /** Cart batch upserts, in arrival order. */
  readonly upserts: UpsertRecord[];
  /** Requests by status, every endpoint. */
  readonly statuses: Map<number, number>;
  /** Every request other than a cart upsert (property reads, contacts…), in arrival order. */
  readonly others: Array<{
    readonly atMs: number;
    readonly method: string;
    readonly path: string;
    readonly status: number;
  }>;
  /** Folds in what arrived since the last call (also runs by itself every `everyMs`). */
  drain(): void;
  stop(): void;
}

const CART_UPSERT = /^\/crm\/v3\/objects\/(?:carts|cart|0-142)\/batch\/upsert/;

export function startSandbox(opts: FakeHubSpotOptions = {}): Promise<FakeHubSpot> {
  return startFakeHubSpot({ recordRequests: true, apiVersion: "any", ...opts });
}

export function tapSandbox(
  sandbox: FakeHubSpot,
  opts: { keepInputs?: boolean; everyMs?: number } = {},
): SandboxTap {
  const upserts: UpsertRecord[] = [];
  const statuses = new Map<number, number>();
  const others: SandboxTap["others"] = [];

  function drain(): void {
    const pending = [];
    for (const rec of sandbox.requests) {
      if (rec.status === 0) {
        pending.push(rec);
        continue;
      }
      statuses.set(rec.status, (statuses.get(rec.status) ?? 0) + 1);
      if (rec.method !== "POST" || !CART_UPSERT.test(rec.path)) {
        others.push({ atMs: rec.atMs, method: rec.method, path: rec.path, status: rec.status });
        continue;
      }
      const inputs = (
        rec.body as { inputs?: Array<{ id?: string; properties?: Record<string, string> }> } | undefined
      )?.inputs;
      upserts.push({
        atMs: rec.atMs,
        status: rec.status,
        inputs: inputs?.length ?? 0,
        ...(opts.keepInputs === true && inputs !== undefined
          ? { carts: inputs.map((i) => [i.id ?? "", seqOfPrice(i.properties?.["hs_total_price"])] as const) }
          : {}),
      });
    }
    sandbox.requests.splice(0, sandbox.requests.length, ...pending);
  }

  const timer = setInterval(drain, opts.everyMs ?? 200);
  return {
    upserts,
    statuses,
    others,
    drain,
    stop() {
      clearInterval(timer);
      drain();
    },
  };
}

/** Cart upserts the sandbox answered with `status`. */
export function countUpserts(tap: SandboxTap, status?: number): number {
  return tap.upserts.filter((u) => status === undefined || u.status === status).length;
}
