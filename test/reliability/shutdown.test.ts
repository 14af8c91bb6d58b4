/**
 * SPEC §7 SIGTERM: stop accepting, finish in-flight requests, send what is pending within a bounded time,
 * exit 0. The bridge runs as a child process on a file SQLite store, with a 60 s flush interval so only the
 * shutdown drain (or the next start) can send what is pending.
 *
 * - HubSpot reachable: SIGTERM in the middle of a burst of deliveries, with an idle keep-alive connection
 *   open; every delivery answered 200 is in HubSpot before the process exits 0.
 * - HubSpot failing (503 on every upsert) or hanging (never answers): exit 0 within the bound all the same;
 *   the carts stay pending in the store and land right after the next start.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startFakeHubSpot, type FakeFault, type FakeHubSpot } from "../fakes/hubspot-server.ts";
import type { ChildBridge } from "../helpers/child.ts";
import {
  cartKey,
  createDeliveryFactory,
  reflects,
  type GeneratedDelivery,
} from "../helpers/reliability-deliveries.ts";
import {
  cartRows,
  killChild,
  sendConcurrently,
  startChild,
  type SendResult,
} from "../helpers/reliability-process.ts";
import { buildDelivery, checkoutBody, postDelivery } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/** README: in-flight requests get up to 5 s, pending carts up to 10 s; a little more for start-up and exit. */
const EXIT_WITHIN_MS = 18_000;
/** "Right after the next start": backoff kept in the store may defer the first retry by a few seconds. */
const LAND_AFTER_RESTART_MS = 20_000;

const upserts = (hs: FakeHubSpot) => hs.requests.filter((r) => r.path.includes("/carts/batch/upsert"));

async function waitReady(child: ChildBridge): Promise<void> {
  await waitFor(async () => (await fetch(`${child.url}/readyz`)).status === 200, {
    what: "readyz 200",
    timeoutMs: 20_000,
  });
}

/** A keep-alive connection that made one request and now sits idle, as a load balancer's would. */
async function idleKeepAlive(url: string): Promise<() => void> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.write(`GET /healthz HTTP/1.1\r\nHost: ${hostname}\r\nConnection: keep-alive\r\n\r\n`);
    });
    socket.once("data", () => resolve());
  });
  socket.on("error", () => undefined);
  return () => socket.destroy();
}

describe("SIGTERM", () => {
  it("HubSpot reachable: exits 0 within the bound with every acknowledged cart in HubSpot", async () => {
    const hs = await startFakeHubSpot();
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-term-"));
    const dbPath = join(dir, "cartbridge.db");
    let child: ChildBridge | undefined;
    let closeIdle = (): void => undefined;
    try {
      child = await startChild({ hubspotUrl: hs.url, dbPath, env: { FLUSH_INTERVAL_MS: "60000" } });
      await waitReady(child);
      closeIdle = await idleKeepAlive(child.url);
      // Fewer than 100 carts: nothing is due before the 60 s interval, so nothing is sent yet.
      const factory = createDeliveryFactory({ carts: 80, prefix: "term" });
      const first = Array.from({ length: 60 }, () => factory.next());
      const firstResults = await sendConcurrently(child.url, first, { concurrency: 8 });
      assert.ok(
        firstResults.every((r) => r.status === 200),
        "the first deliveries are acknowledged",
      );
      assert.equal(upserts(hs).length, 0, "nothing sent before SIGTERM (60 s flush interval)");

      // SIGTERM while a second burst is in flight.
      const burst = Array.from({ length: 300 }, () => factory.next());
      let answered = 0;
      let termAt = 0;
      const victim = child;
      const burstResults = await sendConcurrently(victim.url, burst, {
        concurrency: 16,
        onResult() {
          if (++answered === 40) {
            termAt = Date.now();
            victim.proc.kill("SIGTERM");
          }
        },
      });
      if (termAt === 0) assert.fail(`only ${answered} deliveries answered: SIGTERM was never sent`);
      const code = await victim.exited;
      const exitMs = Date.now() - termAt;
      child = undefined;
      assert.equal(code, 0, victim.output().slice(-3000));
      assert.ok(exitMs < EXIT_WITHIN_MS, `exited ${exitMs} ms after SIGTERM`);

      const results: SendResult[] = [...firstResults, ...burstResults];
      const statuses: Record<string, number> = {};
      for (const r of results) {
        const label = String(r.status ?? "no answer");
        statuses[label] = (statuses[label] ?? 0) + 1;
      }
      const unexpected = results.filter(
        (r) => r.status !== undefined && r.status !== 200 && r.status !== 503,
      );
      assert.deepEqual(
        unexpected.map((r) => r.status),
        [],
        "in-flight deliveries get 200, or 503 once shutting down",
      );
      const acked = results.filter((r) => r.status === 200).map((r) => r.delivery);
      const sentByCart = new Map<string, GeneratedDelivery["event"][]>();
      for (const r of results)
        sentByCart.set(r.delivery.event.key, [
          ...(sentByCart.get(r.delivery.event.key) ?? []),
          r.delivery.event,
        ]);
      const missing = acked.filter((d) => !reflects(hs, d.event, sentByCart.get(d.event.key) ?? []));
      console.log(
        `shutdown (HubSpot up): answers ${JSON.stringify(statuses)}; exit 0 in ${exitMs} ms; ` +
          `${acked.length - missing.length}/${acked.length} acknowledged deliveries in HubSpot at exit, ${upserts(hs).length} upserts`,
      );
      assert.deepEqual(
        missing.map((d) => `${d.topic} ${d.event.key} #${d.seq}`),
        [],
        `acknowledged but not in HubSpot when the process exited:\n${cartRows(
          dbPath,
          missing.slice(0, 5).map((d) => d.event.key),
        )}`,
      );
    } finally {
      closeIdle();
      await killChild(child);
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const failures: Array<{ name: string; fault: FakeFault }> = [
    { name: "failing (503 on every upsert)", fault: { status: 503 } },
    { name: "hanging (upserts never answered)", fault: { status: 0, hang: true } },
  ];
  for (const { name, fault } of failures) {
    it(`HubSpot ${name}: exits 0 within the bound; the pending carts land right after the next start`, async () => {
      const down = await startFakeHubSpot();
      const up = await startFakeHubSpot();
      const dir = mkdtempSync(join(tmpdir(), "cartbridge-term-down-"));
      const dbPath = join(dir, "cartbridge.db");
      const tokens = Array.from({ length: 30 }, (_, i) => `down-${i}`);
      let child: ChildBridge | undefined;
      try {
        down.failNext(fault, { times: 100_000, path: "/batch/upsert" });
        child = await startChild({ hubspotUrl: down.url, dbPath, env: { FLUSH_INTERVAL_MS: "100" } });
        await waitReady(child);
        for (const [i, t] of tokens.entries()) {
          const res = await postDelivery(child.url, {
            topic: "checkouts/update",
            body: checkoutBody(t, { total: `${i}.25` }),
          });
          assert.equal(res.status, 200);
        }
        await waitFor(() => upserts(down).length > 0, { what: "a first upsert attempt" });

        const termAt = Date.now();
        const attemptsBefore = upserts(down).length;
        const victim = child;
        victim.proc.kill("SIGTERM");
        const code = await Promise.race([
          victim.exited,
          new Promise<string>((r) => setTimeout(() => r("still running"), EXIT_WITHIN_MS + 30_000).unref()),
        ]);
        const exitMs = Date.now() - termAt;
        child = undefined;
        assert.equal(code, 0, victim.output().slice(-3000));
        assert.ok(exitMs < EXIT_WITHIN_MS, `exited ${exitMs} ms after SIGTERM (bound ${EXIT_WITHIN_MS} ms)`);
        assert.equal(down.carts().size, 0, "HubSpot took nothing");
        // The drain tries the waiting carts once more; HubSpot failing again, it leaves them for the next start
        // (each further try would push their next attempt, after full-jitter backoff, further past it).
        const drainAttempts = upserts(down).length - attemptsBefore;
        assert.ok(drainAttempts <= 1, `${drainAttempts} upsert attempts during the drain`);

        const restartAt = Date.now();
        child = await startChild({ hubspotUrl: up.url, dbPath, env: { FLUSH_INTERVAL_MS: "100" } });
        const landed = (): number =>
          tokens.filter((t, i) => up.cartByKey(cartKey(t))?.properties["hs_total_price"] === `${i}.25`)
            .length;
        await waitFor(() => landed() === tokens.length, {
          what: "pending carts after restart",
          timeoutMs: LAND_AFTER_RESTART_MS,
        }).catch((error: unknown) => {
          throw new Error(
            `${landed()}/${tokens.length} carts landed ${LAND_AFTER_RESTART_MS} ms after the restart; in the store:\n` +
              cartRows(
                dbPath,
                tokens
                  .filter((t) => up.cartByKey(cartKey(t)) === undefined)
                  .slice(0, 5)
                  .map((t) => cartKey(t)),
              ),
            { cause: error },
          );
        });
        console.log(
          `shutdown (HubSpot ${name}): exit 0 in ${exitMs} ms with ${tokens.length} carts pending; all landed ${Date.now() - restartAt} ms after the next start`,
        );
      } finally {
        await killChild(child);
        await down.close();
        await up.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("SIGTERM, in flight", () => {
  /** A bridge child on a fresh file store, ready, with its fake HubSpot; both stopped after `run`. */
  async function withChild(run: (child: ChildBridge, hs: FakeHubSpot) => Promise<void>): Promise<void> {
    const hs = await startFakeHubSpot();
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-term-flight-"));
    let child: ChildBridge | undefined;
    try {
      child = await startChild({
        hubspotUrl: hs.url,
        dbPath: join(dir, "cartbridge.db"),
        env: { FLUSH_INTERVAL_MS: "100" },
      });
      await waitReady(child);
      await run(child, hs);
    } finally {
      await killChild(child);
      await hs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const exitCode = (child: ChildBridge): Promise<number | string> =>
    Promise.race([
      child.exited,
      new Promise<string>((r) => setTimeout(() => r("still running"), EXIT_WITHIN_MS).unref()),
    ]);

  it("a delivery whose body is still arriving when SIGTERM comes is finished: 200, and its cart is sent", async () => {
    await withChild(async (child, hs) => {
      const { headers, body } = buildDelivery({
        topic: "checkouts/update",
        body: checkoutBody("mid-body", { total: "41.00" }),
      });
      const { hostname, port } = new URL(child.url);
      const socket = connect(Number(port), hostname);
      socket.on("error", () => undefined);
      let answer = "";
      socket.on("data", (d: Buffer) => (answer += d.toString("utf8")));
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      const head = Object.entries({ ...headers, host: hostname, "content-length": String(body.length) })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      socket.write(`POST /webhooks/shopify HTTP/1.1\r\n${head}\r\n`);
      socket.write(body.subarray(0, 50));
      // The request has arrived and its body is on its way when the signal comes.
      await new Promise((r) => setTimeout(r, 200));
      child.proc.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 300));
      socket.write(body.subarray(50));
      await waitFor(() => answer.includes("\r\n\r\n"), { what: "an answer to the delivery" });
      assert.match(answer, /^HTTP\/1\.1 200 /, answer);
      assert.equal(await exitCode(child), 0, child.output().slice(-3000));
      socket.destroy();
      assert.equal(hs.cartByKey(cartKey("mid-body"))?.properties["hs_total_price"], "41.00");
    });
  });

  it("a cart waiting out a short retry backoff when SIGTERM comes is sent before the exit", async () => {
    await withChild(async (child, hs) => {
      // One failed upsert: the retry is due 0.1–2 s later, well within the 10 s drain.
      hs.failNext({ status: 500 }, { times: 1, path: "/batch/upsert" });
      const res = await postDelivery(child.url, {
        topic: "checkouts/update",
        body: checkoutBody("backoff", { total: "9.50" }),
      });
      assert.equal(res.status, 200);
      await waitFor(() => upserts(hs).length === 1, { what: "the failed upsert" });
      child.proc.kill("SIGTERM");
      assert.equal(await exitCode(child), 0, child.output().slice(-3000));
      assert.equal(upserts(hs).length, 2, "the retry went out during the drain");
      assert.equal(hs.cartByKey(cartKey("backoff"))?.properties["hs_total_price"], "9.50");
    });
  });
});
