/** What every measure gets from the runner: settings, output, and the bridge/sandbox starters it shares. */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FakeHubSpot, FakeHubSpotOptions } from "../test/fakes/hubspot-server.ts";
import {
  startBridge,
  startExpressBaseline,
  startSandboxProcess,
  type Bridge,
  type Served,
} from "./processes.ts";
import { formatProfile, summariseProfile } from "./profile-summary.ts";
import { startSandbox } from "./sandbox.ts";
import type { Scope } from "./scope.ts";
import type { Settings } from "./settings.ts";

export interface BenchContext {
  readonly settings: Settings;
  /** Progress on stderr. */
  log(line: string): void;
  /** A remark for results.md (settings a measure chose, anomalies, failures). */
  note(line: string): void;
  /** Processes running now (for the CPU-noise meter). */
  readonly livePids: Set<number>;
  /**
   * Figures one measure leaves for another: the baseline's memory for the memory row; the ingest measure's
   * throughputs (deliveries/s answered 200) for the PostgreSQL row.
   */
  readonly shared: {
    expressPeakRssBytes?: number;
    ingest?: { readonly bridgePerS: number; readonly expressPerS: number; readonly connections: number };
  };
}

export const PROFILE_DIR = fileURLToPath(new URL("./out/profiles/", import.meta.url));

/** A fake HubSpot closed with the scope. */
export async function sandboxIn(scope: Scope, opts: FakeHubSpotOptions = {}): Promise<FakeHubSpot> {
  const sandbox = await startSandbox(opts);
  scope.defer(() => sandbox.close());
  return sandbox;
}

/**
 * A bridge child process stopped with the scope (SIGKILL after a short grace: what is pending is not
 * the measure). With --profile it runs under --cpu-prof, is stopped gracefully so the profile is written,
 * and the profile's summary is printed.
 */
export async function bridgeIn(
  ctx: BenchContext,
  scope: Scope,
  label: string,
  hubspotUrl: string,
  env: Record<string, string> = {},
): Promise<Bridge> {
  const profileDir = ctx.settings.profile ? join(PROFILE_DIR, label) : undefined;
  if (profileDir !== undefined) rmSync(profileDir, { recursive: true, force: true });
  const bridge = await startBridge({
    hubspotUrl,
    env: { FLUSH_INTERVAL_MS: String(ctx.settings.flushIntervalMs), ...env },
    ...(profileDir === undefined ? {} : { cpuProfileDir: profileDir }),
  });
  ctx.livePids.add(bridge.pid);
  scope.defer(async () => {
    await bridge.stop(profileDir === undefined ? 2_000 : 30_000);
    ctx.livePids.delete(bridge.pid);
    if (profileDir !== undefined) {
      for (const file of readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"))) {
        ctx.log(`CPU profile of the bridge (${label}): ${join(profileDir, file)}`);
        ctx.log(formatProfile(summariseProfile(join(profileDir, file)), 20));
      }
    }
  });
  return bridge;
}

/**
 * The HubSpot sandbox in a process of its own, stopped with the scope: for the measures that time answers
 * from the load generator, whose event loop the sandbox's own work would otherwise hold (sandbox-process.ts).
 */
export async function sandboxProcessIn(
  ctx: BenchContext,
  scope: Scope,
  opts: FakeHubSpotOptions = {},
): Promise<Served> {
  return ownedChild(ctx, scope, await startSandboxProcess(opts));
}

export async function expressIn(
  ctx: BenchContext,
  scope: Scope,
  opts: { durable?: boolean } = {},
): Promise<Served> {
  return ownedChild(ctx, scope, await startExpressBaseline(opts));
}

/** A child process counted in the CPU-noise meter while it runs, and stopped with the scope. */
function ownedChild(ctx: BenchContext, scope: Scope, child: Served): Served {
  ctx.livePids.add(child.pid);
  scope.defer(async () => {
    await child.stop(2_000);
    ctx.livePids.delete(child.pid);
  });
  return child;
}
