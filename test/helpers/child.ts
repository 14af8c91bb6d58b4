import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { testHubSpotApiVersion } from "../fakes/hubspot-versions.ts";
import { TEST_SECRET } from "./shopify.ts";
import { waitFor } from "./wait.ts";

export const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

/**
 * The node flags and environment the bridge ships with (package.json `start`, the Dockerfile): tests and the
 * bench run it the same way (test/unit/start-settings.test.ts keeps the three in step). Why each is there,
 * with its numbers: bench/results.md, "Memory through 200,000 deliveries".
 * - `--max-semi-space-size=8`: a 16 MB young generation (V8 otherwise grows it to 64-128 MB; 16 MB semi-spaces
 *   left the full-mode peak at 196-209 MB, 8 MB at 174 MB, with twice the scavenges and no loss of rate seen).
 * - `--heap-growing-percent=50`: the next full GC is due when the old generation has grown by half since the
 *   last one (V8's own factor goes up to 4× with a multi-GB heap limit, so promoted garbage piled up to
 *   60+ MB between full GCs). It bounds nothing: the heap limit stays V8's.
 * - `--v8-pool-size=1`: one V8 helper thread instead of four. Concurrent marking on four threads took more
 *   than one of two cores for a tenth of a second at a time, and the event loop waited for a CPU meanwhile:
 *   at 1,000 deliveries/s, p99 10.7-21 ms in six runs against 22-40 ms (bench/results.md, "Tenth session").
 * - `MALLOC_ARENA_MAX=2`: the V8, libuv and checkpoint threads share one glibc arena instead of one each.
 */
export const NODE_FLAGS = ["--max-semi-space-size=8", "--heap-growing-percent=50", "--v8-pool-size=1"];
export const NODE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };

export interface ChildBridge {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly output: () => string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
}

export function bridgeEnv(opts: {
  hubspotUrl: string;
  dbPath: string;
  port: number;
  env?: Record<string, string>;
}): Record<string, string> {
  return {
    ...NODE_ENV,
    PATH: process.env["PATH"] ?? "",
    SHOPIFY_WEBHOOK_SECRETS: TEST_SECRET,
    HUBSPOT_ACCESS_TOKEN: "test-token",
    HUBSPOT_BASE_URL: opts.hubspotUrl,
    HUBSPOT_API_VERSION: testHubSpotApiVersion(),
    DATABASE_URL: `sqlite:${opts.dbPath}`,
    PORT: String(opts.port),
    FLUSH_INTERVAL_MS: "100",
    LOG_LEVEL: "info",
    ...opts.env,
  };
}

/** Runs `node src/main.ts serve` as a child process and waits until /healthz answers. */
export async function spawnBridge(env: Record<string, string>): Promise<ChildBridge> {
  const proc = spawn(process.execPath, [...NODE_FLAGS, MAIN, "serve"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout?.on("data", (d: Buffer) => (output += d.toString("utf8")));
  proc.stderr?.on("data", (d: Buffer) => (output += d.toString("utf8")));
  // "close" (not "exit"): the output is complete once stdio has closed.
  const exited = new Promise<number | string>((resolve) =>
    proc.on("close", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const url = `http://127.0.0.1:${env["PORT"]}`;
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    await waitFor(
      async () => {
        if (gone) throw new Error(`bridge exited early:\n${output}`);
        try {
          return (await fetch(`${url}/healthz`)).status === 200;
        } catch {
          return false;
        }
      },
      { what: "child bridge /healthz", timeoutMs: 20_000 },
    );
  } catch (error) {
    // A bridge that never came up is not left running behind the caller's back.
    if (!gone) proc.kill("SIGKILL");
    throw error;
  }
  return { proc, url, output: () => output, exited };
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
