/**
 * npm run demo: the whole bridge on this machine with no accounts. A local HubSpot sandbox (the stateful
 * fake the tests use) and the bridge on the embedded SQLite store; one buyer's story is signed and sent as
 * Shopify would (demo-story.ts), each step checked against the sandbox; the resulting HubSpot carts are printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { startService } from "../src/service.ts";
import { startFakeHubSpot } from "../test/fakes/hubspot-server.ts";
import { TEST_SECRET } from "../test/helpers/shopify.ts";
import { waitFor } from "../test/helpers/wait.ts";
import { tellStory } from "./demo-story.ts";

const ADMIN_TOKEN = "demo-admin-token";
const dir = mkdtempSync(join(tmpdir(), "cartbridge-demo-"));
const sandbox = await startFakeHubSpot({ accessToken: "demo-token", apiVersion: "any" });
const config = loadConfig({
  SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
  HUBSPOT_ACCESS_TOKEN: "demo-token",
  HUBSPOT_BASE_URL: sandbox.url,
  HUBSPOT_API_VERSION: process.env["HUBSPOT_API_VERSION"] ?? "v3",
  DATABASE_URL: `sqlite:${join(dir, "cartbridge.db")}`,
  PORT: "0",
  FLUSH_INTERVAL_MS: "200",
  ADMIN_TOKEN,
  // The story prints what happens; LOG_LEVEL=info shows the bridge's own log lines beside it.
  LOG_LEVEL: process.env["LOG_LEVEL"] ?? "error",
});
const service = await startService(config, createLogger(config.logLevel), { host: "127.0.0.1" });
let exitCode = 0;
try {
  await waitFor(async () => (await service.readiness()).ready, { what: "the bridge to be ready" });
  console.log(
    `cartbridge ${service.url} → HubSpot sandbox ${sandbox.url} (API ${config.hubspotApiVersion})\n` +
      `store ${config.databaseUrl}\n`,
  );

  await tellStory({ bridgeUrl: service.url, adminToken: ADMIN_TOKEN, sandbox, print: (l) => console.log(l) });
} catch (error) {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  await service.stop({ drainMs: 2000 });
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(exitCode);
