/**
 * A PostgreSQL outage under load (issue 11 item 1): the bridge on PostgreSQL behind a TCP proxy this script
 * controls (the shared server is never stopped), deliveries at a fixed rate (open loop, each a new cart with
 * its own webhook id), and the proxy cut for a while: it stops listening and drops every connection, so the
 * bridge meets refused connections, as with a stopped server. Prints, per phase (before, during, after),
 * the answers by status, answer latency from each scheduled send time, and the bridge's RSS; and how long
 * after the store is back the first delivery, and then every delivery, is answered 200 again.
 *
 *   node bench/store-outage.ts [--outage-s=60] [--rate=200] [--before-s=10] [--after-s=30]
 *
 * Needs PostgreSQL at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { Pool } from "undici";
import { startFakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { freePort } from "../test/helpers/child.ts";
import { storeFactories } from "../test/helpers/stores.ts";
import { deliveryHeaders, onDemand } from "./deliveries.ts";
import { procMemoryBytes, startBridge } from "./processes.ts";
import { mb, ms, percentiles } from "./stats.ts";

const arg = (name: string, fallback: number): number => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found === undefined ? fallback : Number(found.slice(name.length + 3));
};
const outageMs = arg("outage-s", 60) * 1000;
const beforeMs = arg("before-s", 10) * 1000;
const afterMs = arg("after-s", 30) * 1000;
const ratePerS = arg("rate", 200);

/** A TCP proxy to `target` that can be cut (stops listening, drops connections) and restored. */
async function startProxy(targetHost: string, targetPort: number) {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = connect(targetPort, targetHost);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => s.destroy());
        }
        client.pipe(upstream).pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      server.listen(port, "127.0.0.1", resolve);
    });
  await listen();
  return {
    port,
    async cut() {
      const closed = new Promise((r) => server?.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
    restore: listen,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server?.close(r));
    },
  };
}

interface Answer {
  readonly scheduledAt: number;
  readonly latencyMs: number;
  readonly status: string;
}

async function main(): Promise<void> {
  const postgres = (await storeFactories()).find((f) => f.name === "postgres");
  if (postgres === undefined || postgres.unavailable !== undefined) {
    throw new Error(`no PostgreSQL: ${postgres?.unavailable ?? "no factory"}`);
  }
  const direct = new URL(await postgres.freshUrl());
  const proxy = await startProxy(direct.hostname, Number(direct.port || 5432));
  const proxied = new URL(direct);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  const sandbox = await startFakeHubSpot();
  const bridge = await startBridge({ hubspotUrl: sandbox.url, env: { DATABASE_URL: proxied.toString() } });
  const pool = new Pool(bridge.url, {
    connections: 64,
    pipelining: 1,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const source = onDemand((seq) => seq);
  const answers: Answer[] = [];
  const rss: Array<{ at: number; bytes: number }> = [];
  const sampler = setInterval(() => {
    const bytes = procMemoryBytes(bridge.pid, "VmRSS");
    if (bytes !== undefined) rss.push({ at: performance.now(), bytes });
  }, 250);
  try {
    const startedAt = performance.now();
    const totalMs = beforeMs + outageMs + afterMs;
    const cutAt = startedAt + beforeMs;
    const restoreAt = cutAt + outageMs;
    let phase: "before" | "during" | "after" = "before";
    const inFlight = new Set<Promise<void>>();
    let sent = 0;
    while (performance.now() < startedAt + totalMs) {
      const now = performance.now();
      if (phase === "before" && now >= cutAt) {
        phase = "during";
        await proxy.cut();
        console.log(`store cut at ${((now - startedAt) / 1000).toFixed(1)} s`);
      } else if (phase === "during" && now >= restoreAt) {
        phase = "after";
        await proxy.restore();
        console.log(`store back at ${((now - startedAt) / 1000).toFixed(1)} s`);
      }
      const due = Math.floor(((now - startedAt) * ratePerS) / 1000) + 1;
      while (sent < due) {
        const seq = sent++;
        const scheduledAt = startedAt + (seq * 1000) / ratePerS;
        const d = source(seq);
        const p = pool
          .request({
            method: "POST",
            path: "/webhooks/shopify",
            headers: deliveryHeaders(d, `outage-${seq}`),
            body: d.body,
          })
          .then(async (res) => {
            await res.body.dump();
            return String(res.statusCode);
          })
          .catch(() => "error")
          .then((status) => {
            answers.push({ scheduledAt, latencyMs: performance.now() - scheduledAt, status });
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(inFlight);

    const report = (name: string, from: number, to: number) => {
      const inPhase = answers.filter((a) => a.scheduledAt >= from && a.scheduledAt < to);
      const statuses: Record<string, number> = {};
      for (const a of inPhase) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
      const [p50 = NaN, p99 = NaN, max = NaN] = percentiles(
        inPhase.map((a) => a.latencyMs),
        [50, 99, 100],
      );
      const phaseRss = rss.filter((r) => r.at >= from && r.at < to).map((r) => r.bytes);
      console.log(
        `${name}: ${inPhase.length} deliveries ${JSON.stringify(statuses)}; answer p50 ${ms(p50)}, p99 ${ms(p99)}, ` +
          `max ${ms(max)}; RSS ${mb(Math.min(...phaseRss))} … ${mb(Math.max(...phaseRss))}`,
      );
    };
    report("before", startedAt, cutAt);
    report("during the outage", cutAt, restoreAt);
    report("after", restoreAt, startedAt + totalMs + 1);
    const after = answers
      .filter((a) => a.scheduledAt >= restoreAt)
      .sort((a, b) => a.scheduledAt - b.scheduledAt);
    const firstOk = after.find((a) => a.status === "200");
    const lastBad = after.findLast((a) => a.status !== "200");
    console.log(
      `resumed: first 200 for a delivery sent ${firstOk === undefined ? "never" : ms(firstOk.scheduledAt - restoreAt)} ` +
        `after the store was back; every delivery 200 from ${lastBad === undefined ? "the start" : ms(lastBad.scheduledAt - restoreAt)} on`,
    );
    console.log(`peak RSS (VmHWM) ${mb(bridge.peakRssBytes())}`);
    // Why deliveries were refused, from the bridge's own log.
    const reasons: Record<string, number> = {};
    for (const line of bridge.output().split("\n")) {
      if (!line.includes("delivery could not be committed")) continue;
      try {
        const entry = JSON.parse(line) as { err?: { message?: string } };
        const reason = (entry.err?.message ?? "?").replace(/\d+/g, "N").slice(0, 120);
        reasons[reason] = (reasons[reason] ?? 0) + 1;
      } catch {
        // not a JSON log line
      }
    }
    console.log(`503 reasons logged: ${JSON.stringify(reasons)}`);
  } finally {
    clearInterval(sampler);
    await pool.destroy();
    await bridge.stop();
    await proxy.stop();
    await sandbox.close();
    await postgres.cleanup();
  }
}

await main();
