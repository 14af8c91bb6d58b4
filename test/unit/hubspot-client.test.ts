import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createHubSpotClient, type HubSpotClient } from "../../src/hubspot/client.ts";
import {
  HubSpotRejectedError,
  HubSpotRequestRefusedError,
  HubSpotUnavailableError,
} from "../../src/hubspot/errors.ts";
import { startFakeHubSpot, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";

const input = {
  id: "shop.myshopify.com:t",
  idProperty: "shopify_cart_key",
  objectWriteTraceId: "trace-1",
  properties: {},
};

describe("HubSpot client: which 4xx blames an input", () => {
  let hs: FakeHubSpot;
  let client: HubSpotClient;
  before(async () => {
    hs = await startFakeHubSpot();
    client = createHubSpotClient({
      baseUrl: hs.url,
      accessToken: "test-token",
      apiVersion: testHubSpotApiVersion(),
    });
  });
  after(async () => {
    await client.close();
    await hs.close();
  });

  for (const status of [400, 413]) {
    it(`${status}: rejected input (narrowed, then dead-lettered)`, async () => {
      hs.failNext({ status }, { path: "/batch/upsert" });
      const error = await client.upsertCarts([input]).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof HubSpotRejectedError, String(error));
      assert.equal(error.status, status);
    });
  }

  for (const status of [404, 405, 409, 410, 415, 418]) {
    it(`${status}: the request or the setup, retried like an outage (never dead-lettered)`, async () => {
      hs.failNext({ status }, { path: "/batch/upsert" });
      const error = await client.upsertCarts([input]).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof HubSpotRequestRefusedError, String(error));
      assert.ok(error instanceof HubSpotUnavailableError);
      assert.ok(!(error instanceof HubSpotRejectedError));
      assert.equal(error.status, status);
      assert.equal(error.code, "HUBSPOT_REQUEST_REFUSED");
    });
  }

  it("creating a property that exists (409) is 'exists', not an error", async () => {
    const def = {
      name: "cartbridge_probe",
      label: "Probe",
      type: "string",
      fieldType: "text",
      groupName: "cart_information",
      hasUniqueValue: false,
    };
    assert.equal(await client.createCartProperty(def), "created");
    assert.equal(await client.createCartProperty(def), "exists");
    assert.equal(hs.requests.at(-1)?.status, 409);
  });
});
