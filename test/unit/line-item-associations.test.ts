import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InputError } from "../../src/hubspot/types.ts";
import { unassociatedWhereRefused } from "../../src/sync/line-item-sender.ts";

const chunk = [
  { lineKey: "s:c:1", hubspotId: "100", associatedCartId: "900" as string | undefined },
  { lineKey: "s:c:2", hubspotId: "101", associatedCartId: "900" as string | undefined },
];
const error = (over: Partial<InputError>): InputError => ({
  message: "refused",
  category: "VALIDATION_ERROR",
  traceIds: [],
  ids: [],
  context: {},
  ...over,
});

describe("line item associations HubSpot refused", () => {
  it("none refused: every association is recorded", () => {
    assert.deepEqual(unassociatedWhereRefused(chunk, []), chunk);
  });

  it("an error naming a line item (in context or ids) leaves that one unassociated, so it is tried again", () => {
    assert.deepEqual(
      unassociatedWhereRefused(chunk, [error({ context: { fromObjectId: ["100"] } })]).map(
        (i) => i.associatedCartId,
      ),
      [undefined, "900"],
    );
    assert.deepEqual(
      unassociatedWhereRefused(chunk, [error({ ids: ["101"] })]).map((i) => i.associatedCartId),
      ["900", undefined],
    );
  });

  it("an error that names nothing: no association of the chunk is trusted", () => {
    assert.deepEqual(
      unassociatedWhereRefused(chunk, [error({})]).map((i) => i.associatedCartId),
      [undefined, undefined],
    );
  });

  it("an error naming the cart (HubSpot's 'no such cart' names the toObjectId) leaves its line items unassociated", () => {
    assert.deepEqual(
      unassociatedWhereRefused(chunk, [error({ context: { toObjectId: ["900"] } })]).map(
        (i) => i.associatedCartId,
      ),
      [undefined, undefined],
    );
  });

  it("an error naming ids that are in no pair of the chunk: no association of the chunk is trusted", () => {
    assert.deepEqual(
      unassociatedWhereRefused(chunk, [error({ ids: ["555"] })]).map((i) => i.associatedCartId),
      [undefined, undefined],
    );
  });
});
