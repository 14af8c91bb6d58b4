/**
 * The checks made while the container runs: smoke.sh's `--check`, started by `smoke.ts` once /healthz answers
 * and the image's HEALTHCHECK passed. It runs on the host (the container shares the host network) and talks to
 * the bridge in the container and to the HubSpot sandbox in `smoke.ts`'s process, through HubSpot's own API.
 *
 * The bridge runs with FLUSH_INTERVAL_MS at ten minutes, so only two things can send a cart to HubSpot during
 * the test: a full batch of 100 pending carts, and the drain on SIGTERM.
 *   1. /readyz answers 200: the store answers and the sandbox's cart key property was found.
 *   2. 100 signed deliveries of one Shopify sample (byte-exact, one shop each) → a full batch: the carts
 *      arrive in the sandbox.
 *   3. One more delivery → answered 200 and stays pending: not in the sandbox, carts_pending 1.
 *   4. The process in the container is not root; `cartbridge status` run inside it (as `docker exec` would)
 *      sees the store: 101 carts, 1 pending.
 * Then smoke.sh sends SIGTERM; `smoke.ts` checks that the drain sent the pending cart after this script ended.
 *
 * Environment: SMOKE_BASE_URL and SMOKE_PID from smoke.sh; SANDBOX_URL, SANDBOX_TOKEN and CHECK_REPORT (a JSON
 * file this script writes for smoke.ts) from smoke.ts.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fixture, postDelivery } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

const BATCH_FIXTURE = "checkouts-create.shopify-docs-2026-04.json";
const DRAIN_FIXTURE = "carts-create.shopify-docs-2026-04.json";
const BATCH_SIZE = 100;
const CART_ID_PROPERTY = "shopify_cart_key";

/** What this script hands back to smoke.ts. */
export interface CheckReport {
  readonly batchKeys: string[];
  readonly drainKey: string;
  /** Epoch ms when the checks finished, just before smoke.sh sends SIGTERM. */
  readonly endedAtMs: number;
  readonly readyAfterMs: number;
  readonly batchArrivedAfterMs: number;
}

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`${name} is not set: run this through smoke.ts`);
  return value;
}

const bridgeUrl = required("SMOKE_BASE_URL");
const containerPid = required("SMOKE_PID");
const sandboxUrl = required("SANDBOX_URL");
const sandboxToken = required("SANDBOX_TOKEN");
const reportPath = required("CHECK_REPORT");

const started = performance.now();
const elapsedMs = (): number => Math.round(performance.now() - started);
const step = (message: string): void =>
  console.log(`[check ${String(elapsedMs()).padStart(5)} ms] ${message}`);

/** A cart as HubSpot's API returns it, or undefined on 404. */
async function sandboxCart(key: string): Promise<Record<string, string> | undefined> {
  const properties = "hs_external_status,hs_total_price,hs_currency_code,hs_source_store";
  const url = `${sandboxUrl}/crm/v3/objects/carts/${encodeURIComponent(key)}?idProperty=${CART_ID_PROPERTY}&properties=${properties}`;
  // Marked, so smoke.ts can tell these reads from the bridge's own requests.
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${sandboxToken}`, "x-smoke-check": "1" },
  });
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, `HubSpot sandbox GET cart answered ${res.status}`);
  return ((await res.json()) as { properties: Record<string, string> }).properties;
}

async function metric(name: string): Promise<number | undefined> {
  const text = await (await fetch(`${bridgeUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Runs a command inside the container, with its environment, user and working directory: `docker exec`. */
async function execInContainer(
  argv: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const environ = readFileSync(`/proc/${containerPid}/environ`, "utf8")
    .split("\0")
    .filter((kv) => kv.includes("="));
  const env = Object.fromEntries(
    environ.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const { uid, gid } = processIds();
  const args = [
    "-t",
    containerPid,
    "-m",
    "-p",
    "--root",
    "--wd",
    "-S",
    String(uid),
    "-G",
    String(gid),
    "--",
    ...argv,
  ];
  const child = spawn("/usr/bin/nsenter", args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  return { code, stdout, stderr };
}

function processIds(): { uid: number; gid: number } {
  const status = readFileSync(`/proc/${containerPid}/status`, "utf8");
  const field = (name: string): number =>
    Number(/^\S+:\s+(\d+)/.exec(status.split("\n").find((l) => l.startsWith(`${name}:`)) ?? "")?.[1]);
  return { uid: field("Uid"), gid: field("Gid") };
}

// 1. ready
await waitFor(async () => (await fetch(`${bridgeUrl}/readyz`)).status === 200, {
  what: "/readyz to answer 200",
  timeoutMs: 30_000,
  intervalMs: 200,
});
const readyAfterMs = elapsedMs();
step(`/readyz answered 200`);

// 2. a full batch arrives
const batch = fixture(BATCH_FIXTURE);
const batchToken = (JSON.parse(batch.body.toString("utf8")) as { cart_token: string }).cart_token;
const batchKeys: string[] = [];
for (let i = 1; i <= BATCH_SIZE; i++) {
  const shop = `smoke-${String(i).padStart(3, "0")}.myshopify.com`;
  const res = await postDelivery(bridgeUrl, { topic: batch.topic, body: batch.body, shop });
  assert.equal(
    res.status,
    200,
    `delivery ${i} of ${batch.file} answered ${res.status}: ${JSON.stringify(res.json)}`,
  );
  batchKeys.push(`${shop}:${batchToken}`);
}
step(`${BATCH_SIZE} signed ${batch.topic} deliveries (${batch.file}) answered 200`);
const lastKey = batchKeys[batchKeys.length - 1] ?? "";
const arrived = await waitFor(() => sandboxCart(lastKey), {
  what: `cart ${lastKey} in the HubSpot sandbox`,
  timeoutMs: 20_000,
  intervalMs: 250,
});
const batchArrivedAfterMs = elapsedMs();
assert.equal(arrived["hs_external_status"], "checkout");
assert.equal(arrived["hs_total_price"], "421.88");
assert.equal(arrived["hs_source_store"], "smoke-100.myshopify.com");
assert.ok(await sandboxCart(batchKeys[0] ?? ""), "the first cart of the batch is in the sandbox too");
await waitFor(async () => (await metric("carts_pending")) === 0, {
  what: "carts_pending 0",
  timeoutMs: 10_000,
});
step(`the batch arrived in the HubSpot sandbox (status checkout, total 421.88); carts_pending 0`);

// 3. one more cart stays pending
const drain = fixture(DRAIN_FIXTURE);
const drainShop = "smoke-drain.myshopify.com";
const drainToken = (JSON.parse(drain.body.toString("utf8")) as { token: string }).token;
const drainKey = `${drainShop}:${drainToken}`;
const res = await postDelivery(bridgeUrl, { topic: drain.topic, body: drain.body, shop: drainShop });
assert.equal(res.status, 200, `${drain.file} answered ${res.status}`);
// Acknowledged once durable in the inbox; applied to the store a few milliseconds later.
await waitFor(async () => (await metric("carts_pending")) === 1, {
  what: "the last cart pending",
  timeoutMs: 5_000,
});
assert.equal(await sandboxCart(drainKey), undefined, "the last cart must not be sent before SIGTERM");
step(`${drain.topic} (${drain.file}) answered 200 and is pending, not in the sandbox`);

// 4. user and CLI inside the container
const { uid, gid } = processIds();
assert.ok(Number.isInteger(uid) && uid !== 0, `the bridge runs as uid ${uid}, which must not be root`);
const status = await execInContainer(["cartbridge", "status"]);
assert.equal(status.code, 0, `cartbridge status exited ${status.code}: ${status.stderr}`);
const stats = JSON.parse(status.stdout) as { carts: number; pendingCarts: number };
assert.equal(stats.carts, BATCH_SIZE + 1, `cartbridge status: ${status.stdout}`);
assert.equal(stats.pendingCarts, 1, `cartbridge status: ${status.stdout}`);
step(
  `bridge runs as uid ${uid} gid ${gid}; 'cartbridge status' in the container: ${stats.carts} carts, ${stats.pendingCarts} pending`,
);

const report: CheckReport = { batchKeys, drainKey, endedAtMs: Date.now(), readyAfterMs, batchArrivedAfterMs };
writeFileSync(reportPath, JSON.stringify(report));
