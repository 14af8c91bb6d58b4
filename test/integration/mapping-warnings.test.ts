import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withBridge } from "../helpers/bridge.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/** A checkout whose tax is not an amount and whose creation date is not a date. */
function oddCheckout(token: string): string {
  const body = JSON.parse(checkoutBody(token, { email: `odd-${token}@example.com` })) as Record<
    string,
    unknown
  >;
  return JSON.stringify({ ...body, total_tax: `tax-of-${token}`, created_at: `yesterday-${token}` });
}

describe("mapping warnings (SPEC §4: left out and logged once)", () => {
  it("each malformed value is logged once per topic, property and kind, with fields and without the value; the cart still lands", async () => {
    await withBridge({ ready: true }, async (hs, bridge) => {
      for (const token of ["odd-1", "odd-2", "odd-3"]) {
        const res = await postDelivery(bridge.url, { topic: "checkouts/update", body: oddCheckout(token) });
        assert.equal(res.status, 200);
      }
      await waitFor(() => hs.cartByKey(`${TEST_SHOP}:odd-3`)?.properties["hs_total_price"] === "10.00", {
        what: "the cart without its malformed values",
      });
      assert.equal(hs.cartByKey(`${TEST_SHOP}:odd-1`)?.properties["hs_tax"], undefined);
      const warnings = bridge.logs.filter((l) => l["msg"] === "delivery value left out");
      assert.deepEqual(
        warnings.map((w) => ({
          topic: w["topic"],
          property: w["property"],
          problem: w["problem"],
          level: w["level"],
        })),
        [
          { topic: "checkouts/update", property: "hs_tax", problem: "malformed_amount", level: 40 },
          {
            topic: "checkouts/update",
            property: "hs_external_created_date",
            problem: "malformed_date",
            level: 40,
          },
        ],
      );
      const text = JSON.stringify(bridge.logs);
      assert.doesNotMatch(text, /tax-of-|yesterday-|odd-odd/, "no value and no e-mail in any log line");
    });
  });
});
