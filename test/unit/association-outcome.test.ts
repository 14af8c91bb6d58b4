import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InputError } from "../../src/hubspot/types.ts";
import { settleAssociations } from "../../src/sync/association-outcome.ts";

const link = (cartId: string, contactId: string) => ({ cartId, contactId });
const error = (
  context: Record<string, string[]>,
  category = "VALIDATION_ERROR",
  message = "no",
): InputError => ({
  message,
  category,
  traceIds: [],
  ids: context["ids"] ?? [],
  context,
});

describe("settleAssociations", () => {
  const a = link("301", "901");
  const b = link("302", "902");
  const c = link("303", "901");

  it("no errors: every link is linked", () => {
    assert.deepEqual(settleAssociations([a, b], []), { linked: [a, b], rejected: [], retry: [] });
  });

  it("an error naming a cart (fromObjectId) or a contact (toObjectId) rejects exactly those links", () => {
    const out = settleAssociations([a, b, c], [error({ toObjectId: ["901"] }, "VALIDATION_ERROR", "gone")]);
    assert.deepEqual(out.linked, [b]);
    assert.deepEqual(out.rejected, [
      { link: a, reason: "gone", category: "VALIDATION_ERROR" },
      { link: c, reason: "gone", category: "VALIDATION_ERROR" },
    ]);
    assert.deepEqual(out.retry, []);
    const byCart = settleAssociations([a, b], [error({ fromObjectId: ["302"] })]);
    assert.deepEqual(byCart.linked, [a]);
    assert.deepEqual(
      byCart.rejected.map((r) => r.link),
      [b],
    );
  });

  it("an error that may pass is retried; a validation error for the same link wins", () => {
    const out = settleAssociations(
      [a, b],
      [
        error({ fromObjectId: ["301"] }, "INTERNAL_ERROR"),
        error({ fromObjectId: ["302"] }, "RATE_LIMITS"),
        error({ fromObjectId: ["302"] }, "VALIDATION_ERROR"),
      ],
    );
    assert.deepEqual(
      out.retry.map((r) => r.link),
      [a],
    );
    assert.deepEqual(
      out.rejected.map((r) => r.link),
      [b],
    );
  });

  it("an error that names no link leaves the unnamed links in doubt: retried, never marked linked", () => {
    const out = settleAssociations(
      [a, b],
      [error({}, "VALIDATION_ERROR", "something"), error({ ids: ["301"] })],
    );
    assert.deepEqual(out.linked, []);
    assert.deepEqual(
      out.rejected.map((r) => r.link),
      [a],
    );
    assert.deepEqual(out.retry, [{ link: b, reason: "something", category: "VALIDATION_ERROR" }]);
  });
});
