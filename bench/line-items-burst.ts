/**
 * HubSpot requests for a burst touching D carts with L line items in all (SPEC §8, §10), against the bound
 * ⌈D/100⌉ + ⌈L/100⌉ × 2 + 3, beside the cart-only figure of the same burst (its cart upserts alone). The
 * deliveries are the bench's checkouts (Shopify's 2026-04 sample: two lines of one variant each, so L = 2D),
 * contacts off so only carts and line items count. Every request after readiness is counted, once every
 * line item has landed and one more interval has passed.
 */
import { waitFor } from "../test/helpers/wait.ts";
import { bridgeIn, sandboxIn, type BenchContext } from "./context.ts";
import { presign } from "./deliveries.ts";
import { runLoad } from "./load.ts";
import { waitReady } from "./processes.ts";
import type { Row } from "./report.ts";
import { tapSandbox } from "./sandbox.ts";
import { withScope } from "./scope.ts";
import { int, ms } from "./stats.ts";

const LINES_PER_CART = 2;

export function measureLineItemBurst(ctx: BenchContext): Promise<Row[]> {
  const s = ctx.settings;
  const d = s.burstCarts;
  const l = d * LINES_PER_CART;
  const bound = Math.ceil(d / 100) + Math.ceil(l / 100) * 2 + 3;
  return withScope(async (scope) => {
    const sandbox = await sandboxIn(scope);
    const tap = tapSandbox(sandbox);
    scope.defer(() => tap.stop());
    const bridge = await bridgeIn(ctx, scope, "line-items-burst", sandbox.url, {
      HUBSPOT_SYNC_CONTACTS: "false",
      HUBSPOT_SYNC_LINE_ITEMS: "true",
    });
    await waitReady(bridge.url);
    // Both property reads (carts, line items) happen at start-up; the burst's requests are what follows.
    await waitFor(() => sandbox.requests.some((r) => r.path.startsWith("/crm/v3/properties/line_items")), {
      what: "line item properties read",
    });
    tap.drain();
    const before = { upserts: tap.upserts.length, others: tap.others.length };
    const source = presign(d, (seq) => seq);
    const r = await runLoad({
      url: bridge.url,
      source,
      connections: s.connections,
      durationMs: 30_000,
      count: d,
    });
    if (r.ok !== d) throw new Error(`line item burst: ${d - r.ok} deliveries were not answered 200`);
    const landed = await waitFor(() => sandbox.lineItems().size >= l, {
      what: `${l} line items in the sandbox`,
      timeoutMs: 20_000 + 4 * s.flushIntervalMs,
    }).then(
      () => true,
      () => false,
    );
    await new Promise((resolve) => setTimeout(resolve, s.flushIntervalMs + 500));
    tap.drain();
    const cartUpserts = tap.upserts.length - before.upserts;
    const others = tap.others.slice(before.others);
    const count = (pattern: RegExp) => others.filter((o) => pattern.test(o.path)).length;
    const lineUpserts = count(/\/line_items\/batch\/upsert/);
    const associations = count(/\/line_items\/carts\/batch\/associate\/default/);
    const archives = count(/\/line_items\/batch\/archive/);
    const total = cartUpserts + others.length;
    const cartOnly = Math.ceil(d / 100) + 1;
    ctx.note(
      `line item burst: ${int(d)} checkouts with ${int(l)} line items sent in ${ms(r.elapsedMs)}; ${total} HubSpot requests: ` +
        `${cartUpserts} cart upserts, ${lineUpserts} line item upserts, ${associations} associations, ${archives} archives` +
        `${others.length - lineUpserts - associations - archives > 0 ? `, ${others.length - lineUpserts - associations - archives} other` : ""}; ` +
        `${sandbox.lineItems().size} line items in the sandbox${landed ? "" : " — not all landed"}.`,
    );
    return [
      {
        measure: `HubSpot requests for a burst of ${int(d)} carts with ${int(l)} line items (cart upserts alone: ${cartUpserts})`,
        bridge: `${total} requests`,
        baseline: `cart-only burst target ${cartOnly}`,
        ratio: `+${total - cartUpserts} for line items`,
        target: `≤ ${bound}`,
        met: landed && total <= bound,
      },
    ];
  });
}
