import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { bridgeEnv, freePort, MAIN, spawnBridge } from "../helpers/child.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

describe("cartbridge as a process", () => {
  it("SIGTERM: stops accepting, sends what is pending, exits 0; the CLI lists and replays dead letters", async () => {
    const hs = await startFakeHubSpot();
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-cli-"));
    const env = bridgeEnv({
      hubspotUrl: hs.url,
      dbPath: join(dir, "c.db"),
      port: await freePort(),
      env: { FLUSH_INTERVAL_MS: "60000" },
    });
    try {
      const bridge = await spawnBridge(env);
      await waitFor(async () => (await fetch(`${bridge.url}/readyz`)).status === 200, { what: "ready" });
      for (const t of ["term-1", "term-2"]) {
        assert.equal(
          (await postDelivery(bridge.url, { topic: "checkouts/update", body: checkoutBody(t) })).status,
          200,
        );
      }
      assert.equal(
        (await postDelivery(bridge.url, { topic: "checkouts/update", body: "garbage" })).status,
        200,
      );
      // A 60 s flush interval: only the shutdown drain can have sent these.
      assert.equal(hs.carts().size, 0);
      const started = Date.now();
      bridge.proc.kill("SIGTERM");
      assert.equal(await bridge.exited, 0, bridge.output());
      assert.ok(Date.now() - started < 15_000);
      assert.ok(
        hs.cartByKey(`${TEST_SHOP}:term-1`) && hs.cartByKey(`${TEST_SHOP}:term-2`),
        "pending carts sent before exit",
      );
      assert.match(bridge.output(), /"msg":"cartbridge stopped"/);

      const list = spawnSync(process.execPath, [MAIN, "dead-letters", "list"], {
        env,
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(list.status, 0, list.stderr);
      const rows = list.stdout
        .trim()
        .split("\n")
        .slice(0, -1)
        .map((l) => JSON.parse(l) as { id: number; source: string; reason: string });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.source, "mapping");
      assert.match(list.stdout, /1 dead letter/);
      const replay = spawnSync(process.execPath, [MAIN, "dead-letters", "replay", String(rows[0]?.id)], {
        env,
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(replay.status, 1, "garbage still cannot be mapped");
      assert.match(replay.stdout, /still_failing/);
      const status = spawnSync(process.execPath, [MAIN, "status"], {
        env,
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(status.status, 0);
      assert.equal((JSON.parse(status.stdout) as { deadLetters: number }).deadLetters, 1);
    } finally {
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a mistyped command is named (exit 64) before any complaint about the environment", () => {
    const run = spawnSync(process.execPath, [MAIN, "stauts"], {
      env: { PATH: process.env["PATH"] ?? "" },
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(run.status, 64, run.stderr);
    assert.match(run.stderr, /unknown command stauts/);
    assert.doesNotMatch(run.stderr, /SHOPIFY_WEBHOOK_SECRETS/);
  });
});
