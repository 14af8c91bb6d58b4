import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { loadConfig, type Config } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { startService, type Service, type ServiceOptions } from "../../src/service.ts";
import { startFakeHubSpot, type FakeHubSpot, type FakeHubSpotOptions } from "../fakes/hubspot-server.ts";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";
import { TEST_SECRET } from "./shopify.ts";
import { waitFor } from "./wait.ts";

export interface TestBridge {
  readonly service: Service;
  readonly url: string;
  readonly config: Config;
  readonly dir: string;
  /** Every log line, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Stops the service (drain as SIGTERM would); `keepDir` leaves the store for a restart. */
  stop(opts?: { keepDir?: boolean; drainMs?: number }): Promise<void>;
}

/** Runs the whole bridge in-process on port 0 with a file SQLite store in a temp dir. */
export async function startTestBridge(opts: {
  hubspotUrl: string;
  env?: Record<string, string>;
  dir?: string;
  service?: ServiceOptions;
}): Promise<TestBridge> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "cartbridge-test-"));
  const config = loadConfig({
    SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
    HUBSPOT_ACCESS_TOKEN: "test-token",
    HUBSPOT_BASE_URL: opts.hubspotUrl,
    HUBSPOT_API_VERSION: testHubSpotApiVersion(),
    DATABASE_URL: `sqlite:${join(dir, "cartbridge.db")}`,
    PORT: "0",
    FLUSH_INTERVAL_MS: "100",
    LOG_LEVEL: "debug",
    ...opts.env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const service = await startService(config, log, {
    host: "127.0.0.1",
    timings: { authRetryMs: 300, dailyRetryMs: 500, backoffBaseMs: 100 },
    hubspotTimeoutMs: 1000,
    ...opts.service,
  });
  return {
    service,
    url: service.url,
    config,
    dir,
    logs,
    async stop({ keepDir = false, drainMs = 2000 } = {}) {
      await service.stop({ drainMs });
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A fake HubSpot and a bridge for the length of `body`, both closed after it (failures included).
 * `setup` prepares the fake before the bridge starts; `ready` waits for /readyz's conditions first.
 */
export async function withBridge(
  opts: {
    fake?: FakeHubSpotOptions;
    env?: Record<string, string>;
    setup?: (hs: FakeHubSpot) => void;
    ready?: boolean;
    service?: ServiceOptions;
  },
  body: (hs: FakeHubSpot, bridge: TestBridge) => Promise<void>,
): Promise<void> {
  const hs = await startFakeHubSpot(opts.fake);
  opts.setup?.(hs);
  const bridge = await startTestBridge({
    hubspotUrl: hs.url,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.service ? { service: opts.service } : {}),
  });
  try {
    if (opts.ready === true)
      await waitFor(async () => (await bridge.service.readiness()).ready, { what: "ready" });
    await body(hs, bridge);
  } finally {
    await bridge.stop({ drainMs: 500 });
    await hs.close();
  }
}
