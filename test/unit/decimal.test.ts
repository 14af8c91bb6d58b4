import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  MAX_DECIMAL_LENGTH,
  addDecimals,
  formatDecimal,
  normalizeDecimal,
  parseDecimal,
  readDecimal,
  sumDecimals,
} from "../../src/sync/decimal.ts";

function sumText(...values: string[]): string {
  const parsed = values.map((value) => {
    const decimal = parseDecimal(value);
    assert.ok(decimal, `"${value}" should parse`);
    return decimal;
  });
  return formatDecimal(sumDecimals(parsed));
}

void describe("parseDecimal / formatDecimal", () => {
  const canonical: [input: unknown, expected: string][] = [
    ["19.99", "19.99"],
    ["52000.0", "52000.00"],
    ["0", "0.00"],
    ["0.0", "0.00"],
    ["-1.5", "-1.50"],
    ["-0.05", "-0.05"],
    ["-0", "0.00"],
    ["007.5", "7.50"],
    ["19.999", "19.999"],
    ["12.500", "12.500"],
    ["90071992547409931.01", "90071992547409931.01"],
    [19.99, "19.99"],
    [52000, "52000.00"],
    [0, "0.00"],
    [-0, "0.00"],
    [-2.5, "-2.50"],
  ];
  for (const [input, expected] of canonical) {
    const label = Object.is(input, -0) ? "number -0" : `${typeof input} ${JSON.stringify(input)}`;
    void it(`${label} → "${expected}"`, () => {
      assert.equal(normalizeDecimal(input), expected);
    });
  }

  void it("treats null, undefined and the empty string as absent", () => {
    for (const input of [null, undefined, ""]) {
      assert.deepEqual(readDecimal(input), { kind: "absent" });
      assert.equal(parseDecimal(input), undefined);
    }
  });

  void it("rejects garbage as malformed, never as a number", () => {
    const garbage: unknown[] = [
      "abc",
      "1e5",
      "1.2.3",
      "+1",
      ".5",
      "5.",
      " 1",
      "1 ",
      "1,5",
      "0x10",
      "Infinity",
      "NaN",
      "--1",
      "1-",
      "١٢",
      1e21,
      1e-7,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      true,
      {},
      [],
      "9".repeat(MAX_DECIMAL_LENGTH + 1),
    ];
    for (const input of garbage) {
      assert.equal(readDecimal(input).kind, "malformed", `${String(input)} should be malformed`);
      assert.equal(parseDecimal(input), undefined);
    }
  });

  void it("reports the malformed input text", () => {
    assert.deepEqual(readDecimal("1.2.3"), { kind: "malformed", input: "1.2.3" });
    assert.deepEqual(readDecimal(true), { kind: "malformed", input: "boolean" });
  });

  void it("accepts the longest allowed input exactly", () => {
    const longest = "9".repeat(MAX_DECIMAL_LENGTH);
    assert.equal(normalizeDecimal(longest), `${longest}.00`);
  });

  void it("keeps the value as units and scale", () => {
    assert.deepEqual(parseDecimal("52000.0"), { units: 520000n, scale: 1 });
    assert.deepEqual(parseDecimal("-1.25"), { units: -125n, scale: 2 });
  });

  void it("formats values below one with a leading zero", () => {
    assert.equal(formatDecimal({ units: 5n, scale: 3 }), "0.005");
    assert.equal(formatDecimal({ units: -5n, scale: 1 }), "-0.50");
  });
});

void describe("sumDecimals / addDecimals", () => {
  void it("adds amounts of different precision exactly", () => {
    assert.equal(sumText("52000.0", "600.0"), "52600.00");
    assert.equal(sumText("52000.00", "600.0"), "52600.00");
    assert.equal(sumText("0.1", "0.2"), "0.30");
    assert.equal(sumText("19.99", "0.001"), "19.991");
    assert.equal(sumText("10.00", "-12.5"), "-2.50");
  });

  void it("is exact beyond 2^53", () => {
    assert.equal(sumText("9007199254740993.01", "0.99"), "9007199254740994.00");
  });

  void it("sums nothing to zero", () => {
    assert.equal(formatDecimal(sumDecimals([])), "0.00");
  });

  void it("agrees with integer arithmetic on cents", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
        fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
        (a, b) => {
          const sum = addDecimals({ units: a, scale: 2 }, { units: b * 10n, scale: 3 });
          assert.equal(sum.units, a * 10n + b * 10n);
          assert.equal(sum.scale, 3);
        },
      ),
    );
  });

  void it("round-trips every canonical two-decimal string", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), (cents) => {
        const magnitude = (cents < 0n ? -cents : cents).toString().padStart(3, "0");
        const text = `${cents < 0n ? "-" : ""}${magnitude.slice(0, -2)}.${magnitude.slice(-2)}`;
        assert.equal(normalizeDecimal(text), text);
      }),
    );
  });
});
