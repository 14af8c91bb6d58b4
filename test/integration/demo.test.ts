import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// `npm run demo` without a terminal (as in CI or a pipe): the story runs, fits 100 columns, and exits 0.
test("the demo tells its story in lines of at most 100 columns and exits 0 without a terminal", () => {
  const script = fileURLToPath(new URL("../../scripts/demo.ts", import.meta.url));
  const result = spawnSync(process.execPath, [script], {
    env: { PATH: process.env["PATH"] ?? "", HUBSPOT_API_VERSION: process.env["HUBSPOT_API_VERSION"] ?? "v3" },
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: 90_000,
  });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  const lines = result.stdout.split("\n");
  for (const line of lines) assert.ok(line.length <= 100, `too wide (${line.length}): ${line}`);
  const steps = lines.filter((l) => /^ ?\d+\. /.test(l));
  assert.ok(steps.length >= 13, result.stdout);
  for (const expected of [
    /duplicate: ignored/,
    /unchanged: HubSpot keeps 24\.00 USD/,
    /429/,
    /dead letter #\d+/,
    /next pass reads its orders +→ completed/,
    /1 missed orders change/,
  ])
    assert.ok(
      steps.some((l) => expected.test(l)),
      `${String(expected)} in\n${result.stdout}`,
    );
  assert.match(result.stdout, /demo-shop\.myshopify\.com:ann-cart-7f3a +checkout +29\.00 +USD/);
  // Her two blue mugs as one HubSpot line item (variant 4242), associated with her cart.
  assert.match(
    result.stdout,
    /demo-shop\.myshopify\.com:ann-cart-7f3a:4242 +Ceramic mug - Blue +2 +12\.00 +USD/,
  );
});
