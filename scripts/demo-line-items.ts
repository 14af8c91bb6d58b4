/**
 * For the demo: waits until every cart's stored line set is in the HubSpot sandbox, then prints each cart's
 * line items as HubSpot holds them (associated with the cart, archived ones left out).
 */
import type { Store } from "../src/store/store.ts";
import type { FakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { waitFor } from "../test/helpers/wait.ts";

export async function printCartLineItems(
  sandbox: FakeHubSpot,
  store: Store,
  print: (...args: unknown[]) => void = console.log,
  table: (rows: object[]) => void = console.table,
): Promise<void> {
  const carts = [...sandbox.carts().values()];
  const expected = new Map<string, string[]>();
  for (const cart of carts) {
    const set = await store.lineSetOf(cart.key);
    if (set !== undefined) expected.set(cart.id, set.lines.map((l) => l.key).sort());
  }
  await waitFor(
    () =>
      [...expected].every(([cartId, keys]) => {
        const have = sandbox
          .lineItemsOfCart(cartId)
          .map((i) => i.key)
          .sort();
        return have.length === keys.length && have.every((k, i) => k === keys[i]);
      }),
    { what: "every cart's line items in the HubSpot sandbox", timeoutMs: 15_000 },
  );
  const rows = carts.flatMap((cart) =>
    sandbox.lineItemsOfCart(cart.id).map((item) => ({
      cart: cart.key.length > 40 ? `${cart.key.slice(0, 37)}...` : cart.key,
      line: item.key.slice(cart.key.length + 1),
      name: (item.properties["name"] ?? "").slice(0, 30),
      quantity: item.properties["quantity"] ?? "",
      price: item.properties["price"] ?? "",
      currency: item.properties["hs_line_item_currency_code"] ?? "",
      sku: item.properties["hs_sku"] ?? "",
    })),
  );
  const archived = sandbox.allLineItems().filter((i) => i.archived).length;
  print(
    `\nHubSpot line items (${rows.length} on ${expected.size} carts, each associated with its cart; ${archived} archived):`,
  );
  table(rows);
}
