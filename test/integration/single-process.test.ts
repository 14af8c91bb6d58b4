import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { bridgeEnv, freePort, MAIN, NODE_FLAGS, type ChildBridge } from "../helpers/child.ts";
import { killChild, startChild } from "../helpers/reliability-process.ts";
import { checkoutBody, postDelivery, TEST_SHOP } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/** Runs `serve` against `dbPath` and waits for it to exit; resolves with its exit code and output. */
async function runToExit(
  hubspotUrl: string,
  dbPath: string,
): Promise<{ code: number | string; output: string }> {
  const env = bridgeEnv({ hubspotUrl, dbPath, port: await freePort() });
  const proc = spawn(process.execPath, [...NODE_FLAGS, MAIN, "serve"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
  proc.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const code = await new Promise<number | string>((resolve) =>
    proc.on("close", (c, signal) => resolve(c ?? signal ?? -1)),
  );
  clearTimeout(timer);
  return { code, output };
}

describe("one process per SQLite file (SPEC §6)", () => {
  it("a second bridge on the same file exits at start with a clear message; the first keeps working; after the first is SIGKILLed a new one starts", async () => {
    const hs = await startFakeHubSpot();
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-lock-"));
    const dbPath = join(dir, "cartbridge.db");
    const linkedDir = join(tmpdir(), `cartbridge-lock-link-${process.pid}`);
    let first: ChildBridge | undefined;
    let third: ChildBridge | undefined;
    try {
      first = await startChild({ hubspotUrl: hs.url, dbPath });

      const second = await runToExit(hs.url, dbPath);
      assert.notEqual(second.code, 0, second.output);
      assert.match(second.output, /another cartbridge process is already serving .*cartbridge\.db/);
      assert.match(second.output, /one process per SQLite file/);

      // The same file through a symbolic link (to the file, or to its directory) is the same store.
      const linked = join(dir, "linked.db");
      symlinkSync(dbPath, linked);
      symlinkSync(dir, linkedDir);
      for (const other of [linked, join(linkedDir, "cartbridge.db")]) {
        const refused = await runToExit(hs.url, other);
        assert.notEqual(refused.code, 0, refused.output);
        assert.match(refused.output, /another cartbridge process is already serving/);
      }

      const res = await postDelivery(first.url, { topic: "checkouts/update", body: checkoutBody("lock-1") });
      assert.equal(res.status, 200, "the first bridge still accepts deliveries");
      await waitFor(() => hs.cartByKey(`${TEST_SHOP}:lock-1`), { what: "the first bridge still sends" });

      await killChild(first); // SIGKILL: the kernel drops its locks with the process
      first = undefined;
      // Restarted on the file it wrote, by a path that is not the file's real one: a relative path, and one
      // through a linked directory. Neither refuses the bridge itself.
      for (const [cwd, path] of [
        [dir, "cartbridge.db"],
        [dir, join(linkedDir, "cartbridge.db")],
      ] as const) {
        const again = await startChild({ hubspotUrl: hs.url, dbPath: path, cwd });
        await killChild(again);
      }
      third = await startChild({ hubspotUrl: hs.url, dbPath });
      const again = await postDelivery(third.url, {
        topic: "checkouts/update",
        body: checkoutBody("lock-2"),
      });
      assert.equal(again.status, 200);
    } finally {
      await killChild(first);
      if (third !== undefined) {
        third.proc.kill("SIGTERM");
        await third.exited;
      }
      await hs.close();
      rmSync(linkedDir, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
