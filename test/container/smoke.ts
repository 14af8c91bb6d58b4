/**
 * npm run test:container: the production image, built from the Dockerfile and run for real (root only).
 *
 * There is no Docker engine here: ../shared/container/smoke.sh builds the Dockerfile with buildah on a local
 * stand-in for node:24-slim (about a minute to make the first time), starts the image as `docker run` would
 * (its ENTRYPOINT, CMD, USER, WORKDIR and ENV, PID 1 of its own PID namespace, host network), waits for
 * /healthz, runs the image's HEALTHCHECK, fails if the process is root, runs `check.ts` while the container
 * runs, then sends SIGTERM and requires exit 0 within 15 s.
 *
 * This script owns the HubSpot sandbox (the fake the tests use, on a loopback port the container reaches
 * through the shared network) and gives the container the SPEC environment, with FLUSH_INTERVAL_MS at ten
 * minutes so that the one cart `check.ts` leaves pending can only reach HubSpot through the SIGTERM drain.
 * After smoke.sh passes, it checks the sandbox and the app's output: every cart arrived, the pending one was
 * sent once and after the checks ended (so by the drain), every request the bridge made to HubSpot succeeded,
 * and the bridge logged no error. It exits non-zero when any step fails, and prints the image size and timings.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeHubSpot } from "../fakes/hubspot-server.ts";
import { freePort } from "../helpers/child.ts";
import { TEST_SECRET } from "../helpers/shopify.ts";
import type { CheckReport } from "./check.ts";

const REPO_DIR = fileURLToPath(new URL("../../", import.meta.url));
const SMOKE_SH = fileURLToPath(new URL("../../../shared/container/smoke.sh", import.meta.url));
const CHECK_TS = fileURLToPath(new URL("./check.ts", import.meta.url));
const IMAGE_TAG = "localhost/cartbridge:smoke";
const SANDBOX_TOKEN = "container-smoke-token";
const FLUSH_INTERVAL_MS = 600_000;

function fail(message: string): never {
  console.error(`== test:container FAILED: ${message}`);
  process.exit(1);
}

/** The image's own port when it is free on this machine (the container shares the host network). */
async function pickPort(preferred: number): Promise<number> {
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(preferred, "0.0.0.0", () => server.close(() => resolve(true)));
  });
  return free ? preferred : freePort();
}

const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** Runs smoke.sh, forwarding its output line by line and keeping it for the summary. */
async function runSmoke(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; output: string }> {
  const child = spawn("bash", [SMOKE_SH, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const forward = (d: Buffer): void => {
    output += d.toString("utf8");
    process.stdout.write(d);
  };
  child.stdout.on("data", forward);
  child.stderr.on("data", forward);
  const stop = (): void => void child.kill("SIGTERM"); // smoke.sh removes its container on TERM
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const code = await new Promise<number>((resolve) =>
    child.once("close", (c, signal) => resolve(c ?? (signal ? 128 : 1))),
  );
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  return { code, output };
}

/** A pino line's level (error is 50), or 0 when the line is not JSON. */
function logLevel(line: string): number {
  try {
    return (JSON.parse(line) as { level?: number }).level ?? 0;
  } catch {
    return 0;
  }
}

/** The first capture of `pattern` in smoke.sh's output, or "?". */
const grab = (output: string, pattern: RegExp): string => pattern.exec(output)?.[1] ?? "?";

if (!existsSync(SMOKE_SH)) {
  fail(
    `${SMOKE_SH} is missing. The container test needs ../shared/container/ (smoke.sh, make-node-base.sh) beside ` +
      `this repository, as on cartbridge's machines and CI; it cannot build the image without it.`,
  );
}
if (process.getuid?.() !== 0) {
  fail(
    "building and running the image with buildah needs root (smoke.sh uses unshare, nsenter and mounts): run as root",
  );
}

const started = performance.now();
const workDir = mkdtempSync(join(tmpdir(), "cartbridge-container-"));
const reportPath = join(workDir, "check.json");
const sandbox = await startFakeHubSpot({ accessToken: SANDBOX_TOKEN, apiVersion: "any" });
const port = await pickPort(3000);
console.log(
  `== test:container: HubSpot sandbox on ${sandbox.url}, bridge on port ${port}, image ${IMAGE_TAG}`,
);

let exitCode = 0;
try {
  const containerEnv = {
    SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
    HUBSPOT_ACCESS_TOKEN: SANDBOX_TOKEN,
    HUBSPOT_BASE_URL: sandbox.url,
    PORT: String(port),
    FLUSH_INTERVAL_MS: String(FLUSH_INTERVAL_MS),
    LOG_LEVEL: "info",
    // DATABASE_URL is left to the image's default, sqlite:/data/cartbridge.db on its volume.
  };
  const args = [
    "--health-url",
    `http://127.0.0.1:${port}/healthz`,
    ...Object.entries(containerEnv).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
    "--check",
    `${quote(process.execPath)} ${quote(CHECK_TS)}`,
    "--tag",
    IMAGE_TAG,
    REPO_DIR,
  ];
  const env = { ...process.env, SANDBOX_URL: sandbox.url, SANDBOX_TOKEN, CHECK_REPORT: reportPath };
  const smoke = await runSmoke(args, env);
  if (smoke.code !== 0) throw new Error(`smoke.sh exited ${smoke.code} (its last lines above say why)`);

  // After SIGTERM: the sandbox holds every cart, and the pending one came with the drain.
  const report = JSON.parse(readFileSync(reportPath, "utf8")) as CheckReport;
  for (const key of report.batchKeys) {
    assert.equal(
      sandbox.cartByKey(key)?.properties["hs_external_status"],
      "checkout",
      `cart ${key} in the sandbox`,
    );
  }
  const drained = sandbox.cartByKey(report.drainKey);
  assert.ok(drained, `the pending cart ${report.drainKey} must reach HubSpot on SIGTERM`);
  assert.equal(drained.properties["hs_external_status"], "open");
  const cartUpserts = sandbox.requests.filter((r) =>
    /\/crm\/v3\/objects\/carts\/batch\/upsert$/.test(r.path),
  );
  const carrying = (key: string) =>
    cartUpserts.filter((r) =>
      (r.body as { inputs?: Array<{ id?: string }> }).inputs?.some((i) => i.id === key),
    );
  const drainRequests = carrying(report.drainKey);
  assert.equal(drainRequests.length, 1, "the pending cart was sent once");
  assert.equal(drainRequests[0]?.status, 200);
  assert.ok(
    (drainRequests[0]?.atMs ?? 0) >= report.endedAtMs,
    "the pending cart was sent after the checks ended, by the SIGTERM drain (not by a timer)",
  );
  const fromBridge = sandbox.requests.filter((r) => r.headers["x-smoke-check"] === undefined);
  const rejected = fromBridge.filter((r) => r.status < 200 || r.status >= 300);
  assert.deepEqual(
    rejected.map((r) => `${r.method} ${r.path} → ${r.status}`),
    [],
    "every request the bridge made to HubSpot succeeded",
  );
  const appErrors = smoke.output
    .split("\n")
    .flatMap((line) => (line.includes("app| {") ? [line.slice(line.indexOf("app| ") + 5)] : []))
    .filter((line) => logLevel(line) >= 50);
  assert.deepEqual(appErrors, [], "the bridge logged no errors");
  console.log(
    "== sandbox after SIGTERM: 100 batch carts + the drained cart present; drained cart sent once, after the checks",
  );

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const rows: Array<[string, string]> = [
    ["image", `${IMAGE_TAG}, ${grab(smoke.output, /^\s+size\s+(.+)$/m)}`],
    ["base image", grab(smoke.output, /base image: (.+)$/m)],
    ["build (npm ci, copy)", `${grab(smoke.output, /PASS {2}build \((\d+ s)\)/)}`],
    ["start → /healthz 200", `${grab(smoke.output, /answered 200 after (\d+ s)/)}`],
    ["checks → /readyz 200", `${report.readyAfterMs} ms`],
    [
      "100 carts → in HubSpot",
      `${report.batchArrivedAfterMs - report.readyAfterMs} ms (deliveries + one batch)`,
    ],
    [
      "HubSpot cart upserts",
      `${cartUpserts.length} (batch keys in ${new Set(report.batchKeys.flatMap(carrying)).size})`,
    ],
    ["SIGTERM → exit 0", grab(smoke.output, /exited 0 after SIGTERM in ([\d.]+ s)/)],
    ["smoke.sh total", `${grab(smoke.output, /SMOKE PASSED in (\d+ s)/)}`],
    ["test:container total", `${seconds} s`],
  ];
  console.log("== test:container passed");
  for (const [name, value] of rows) console.log(`   ${name.padEnd(24)} ${value}`);
} catch (error) {
  exitCode = 1;
  // An assertion shows its diff; anything else, one line.
  if (error instanceof assert.AssertionError) console.error(error);
  console.error(`== test:container FAILED: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await sandbox.close();
  rmSync(workDir, { recursive: true, force: true });
}
process.exit(exitCode);
