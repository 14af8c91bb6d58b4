/**
 * The story `npm run demo` tells: one buyer's cart from the first item to an abandoned checkout, through
 * what goes wrong in real life (a retried delivery, a late one, HubSpot's rate limit, a cart HubSpot
 * rejects), each step one line, then the HubSpot carts as a table that fits 100 columns.
 */
import type { FakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { cartBody, checkoutBody, deliver, type DeliveryOptions } from "../test/helpers/shopify.ts";
import { waitFor } from "../test/helpers/wait.ts";

export interface StoryContext {
  readonly bridgeUrl: string;
  readonly adminToken: string;
  readonly sandbox: FakeHubSpot;
  readonly print: (line: string) => void;
}

const SHOP = "demo-shop.myshopify.com";
const ANN = "ann-cart-7f3a";
const BOB = "bob-cart-91c2";
const key = (token: string): string => `${SHOP}:${token}`;
const WIDTH = 100;

/** Runs the story; throws when the bridge does not do what a line says. Returns the last step's number. */
export async function tellStory(ctx: StoryContext): Promise<number> {
  const { sandbox, print } = ctx;
  let step = 0;
  const cart = (token: string) => sandbox.cartByKey(key(token));
  const prop = (token: string, name: string): string => cart(token)?.properties[name] ?? "";
  /**
   * Sends one delivery; resolves with its outcome. The answer says `accepted` once the raw delivery is
   * durable (the inbox); what it did to the store is counted in /metrics when it is applied, just after.
   */
  const send = async (opts: DeliveryOptions): Promise<string> => {
    const body = JSON.stringify(asMugs(JSON.parse(String(opts.body)) as Record<string, unknown>));
    const res = await deliver(ctx.bridgeUrl, { shop: SHOP, ...opts, body });
    return res.outcome ?? `HTTP ${res.status}`;
  };
  const line = (topic: string, what: string, result: string): void => {
    step += 1;
    print(storyLine(step, topic, what, result));
  };
  const wait = <T>(what: string, check: () => T | Promise<T>): Promise<NonNullable<T>> =>
    waitFor(check, { what, timeoutMs: 15_000 });

  // 1–2: the cart, as the online store reports it.
  await send({
    topic: "carts/create",
    body: cartBody(ANN, { price: "12.00", updatedAt: "2026-11-29T10:00:00Z" }),
  });
  await wait("Ann's cart", () => prop(ANN, "hs_total_price") === "12.00");
  line(
    "carts/create",
    "Ann puts a mug in her cart",
    `HubSpot cart ${prop(ANN, "hs_external_status")}, 12.00 USD`,
  );

  const lateCart = cartBody(ANN, { price: "12.00", quantity: 1, updatedAt: "2026-11-29T10:00:30Z" });
  await send({
    topic: "carts/update",
    body: cartBody(ANN, { price: "12.00", quantity: 2, updatedAt: "2026-11-29T10:01:00Z" }),
  });
  await wait("two mugs", () => prop(ANN, "hs_total_price") === "24.00");
  line("carts/update", "she takes a second mug", "total 24.00 USD");

  // 3–4: checkout with her e-mail, then she leaves.
  const checkout = checkoutBody(ANN, {
    total: "24.00",
    email: "ann@example.com",
    updatedAt: "2026-11-29T10:02:00Z",
  });
  await send({ topic: "checkouts/create", body: checkout, webhookId: "demo-checkout-1" });
  await wait(
    "Ann's contact",
    () => sandbox.associations().length > 0 && prop(ANN, "hs_external_status") === "checkout",
  );
  line("checkouts/create", "she starts checkout with her e-mail", "status checkout; contact linked");
  line(
    "(no order)",
    "she leaves without paying",
    `abandoned: recovery URL ${prop(ANN, "hs_cart_url") ? "in" : "NOT in"} HubSpot`,
  );

  // 5: Shopify retries a delivery it thinks failed: same webhook id.
  const writesBefore = cart(ANN)?.writes ?? 0;
  const retried = await send({ topic: "checkouts/create", body: checkout, webhookId: "demo-checkout-1" });
  if (retried !== "duplicate") throw new Error(`a retried delivery was ${retried}, not a duplicate`);
  line("checkouts/create", "Shopify retries the same delivery", "duplicate: ignored, nothing sent");

  // 6: an older cart update (one mug, 10:00:30) arrives after the checkout.
  const late = await send({ topic: "carts/update", body: lateCart });
  line(
    "carts/update",
    "an older update arrives late",
    `${late}: HubSpot keeps ${prop(ANN, "hs_total_price")} USD`,
  );

  // 7: HubSpot's ten-second limit answers 429 once; the bridge waits and sends again.
  sandbox.failNext({ status: 429, headers: { "Retry-After": "1" } }, { path: "/batch/upsert" });
  await send({
    topic: "checkouts/update",
    body: checkoutBody(ANN, { total: "29.00", email: "ann@example.com", updatedAt: "2026-11-29T10:03:00Z" }),
  });
  await wait("the update after a 429", () => prop(ANN, "hs_total_price") === "29.00");
  const limited = sandbox.requests.filter((r) => r.status === 429).length;
  line(
    "checkouts/update",
    "she adds shipping; HubSpot says 429",
    `waited, resent: 29.00 USD (${limited}× 429)`,
  );
  if ((cart(ANN)?.writes ?? 0) <= writesBefore) throw new Error("the cart was not written after the 429");

  // 8: a cart HubSpot rejects is a dead letter; fixed, it is replayed.
  sandbox.rejectCartId(key(BOB), "Property values were not valid: hs_cart_name is blocked by a portal rule");
  await send({
    topic: "checkouts/create",
    body: checkoutBody(BOB, { total: "8.50", email: "bob@example.com" }),
  });
  type Letter = { id: number; reason: string };
  const letters = await wait("Bob's dead letter", async (): Promise<Letter[] | undefined> => {
    const list = await admin(ctx, "GET", "/admin/dead-letters");
    const found = (list as { deadLetters: Letter[] }).deadLetters;
    return found.length > 0 ? found : undefined;
  });
  line(
    "checkouts/create",
    "Bob's cart: HubSpot rejects it",
    `dead letter #${letters[0]?.id ?? "?"}, HubSpot's reason kept`,
  );
  sandbox.acceptCartId(key(BOB));
  await admin(ctx, "POST", "/admin/dead-letters/replay", { all: true });
  await wait("Bob's replayed cart", () => prop(BOB, "hs_total_price") === "8.50");
  line("(operator)", "rule fixed, dead letter replayed", "Bob's cart in HubSpot, 8.50 USD");

  // Line items follow their carts (SPEC §10): wait until HubSpot has each cart's lines.
  await wait("every cart's line items", () =>
    [...sandbox.carts().values()].every((c) => sandbox.lineItemsOfCart(c.id).length > 0),
  );
  print("");
  printCarts(sandbox, print);
  print("");
  printLineItems(sandbox, print);
  return step;
}

/** Formats one numbered story line, cut to 100 columns (the reconciliation step uses it too). */
export function storyLine(step: number, topic: string, what: string, result: string): string {
  const text = `${String(step).padStart(2)}. ${topic.padEnd(16)} ${what.padEnd(35)} → ${result}`;
  return text.length > WIDTH ? `${text.slice(0, WIDTH - 1)}…` : text;
}

/**
 * The test helpers' bodies sell one "Widget" without a variant; this shop sells blue mugs (variant 4242), so
 * each cart keeps one HubSpot line item from cart to checkout. Ann's checkouts hold her two mugs at 12.00.
 */
function asMugs(body: Record<string, unknown>): Record<string, unknown> {
  const lines = Array.isArray(body["line_items"]) ? (body["line_items"] as Record<string, unknown>[]) : [];
  const checkout = body["cart_token"] !== undefined;
  const twoMugs = checkout && body["cart_token"] === ANN;
  return {
    ...body,
    line_items: lines.map((l) => ({
      ...l,
      title: "Ceramic mug",
      variant_title: "Blue",
      variant_id: 4242,
      product_id: 42,
      sku: "MUG-BLUE",
      ...(twoMugs ? { quantity: 2, price: "12.00", line_price: "24.00" } : {}),
    })),
  };
}

async function admin(
  ctx: StoryContext,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await fetch(`${ctx.bridgeUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ctx.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}`);
  return res.json();
}

const fit = (s: string, width: number, right = false): string => {
  const cut = s.length > width ? `${s.slice(0, width - 1)}…` : s;
  return right ? cut.padStart(width) : cut.padEnd(width);
};

/** Each cart's HubSpot line items (associated with it, archived ones left out), no wider than 100 columns. */
export function printLineItems(sandbox: FakeHubSpot, print: (line: string) => void): void {
  const rows = [...sandbox.carts().values()].flatMap((cart) =>
    sandbox.lineItemsOfCart(cart.id).map((item) => ({ cart: cart.key, item })),
  );
  const archived = sandbox.allLineItems().filter((i) => i.archived).length;
  print(`HubSpot line items (${rows.length}, each associated with its cart; ${archived} archived):`);
  print(
    `${fit("line item key", 50)}  ${fit("name", 22)}  ${fit("qty", 4, true)}  ${fit("price", 8, true)}  cur`,
  );
  print(`${"-".repeat(50)}  ${"-".repeat(22)}  ${"-".repeat(4)}  ${"-".repeat(8)}  ---`);
  for (const { item } of rows) {
    const p = item.properties;
    print(
      `${fit(item.key, 50)}  ${fit(p["name"] ?? "", 22)}  ${fit(p["quantity"] ?? "", 4, true)}  ` +
        `${fit(p["price"] ?? "", 8, true)}  ${p["hs_line_item_currency_code"] ?? ""}`,
    );
  }
}

/** The sandbox's carts in a plain table no wider than 100 columns. */
export function printCarts(sandbox: FakeHubSpot, print: (line: string) => void): void {
  const upserts = sandbox.requests.filter((r) => r.path.endsWith("/carts/batch/upsert")).length;
  const columns = [
    { title: "cart key", width: 38, get: (p: Record<string, string>) => p["shopify_cart_key"] ?? "" },
    { title: "status", width: 9, get: (p: Record<string, string>) => p["hs_external_status"] ?? "" },
    { title: "total", width: 8, get: (p: Record<string, string>) => p["hs_total_price"] ?? "", right: true },
    { title: "cur", width: 3, get: (p: Record<string, string>) => p["hs_currency_code"] ?? "" },
    { title: "name", width: 34, get: (p: Record<string, string>) => p["hs_cart_name"] ?? "" },
  ];
  const carts = [...sandbox.carts().values()];
  print(`HubSpot carts (${carts.length}, written with ${upserts} batch upsert requests):`);
  print(
    columns
      .map((c) => fit(c.title, c.width, c.right))
      .join("  ")
      .trimEnd(),
  );
  print(columns.map((c) => "-".repeat(c.width)).join("  "));
  for (const c of carts)
    print(
      columns
        .map((col) => fit(col.get(c.properties), col.width, col.right))
        .join("  ")
        .trimEnd(),
    );
}
