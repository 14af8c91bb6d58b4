import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import type { FakeHubSpot } from "../fakes/hubspot-server.ts";
import { withBridge, type TestBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const key = (token: string) => `${TEST_SHOP}:${token}`;
const associationRequests = (hs: FakeHubSpot) =>
  hs.requests.filter(
    (r) => r.path.includes("/associations/") && r.path.endsWith("/carts/contacts/batch/create"),
  );

/** What the bridge's SQLite file keeps for a cart's buyer. */
function contactLink(bridge: TestBridge, token: string): Record<string, unknown> | undefined {
  const db = new DatabaseSync(join(bridge.dir, "cartbridge.db"), { readOnly: true });
  try {
    return db
      .prepare("SELECT email, attempts, last_error FROM contact_links WHERE cart_key = ?")
      .get(key(token));
  } finally {
    db.close();
  }
}

const associated = (hs: FakeHubSpot, token: string, email: string): boolean => {
  const cart = hs.cartByKey(key(token));
  const contact = hs.contacts().get(email);
  return hs.associations().some((a) => a.cartId === cart?.id && a.contactId === contact?.id);
};

async function checkout(bridge: TestBridge, token: string, email: string): Promise<void> {
  const res = await postDelivery(bridge.url, {
    topic: "checkouts/update",
    body: checkoutBody(token, { email }),
  });
  assert.equal(res.status, 200);
}

describe("cart → contact associations", () => {
  it("a link HubSpot rejects in a 207 becomes a dead letter; the other buyers are linked; no e-mail in the logs", async () => {
    await withBridge(
      { ready: true, env: { ADMIN_TOKEN: "adm" }, setup: (hs) => hs.rejectAssociation(key("assoc-bad")) },
      async (hs, bridge) => {
        await checkout(bridge, "assoc-good", "good@example.com");
        await checkout(bridge, "assoc-bad", "bad@example.com");
        await waitFor(() => associated(hs, "assoc-good", "good@example.com"), { what: "the good link" });
        const letters = await waitFor(async () => {
          const l = await bridge.service.store.listDeadLetters({ limit: 10 });
          return l.length > 0 ? l : undefined;
        });
        assert.equal(letters.length, 1);
        assert.equal(letters[0]?.source, "hubspot");
        assert.equal(letters[0]?.cartKey, key("assoc-bad"));
        assert.match(letters[0]?.reason ?? "", /association: No 0-142 object with id \d+ exists/);
        assert.equal(letters[0]?.category, "VALIDATION_ERROR");
        assert.equal(associated(hs, "assoc-bad", "bad@example.com"), false);
        // Dead-lettered: no longer retried, and the buyer is erased from the links (the letter keeps the body).
        assert.equal(contactLink(bridge, "assoc-bad"), undefined);
        const requestsAfter = associationRequests(hs).length;
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(associationRequests(hs).length, requestsAfter, "a rejected link is not retried");
        const warning = bridge.logs.find(
          (l) => l["msg"] === "association rejected by HubSpot; dead-lettered",
        );
        assert.equal(warning?.["category"], "VALIDATION_ERROR");
        const logText = JSON.stringify(bridge.logs);
        assert.doesNotMatch(logText, /bad@example\.com|good@example\.com/);
        assert.match(
          await (await fetch(`${bridge.url}/metrics`)).text(),
          /dead_letters_created_total\{source="hubspot"\} 1/,
        );
      },
    );
  });

  it("a 207 error that may pass (INTERNAL_ERROR) is retried with backoff kept in the store; the buyer is kept until linked", async () => {
    await withBridge(
      {
        ready: true,
        setup: (hs) =>
          hs.rejectAssociation(key("assoc-flaky"), { category: "INTERNAL_ERROR", message: "try again" }),
      },
      async (hs, bridge) => {
        await checkout(bridge, "assoc-flaky", "flaky@example.com");
        const failing = await waitFor(
          () => {
            const row = contactLink(bridge, "assoc-flaky");
            return Number(row?.["attempts"] ?? 0) >= 2 ? row : undefined;
          },
          { what: "two failed attempts counted in the store" },
        );
        assert.equal(failing["email"], "flaky@example.com", "the buyer is kept while the link is missing");
        assert.match(String(failing["last_error"]), /try again/);
        assert.equal(associated(hs, "assoc-flaky", "flaky@example.com"), false);
        hs.acceptAssociation(key("assoc-flaky"));
        await waitFor(() => associated(hs, "assoc-flaky", "flaky@example.com"), { what: "the link, later" });
        await waitFor(() => contactLink(bridge, "assoc-flaky")?.["email"] === null, { what: "buyer erased" });
        assert.equal((await bridge.service.store.stats(Date.now())).deadLetters, 0);
      },
    );
  });

  it("a failed association request (503) is retried; the link lands once", async () => {
    await withBridge(
      {
        ready: true,
        setup: (hs) => hs.failNext({ status: 503 }, { path: "/carts/contacts/batch/create", times: 2 }),
      },
      async (hs, bridge) => {
        await checkout(bridge, "assoc-503", "down@example.com");
        await waitFor(() => associated(hs, "assoc-503", "down@example.com"), { what: "the link after 503s" });
        const statuses = associationRequests(hs).map((r) => r.status);
        assert.deepEqual(statuses, [503, 503, 201]);
        assert.equal(hs.associations().length, 1);
        // Each failed request is counted under its operation and HubSpot's status (the console lists it).
        const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
        assert.match(metrics, /hubspot_requests_total\{operation="associations_create",status="503"\} 2/);
        assert.match(metrics, /hubspot_requests_total\{operation="associations_create",status="201"\} 1/);
        assert.doesNotMatch(metrics, /operation="contacts_upsert",status="(503|error)"/);
        await waitFor(() => contactLink(bridge, "assoc-503")?.["email"] === null, { what: "buyer erased" });
      },
    );
  });
});
