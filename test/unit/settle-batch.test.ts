import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  HubSpotAuthError,
  HubSpotRateLimitError,
  HubSpotRejectedError,
  HubSpotRequestRefusedError,
  HubSpotUnavailableError,
} from "../../src/hubspot/errors.ts";
import type { InputError, UpsertResult } from "../../src/hubspot/types.ts";
import type { ClaimedCart } from "../../src/store/store.ts";
import { classifyFailure, failureStatus, type Failure } from "../../src/sync/classify-failure.ts";
import {
  matchAnswer,
  settleBatch,
  settleFailedCall,
  UNANSWERED_REASON,
  type CartEntry,
} from "../../src/sync/settle-batch.ts";

const entry = (key: string, version = 1): CartEntry => ({
  claim: { key, version, attempts: 0 } as unknown as ClaimedCart,
  input: { id: key, idProperty: "cart_key", objectWriteTraceId: `trace-${key}`, properties: {} },
});
const result = (id: string, trace?: string, idValue?: string): UpsertResult => ({
  id,
  objectWriteTraceId: trace,
  idValue,
});
const inputError = (message: string, names: { traceIds?: string[]; ids?: string[] } = {}): InputError => ({
  message,
  category: "VALIDATION_ERROR",
  traceIds: names.traceIds ?? [],
  ids: names.ids ?? [],
  context: {},
});

describe("classifyFailure", () => {
  it("a rolling 429 and a daily 429: rate_limited with the wait, the policy and whether it is daily", () => {
    const rolling = new HubSpotRateLimitError("slow down", {
      policy: "TEN_SECONDLY_ROLLING",
      retryAfterMs: 1500,
    });
    assert.deepEqual(classifyFailure(rolling), {
      kind: "rate_limited",
      status: 429,
      retryAfterMs: 1500,
      daily: false,
      policy: "TEN_SECONDLY_ROLLING",
      rateLimit: undefined,
    });
    const daily = classifyFailure(new HubSpotRateLimitError("spent", { policy: "DAILY", retryAfterMs: 0 }));
    assert.equal(daily.kind === "rate_limited" && daily.daily, true);
  });

  it("401/403: auth, with status, category and HubSpot's message", () => {
    const error = new HubSpotAuthError("missing scopes", { status: 403, category: "MISSING_SCOPES" });
    assert.deepEqual(classifyFailure(error), {
      kind: "auth",
      status: 403,
      category: "MISSING_SCOPES",
      message: "missing scopes",
    });
  });

  it("a 400: rejected, unless the lane says it blames the id property (setup)", () => {
    const error = new HubSpotRejectedError("Property cart_key does not exist", { status: 400 });
    assert.equal(classifyFailure(error).kind, "rejected");
    assert.equal(classifyFailure(error, (m) => m.includes("cart_key")).kind, "setup");
    assert.equal(classifyFailure(error, (m) => m.includes("other_key")).kind, "rejected");
  });

  it("a refused request (404) and an unavailable HubSpot (503) both pass, with their minimum delay", () => {
    const refused = new HubSpotRequestRefusedError("no such path", { status: 404, category: "NOT_FOUND" });
    assert.deepEqual(classifyFailure(refused), {
      kind: "refused",
      status: 404,
      category: "NOT_FOUND",
      minDelayMs: 0,
      message: "no such path",
    });
    const unavailable = new HubSpotUnavailableError("locked", { status: 423, minDelayMs: 2000 });
    assert.deepEqual(classifyFailure(unavailable), {
      kind: "unavailable",
      status: 423,
      minDelayMs: 2000,
      message: "locked",
    });
  });

  it("anything else (a reset, a store error, a thrown string) is unavailable: retried with backoff", () => {
    assert.deepEqual(classifyFailure(new Error("ECONNRESET")), {
      kind: "unavailable",
      minDelayMs: 0,
      message: "ECONNRESET",
    });
    assert.deepEqual(classifyFailure("boom"), { kind: "unavailable", minDelayMs: 0, message: "boom" });
  });

  it("the request metric's status: HubSpot's status whenever it answered, error when it did not", () => {
    const status = (error: unknown): string => failureStatus(classifyFailure(error));
    assert.equal(status(new HubSpotRateLimitError("x", { policy: "DAILY", retryAfterMs: 0 })), "429");
    assert.equal(status(new HubSpotAuthError("x", { status: 401 })), "401");
    assert.equal(status(new HubSpotRejectedError("x", { status: 413 })), "413");
    assert.equal(status(new HubSpotRequestRefusedError("x", { status: 409 })), "409");
    assert.equal(status(new HubSpotUnavailableError("x", { status: 502 })), "502");
    assert.equal(status(new HubSpotUnavailableError("x", { status: 423 })), "423");
    assert.equal(status(new HubSpotUnavailableError("HubSpot unreachable: ECONNRESET", {})), "error");
    assert.equal(status(new Error("timeout")), "error");
  });
});

describe("settleBatch: HubSpot answered", () => {
  const [a, b, c] = [entry("a", 3), entry("b"), entry("c")] as [CartEntry, CartEntry, CartEntry];

  it("a 200 naming every input by trace id: every cart sent with its record id", () => {
    const out = settleBatch([a, b], {
      answer: { results: [result("11", "trace-b"), result("10", "trace-a")], errors: [] },
    });
    assert.deepEqual(out.sent, [
      { key: "b", version: 1, hubspotId: "11" },
      { key: "a", version: 3, hubspotId: "10" },
    ]);
    assert.deepEqual([out.rejected, out.retry, out.release, out.split], [[], undefined, [], []]);
  });

  it("a result without trace id is matched by the echoed key; a second result for the same cart is ignored", () => {
    const out = settleBatch([a], {
      answer: { results: [result("10", undefined, "a"), result("99", "trace-a")], errors: [] },
    });
    assert.deepEqual(out.sent, [{ key: "a", version: 3, hubspotId: "10" }]);
  });

  it("a 207: the inputs an error names are rejected with its message; the others are sent", () => {
    const out = settleBatch([a, b, c], {
      answer: {
        results: [result("10", "trace-a")],
        errors: [
          inputError("bad amount", { traceIds: ["trace-b"] }),
          inputError("bad date", { ids: ["c", "a"] }),
        ],
      },
    });
    assert.deepEqual(out.sent, [{ key: "a", version: 3, hubspotId: "10" }]);
    assert.deepEqual(out.rejected, [
      { key: "b", version: 1, reason: "bad amount", category: "VALIDATION_ERROR" },
      { key: "c", version: 1, reason: "bad date", category: "VALIDATION_ERROR" },
    ]);
    assert.equal(out.retry, undefined);
  });

  it("every error named its input: the inputs no result names were written too, without a record id", () => {
    const out = settleBatch([a, b], { answer: { results: [], errors: [inputError("bad", { ids: ["b"] })] } });
    assert.deepEqual(out.sent, [{ key: "a", version: 3, hubspotId: undefined }]);
    assert.deepEqual(out.rejected, [{ key: "b", version: 1, reason: "bad", category: "VALIDATION_ERROR" }]);
    assert.equal(out.retry, undefined);
  });

  it("an error naming no input: the inputs named nowhere are retried, never marked sent on a guess", () => {
    const out = settleBatch([a, b, c], {
      answer: { results: [result("10", "trace-a")], errors: [inputError("?")] },
    });
    assert.deepEqual(out.sent, [{ key: "a", version: 3, hubspotId: "10" }]);
    assert.deepEqual(out.retry, { entries: [b, c], reason: UNANSWERED_REASON, minDelayMs: 0 });
  });
});

describe("settleBatch: the call failed", () => {
  const entries = [entry("a"), entry("b"), entry("c")];
  const failed = (failure: Failure) => settleBatch(entries, { failure });

  it("rate limited, auth, setup: every claim given back untouched", () => {
    for (const failure of [
      classifyFailure(new HubSpotRateLimitError("x", { policy: "DAILY", retryAfterMs: 0 })),
      classifyFailure(new HubSpotAuthError("x", { status: 401 })),
      { kind: "setup", status: 400, category: undefined, message: "x" } as const,
    ]) {
      const out = failed(failure);
      assert.deepEqual(
        [out.sent, out.rejected, out.retry, out.release, out.split],
        [[], [], undefined, entries, []],
      );
    }
  });

  it("a whole-batch rejection of three inputs: split into two then one, nothing settled yet", () => {
    const out = failed({ kind: "rejected", status: 400, category: "VALIDATION_ERROR", message: "bad" });
    assert.deepEqual(out.split, [entries.slice(0, 2), entries.slice(2)]);
    assert.deepEqual([out.sent, out.rejected, out.retry, out.release], [[], [], undefined, []]);
  });

  it("a rejection of a single input: that cart is a dead letter with HubSpot's message", () => {
    const out = settleBatch([entry("z", 4)], {
      failure: { kind: "rejected", status: 400, category: "VALIDATION_ERROR", message: "bad" },
    });
    assert.deepEqual(out.rejected, [{ key: "z", version: 4, reason: "bad", category: "VALIDATION_ERROR" }]);
    assert.deepEqual(out.split, []);
  });

  it("refused or unavailable: every cart retried with the failure's message and minimum delay", () => {
    const out = failed({ kind: "unavailable", minDelayMs: 2000, message: "locked" });
    assert.deepEqual(out.retry, { entries, reason: "locked", minDelayMs: 2000 });
    assert.deepEqual([out.sent, out.rejected, out.release, out.split], [[], [], [], []]);
    const refused = failed({
      kind: "refused",
      status: 404,
      category: undefined,
      minDelayMs: 0,
      message: "no path",
    });
    assert.deepEqual(refused.retry, { entries, reason: "no path", minDelayMs: 0 });
  });
});

describe("settleFailedCall (any lane's units: contact groups, line entries)", () => {
  const units = ["g1", "g2", "g3", "g4"];

  it("a rejection splits four units into two and two; one unit alone is rejected", () => {
    const rejected = { kind: "rejected", status: 400, category: undefined, message: "bad" } as const;
    assert.deepEqual(settleFailedCall(units, rejected), {
      release: [],
      reject: [],
      split: [
        ["g1", "g2"],
        ["g3", "g4"],
      ],
      retry: [],
    });
    assert.deepEqual(settleFailedCall(["g1"], rejected), {
      release: [],
      reject: ["g1"],
      split: [],
      retry: [],
    });
  });

  it("a 429 releases every unit; a reset retries every unit", () => {
    const limited = classifyFailure(new HubSpotRateLimitError("x", { policy: "ROLLING", retryAfterMs: 10 }));
    assert.deepEqual(settleFailedCall(units, limited), { release: units, reject: [], split: [], retry: [] });
    const reset = classifyFailure(new Error("ECONNRESET"));
    assert.deepEqual(settleFailedCall(units, reset), { release: [], reject: [], split: [], retry: units });
  });
});

describe("matchAnswer", () => {
  it("results win over errors for the same input, and the first error naming an input is the one kept", () => {
    const [a, b] = [entry("a"), entry("b")] as [CartEntry, CartEntry];
    const seen: string[] = [];
    const out = matchAnswer(
      [a, b],
      {
        results: [result("10", "trace-a")],
        errors: [inputError("first", { ids: ["a", "b"] }), inputError("second", { traceIds: ["trace-b"] })],
      },
      {
        written: (e, id) => seen.push(`written ${e.input.id} ${id}`),
        rejected: (e, err) => seen.push(`rejected ${e.input.id} ${err.message}`),
      },
    );
    assert.deepEqual(seen, ["written a 10", "rejected b first"]);
    assert.deepEqual(out, { unanswered: [], unplacedErrors: 0 });
  });
});
