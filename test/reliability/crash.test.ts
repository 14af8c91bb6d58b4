/**
 * SPEC §6 "Acknowledged means committed": the bridge runs as a child process on a file SQLite store, takes
 * concurrent deliveries over many carts (out-of-order event times, repeated carts, duplicate deliveries,
 * Shopify's retries of what was not acknowledged) and is SIGKILLed at a random moment, round after round,
 * restarting on the same store each time.
 *
 * After every kill: each delivery answered 200 is in the store's delivery table (read from a copy of the
 * files, as the crash left them). After every restart: HubSpot reflects every acknowledged delivery — each
 * property it set holds its value or a newer delivery's — without waiting for any lease of the dead process.
 * At the end, with every delivery finally acknowledged (Shopify retries until it is), HubSpot holds exactly
 * what the oracle in reliability-deliveries.ts computes from all of them.
 *
 * Knobs: RELIABILITY_ROUNDS, RELIABILITY_DELIVERIES (per round), RELIABILITY_CARTS, RELIABILITY_CONCURRENCY,
 * RELIABILITY_SEED (printed on every run, to repeat one).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import type { CartEvent } from "../../src/sync/cart-event.ts";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import type { ChildBridge } from "../helpers/child.ts";
import {
  cartKey,
  createDeliveryFactory,
  exactDifferences,
  expectedCarts,
  reflects,
  type GeneratedDelivery,
} from "../helpers/reliability-deliveries.ts";
import {
  cartRows,
  durableContents,
  envInt,
  killChild,
  seededRandom,
  sendConcurrently,
  startChild,
  suiteSeed,
  type SendResult,
} from "../helpers/reliability-process.ts";
import { waitFor } from "../helpers/wait.ts";

const ROUNDS = envInt("RELIABILITY_ROUNDS", 10);
const DELIVERIES = envInt("RELIABILITY_DELIVERIES", 500);
const CARTS = envInt("RELIABILITY_CARTS", 80);
const CONCURRENCY = envInt("RELIABILITY_CONCURRENCY", 16);
/** How long HubSpot may take to reflect acknowledged deliveries after a restart. */
const LAND_WITHIN_MS = 30_000;

it(`SIGKILL at random moments over ${ROUNDS} rounds loses no acknowledged delivery`, async () => {
  const seed = suiteSeed();
  const random = seededRandom(seed);
  console.log(
    `crash: seed ${seed} (RELIABILITY_SEED=${seed} repeats it), ${ROUNDS} rounds × ${DELIVERIES} deliveries over ${CARTS} carts, ${CONCURRENCY} concurrent`,
  );
  // HubSpot answers in 100 ms, so batches are often in flight when the kill comes.
  const hs = await startFakeHubSpot({ latencyMs: 100 });
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-crash-"));
  const dbPath = join(dir, "cartbridge.db");
  const factory = createDeliveryFactory({ carts: CARTS, prefix: "crash", random });
  let child: ChildBridge | undefined;

  const acked = new Set<string>(); // webhook ids answered 200
  const sent = new Map<string, GeneratedDelivery>(); // every delivery sent at least once, by webhook id
  const sentByCart = new Map<string, CartEvent[]>();
  const remember = (d: GeneratedDelivery): void => {
    if (sent.has(d.webhookId)) return;
    sent.set(d.webhookId, d);
    const list = sentByCart.get(d.event.key) ?? [];
    list.push(d.event);
    sentByCart.set(d.event.key, list);
  };
  const unreflected = (): GeneratedDelivery[] =>
    [...acked]
      .map((id) => sent.get(id))
      .filter(
        (d): d is GeneratedDelivery =>
          d !== undefined && !reflects(hs, d.event, sentByCart.get(d.event.key) ?? []),
      );

  try {
    for (let round = 1; round <= ROUNDS + 1; round++) {
      const final = round === ROUNDS + 1;
      const pendingAtCrash = unreflected().length;
      const started = Date.now();
      child = await startChild({ hubspotUrl: hs.url, dbPath, env: { FLUSH_INTERVAL_MS: "250" } });

      // What was acknowledged before the last crash reaches HubSpot after this restart.
      await waitFor(() => unreflected().length === 0, {
        what: `acknowledged deliveries reflected in HubSpot after restart ${round - 1}`,
        timeoutMs: LAND_WITHIN_MS,
        intervalMs: 100,
      }).catch((error: unknown) => {
        const missing = unreflected();
        const keys = [...new Set(missing.map((d) => d.event.key))];
        throw new Error(
          `${missing.length} of ${acked.size} acknowledged deliveries not in HubSpot ${LAND_WITHIN_MS} ms after restart ${round - 1}; ` +
            `e.g. ${missing
              .slice(0, 3)
              .map((d) => `${d.topic} ${d.event.key} #${d.seq}`)
              .join(", ")}; their carts in the store:\n${cartRows(dbPath, keys.slice(0, 10))}`,
          { cause: error },
        );
      });
      if (round > 1)
        console.log(
          `crash: after restart ${round - 1}: landed ${acked.size}/${acked.size} acknowledged (${pendingAtCrash} of them not yet in HubSpot at the crash) ${Date.now() - started} ms after the restart`,
        );
      if (final) break;

      // This round: Shopify's retries of everything not acknowledged yet, new deliveries, and redeliveries.
      const retries = [...sent.values()].filter((d) => !acked.has(d.webhookId));
      const batch: GeneratedDelivery[] = [...retries];
      const earlier = [...sent.values()];
      for (let i = 0; i < DELIVERIES; i++) {
        const redeliver = earlier.length > 0 && random() < 0.1;
        batch.push(
          redeliver ? (earlier[Math.floor(random() * earlier.length)] as GeneratedDelivery) : factory.next(),
        );
      }

      const killAfter = Math.floor(batch.length * (0.1 + 0.8 * random()));
      const extraDelayMs = Math.floor(random() * 20);
      let answered = 0;
      let killed = false;
      const victim = child;
      const results: SendResult[] = await sendConcurrently(victim.url, batch, {
        concurrency: CONCURRENCY,
        stopped: () => killed,
        onSend: remember,
        onResult() {
          answered++;
          if (answered === killAfter) {
            setTimeout(() => {
              killed = true;
              victim.proc.kill("SIGKILL");
            }, extraDelayMs);
          }
        },
      });
      killed = true;
      await killChild(victim);
      child = undefined;

      let ok = 0;
      let refused = 0;
      for (const r of results) {
        if (r.status === 200) {
          ok++;
          acked.add(r.delivery.webhookId);
        } else if (r.status === undefined) refused++;
      }
      const other = results.length - ok - refused;
      assert.equal(
        results.filter((r) => r.status !== undefined && r.status !== 200 && r.status !== 503).length,
        0,
        "only 200, or 503 while shutting down",
      );

      // Durable on disk at the instant of the crash: every acknowledged delivery's id is committed.
      const onDisk = durableContents(dbPath);
      const lost = [...acked].filter((id) => !onDisk.deliveryIds.has(id));
      assert.deepEqual(lost, [], `acknowledged but not committed when killed (round ${round})`);
      const committedUnacked = [...onDisk.deliveryIds].filter((id) => !acked.has(id)).length;
      console.log(
        `crash: round ${round}: sent ${results.length} (${retries.length} retries), killed after ${killAfter}+ answers; acknowledged ${ok} (total ${acked.size}), ` +
          `no answer ${refused}, other ${other}; committed but unacknowledged ${committedUnacked}; carts in store ${onDisk.carts}`,
      );
    }

    // Shopify retries until every delivery is acknowledged; then HubSpot holds exactly the newest state.
    const running = child;
    assert.ok(running);
    for (let attempt = 1; ; attempt++) {
      const pending = [...sent.values()].filter((d) => !acked.has(d.webhookId));
      if (pending.length === 0) break;
      assert.ok(attempt <= 5, `${pending.length} deliveries never acknowledged`);
      for (const r of await sendConcurrently(running.url, pending, {
        concurrency: CONCURRENCY,
        onSend: remember,
      })) {
        if (r.status === 200) acked.add(r.delivery.webhookId);
      }
    }
    const expected = expectedCarts([...sent.values()].map((d) => d.event));
    await waitFor(() => exactDifferences(hs, expected).length === 0, {
      what: "HubSpot equal to the oracle",
      timeoutMs: LAND_WITHIN_MS,
    }).catch((error: unknown) => {
      throw new Error(
        `HubSpot differs from the newest state:\n${exactDifferences(hs, expected).slice(0, 10).join("\n")}`,
        { cause: error },
      );
    });
    const strangers = [...hs.carts().keys()].filter((key) => !factory.tokens.some((t) => cartKey(t) === key));
    assert.deepEqual(strangers, [], "HubSpot holds only carts that were sent");
    console.log(
      `crash: final: ${sent.size} distinct deliveries over ${expected.size} carts, all acknowledged; HubSpot equals the oracle on every cart`,
    );

    running.proc.kill("SIGTERM");
    assert.equal(await running.exited, 0, running.output().slice(-2000));
    child = undefined;
  } finally {
    await killChild(child);
    await hs.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
