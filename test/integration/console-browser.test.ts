import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { withBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * The console in a real browser: Debian's headless Chromium driven by playwright-core. Signs in, watches
 * a shop's deliveries appear, opens the dead letter of a cart HubSpot rejected, fixes the portal, replays
 * it from the page and sees the cart land; a wrong token and a cross-site POST are refused; the views are
 * reachable by keyboard. Screenshots (laptop and phone widths) go to test-output/console/.
 */

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const TOKEN = "browser-admin-token";
const OUT = new URL("../../test-output/console/", import.meta.url).pathname;
const LAPTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };
/** The page's globals, as evaluated inside the browser (the test itself is type-checked for Node). */
declare const document: { activeElement: { textContent: string | null } | null };

const missing = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
if (missing !== undefined && process.env["CI"] === "true") throw new Error(`CI=true but ${missing}`);

async function launch(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), "cartbridge-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: LAPTOP,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

async function shoot(page: Page, name: string): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  for (const [width, size] of [
    ["laptop", LAPTOP],
    ["phone", PHONE],
  ] as const) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(OUT, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize(LAPTOP);
}

/** The console at `url`, signed in with the admin token, on the browser's first page. */
async function signedIn(browser: { context: BrowserContext }, url: string): Promise<Page> {
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  await page.goto(`${url}/admin/`);
  await page.getByLabel("Admin token").fill(TOKEN);
  await page.keyboard.press("Enter");
  return page;
}

/** Presses Tab until the focused element's text is `text` (keyboard only), then returns. */
async function tabTo(page: Page, text: string): Promise<void> {
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? "");
    if (focused === text) return;
  }
  assert.fail(`could not reach "${text}" with Tab`);
}

describe("the console in Chromium", { skip: missing }, () => {
  it("sign in, live deliveries, a rejected cart's dead letter replayed after the fix, refusals, keyboard", async () => {
    const rejectedKey = `${TEST_SHOP}:rejected-1`;
    await withBridge(
      {
        env: { ADMIN_TOKEN: TOKEN },
        setup: (hs) => hs.rejectCartId(rejectedKey, 'Property "gift_note" does not exist'),
      },
      async (hs, bridge) => {
        const browser = await launch();
        try {
          const page = browser.context.pages()[0] ?? (await browser.context.newPage());
          const cspViolations: string[] = [];
          page.on("console", (m) => {
            if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
          });
          await page.goto(`${bridge.url}/admin/`);

          // A wrong token is refused, with a message, and no session.
          await page.getByLabel("Admin token").fill("not-the-token");
          await page.getByRole("button", { name: "Sign in" }).click();
          await page.getByText("Not signed in: wrong token.").waitFor();
          assert.equal((await browser.context.cookies()).length, 0);
          // Signed out, the sections are not offered: only the sign-in form shows.
          assert.equal(await page.getByRole("link", { name: "Dead letters" }).isVisible(), false);
          await shoot(page, "sign-in");

          // The right one, typed and submitted with the keyboard.
          await page.getByLabel("Admin token").fill(TOKEN);
          await page.keyboard.press("Enter");
          await page.getByRole("heading", { name: "Overview" }).waitFor();
          const [cookie] = await browser.context.cookies();
          assert.equal(cookie?.httpOnly, true);
          assert.equal(cookie?.sameSite, "Strict");

          // Deliveries arrive while the page is open: the overview refreshes by itself.
          for (const token of ["good-1", "good-2", "rejected-1"]) {
            const res = await postDelivery(bridge.url, {
              topic: "checkouts/update",
              body: checkoutBody(token),
            });
            assert.equal(res.status, 200);
          }
          const shopRow = page.getByRole("row", { name: new RegExp(TEST_SHOP.replace(/\./g, "\\.")) });
          await shopRow.getByRole("cell", { name: "3", exact: true }).first().waitFor({ timeout: 15_000 });
          await waitFor(() => hs.cartByKey(`${TEST_SHOP}:good-2`), { what: "good carts in HubSpot" });
          await waitFor(async () => (await bridge.service.store.stats(Date.now())).deadLetters === 1, {
            what: "the rejected cart's dead letter",
          });
          // HubSpot's 207 (one input refused) is among the sender's recent errors.
          await page.getByText(/carts_upsert: 207/).waitFor({ timeout: 15_000 });
          await shoot(page, "overview");

          // Keyboard: Tab to the Dead letters tab and follow it.
          await page.locator("body").focus();
          await tabTo(page, "Dead letters");
          await page.keyboard.press("Enter");
          const heading = page.getByRole("heading", { name: "Dead letters", level: 2 });
          await heading.waitFor();
          assert.equal(
            await heading.evaluate((h) => h === document.activeElement),
            true,
            "focus moves to the view",
          );

          // The dead letter made by the rejected cart, opened by keyboard.
          const link = page.getByRole("link", { name: /^#\d+$/ }).first();
          await link.waitFor({ timeout: 15_000 });
          await link.focus();
          await page.keyboard.press("Enter");
          const detail = page.locator("#dl-detail");
          await detail.getByText('Property "gift_note" does not exist').first().waitFor();
          const body = await page.locator("#dl-body").textContent();
          assert.ok(body?.includes('"total_price": "10.00"'), "the delivery is shown");
          assert.ok(!body?.includes("buyer-rejected-1@example.com"), "the e-mail is masked");
          await shoot(page, "dead-letter");

          // A cross-site page cannot replay it: its POST reaches us without the cookie, or is refused.
          const evil = createServer((_req, res) => {
            res.setHeader("content-type", "text/html");
            res.end(`<form id="f" method="POST" action="${bridge.url}/admin/dead-letters/replay"
              enctype="text/plain"><input name='{"all":true,"x":"' value='"}'></form>
              <script>document.getElementById("f").submit()</script>`);
          });
          evil.listen(0, "127.0.0.1");
          await once(evil, "listening");
          try {
            const evilPage = await browser.context.newPage();
            const port = (evil.address() as AddressInfo).port;
            const answer = evilPage.waitForResponse((r) => r.url().endsWith("/admin/dead-letters/replay"));
            await evilPage.goto(`http://localhost:${port}/`);
            const refused = await answer;
            assert.ok([401, 403].includes(refused.status()), `cross-site POST answered ${refused.status()}`);
            await evilPage.close();
          } finally {
            evil.close();
          }
          assert.equal((await bridge.service.store.stats(Date.now())).deadLetters, 1, "nothing replayed");

          // Looked up before the fix, the cart is settled but not in HubSpot, and says why.
          await page.getByRole("link", { name: "Cart lookup" }).click();
          await page.getByLabel("Cart key or token").fill("rejected-1");
          await page.getByLabel("Cart key or token").press("Enter");
          await page
            .locator("#cart-result dd.bad")
            .getByText(/^no: rejected by HubSpot: Property "gift_note" does not exist/)
            .waitFor();
          assert.equal(await page.locator("#cart-result dd", { hasText: "(not written)" }).count(), 1);
          await shoot(page, "cart-rejected");
          await page.getByRole("link", { name: "Dead letters" }).click();
          await page
            .getByRole("link", { name: /^#\d+$/ })
            .first()
            .click();
          await detail.getByText('Property "gift_note" does not exist').first().waitFor();

          // The fix: the portal gets the property (and HubSpot stops refusing the cart); replay from the page.
          hs.addCartProperty({ name: "gift_note", type: "string", fieldType: "text", label: "Gift note" });
          hs.acceptCartId(rejectedKey);
          await page.getByRole("button", { name: "Replay this dead letter" }).click();
          await page
            .locator("#replay-outcome")
            .getByText(/1 replayed/)
            .waitFor();
          await waitFor(() => hs.cartByKey(rejectedKey), { what: "the replayed cart in HubSpot" });
          await page.getByText("No dead letters match.").waitFor();

          // Cart lookup by token: the merged state, each property's event time, not pending once sent.
          await page.getByRole("link", { name: "Cart lookup" }).click();
          await page.getByLabel("Cart key or token").fill("rejected-1");
          await page.getByLabel("Cart key or token").press("Enter");
          await page.getByRole("row", { name: /hs_total_price 10\.00 2026-11-01T10:00:00\.000Z/ }).waitFor();
          await waitFor(
            async () => {
              await page.getByRole("button", { name: "Look up" }).click();
              return (await page.locator("#cart-result dd.good").textContent()) === "no";
            },
            { what: "the cart shown as not pending", timeoutMs: 15_000, intervalMs: 300 },
          );
          await shoot(page, "cart");
          assert.deepEqual(cspViolations, [], "the page runs under its CSP without violations");
        } finally {
          await browser.close();
        }
      },
    );
  });

  it("a line item's dead letter says the line was refused, not the cart, and why no delivery is shown", async () => {
    const lineKey = `${TEST_SHOP}:li-1:Widget`;
    await withBridge(
      {
        // Without contacts the cart's delivery is dropped once the cart is sent, before its lines go out.
        env: { ADMIN_TOKEN: TOKEN, HUBSPOT_SYNC_CONTACTS: "false" },
        setup: (hs) => hs.rejectLineItemKey(lineKey, "Widget is not sellable"),
      },
      async (hs, bridge) => {
        const res = await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody("li-1") });
        assert.equal(res.status, 200);
        await waitFor(async () => (await bridge.service.store.stats(Date.now())).deadLetters === 1, {
          what: "the line's dead letter",
        });
        assert.ok(hs.cartByKey(`${TEST_SHOP}:li-1`), "the cart itself is in HubSpot");
        const browser = await launch();
        try {
          const page = await signedIn(browser, bridge.url);
          await page.getByRole("link", { name: "Dead letters" }).click();
          await page
            .getByRole("link", { name: /^#\d+$/ })
            .first()
            .click();
          const detail = page.locator("#dl-detail");
          await detail.getByText("Widget is not sellable").first().waitFor();
          await detail
            .getByText("HubSpot rejected one of the cart's line items (the cart was written)", {
              exact: true,
            })
            .waitFor();
          assert.equal(
            await page.locator("#dl-body").textContent(),
            "No delivery kept: the cart's newest delivery was sent, expired or erased before HubSpot refused this.",
          );
          await shoot(page, "dead-letter-line-item");
        } finally {
          await browser.close();
        }
      },
    );
  });

  it("the sender tile says carts flow but line items are refused (a token without their scopes)", async () => {
    await withBridge(
      { env: { ADMIN_TOKEN: TOKEN }, setup: (hs) => hs.setScopes({ lineItems: false }) },
      async (_hs, bridge) => {
        const browser = await launch();
        try {
          const page = await signedIn(browser, bridge.url);
          const tile = page.locator(".tile.warn", { hasText: "Running, in part" });
          await tile.waitFor({ timeout: 20_000 });
          assert.match((await tile.textContent()) ?? "", /line item.*403/);
          await shoot(page, "overview-sender-in-part");
        } finally {
          await browser.close();
        }
      },
    );
  });
});
