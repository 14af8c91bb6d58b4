/**
 * The two modes. Quick (default) takes a few minutes on a 2-core machine; full runs every measure longer
 * and takes the memory measure through the SPEC's 200,000 deliveries.
 *
 *   npm run bench                      quick
 *   npm run bench -- --full            full
 *   npm run bench -- --only=ingest,sync   some measures (names below), run in the order listed there
 *   npm run bench -- --profile         also write a CPU profile of each bridge run (bench/out/profiles/) and
 *                                      print where its time went
 */
export const MEASURES = [
  "verify",
  "ingest",
  "postgres",
  "latency",
  "burst",
  "lines",
  "change",
  "sync",
  "memory",
  "reconcile",
] as const;
export type MeasureName = (typeof MEASURES)[number];

export interface Settings {
  readonly mode: "quick" | "full";
  readonly only: readonly MeasureName[];
  readonly profile: boolean;
  /** Connections for closed-loop load (ingest, burst, backlog, memory); open loops use up to this many too. */
  readonly connections: number;
  readonly bodyBytes: number;
  readonly warmupMs: number;
  readonly ingestRounds: number;
  readonly ingestRoundMs: number;
  /** PostgreSQL ingest: the measured run per configuration (1 replica, 2 replicas), after `warmupMs`. */
  readonly postgresRunMs: number;
  readonly fixedRatePerS: number;
  readonly fixedRateMs: number;
  readonly burstCarts: number;
  readonly changeRatePerS: number;
  readonly changeMs: number;
  /** Carts the "hot" change-latency run spreads its changes over (fewer than a batch: the interval decides). */
  readonly hotCarts: number;
  readonly flushIntervalMs: number;
  readonly syncBacklog: number;
  readonly syncWindowMs: number;
  readonly syncMaxRequestsPer10s: number;
  readonly memoryDeliveries: number;
  readonly verifyIterations: number;
}

const QUICK = {
  connections: 32,
  warmupMs: 2_000,
  ingestRounds: 4,
  ingestRoundMs: 3_000,
  postgresRunMs: 5_000,
  fixedRatePerS: 1_000,
  fixedRateMs: 10_000,
  burstCarts: 1_000,
  changeRatePerS: 500,
  changeMs: 10_000,
  hotCarts: 50,
  flushIntervalMs: 1_000,
  syncBacklog: 80_000,
  syncWindowMs: 20_000,
  syncMaxRequestsPer10s: 190,
  memoryDeliveries: 50_000,
  verifyIterations: 20_000,
};

const FULL: typeof QUICK = {
  ...QUICK,
  warmupMs: 3_000,
  ingestRounds: 6,
  ingestRoundMs: 8_000,
  postgresRunMs: 15_000,
  fixedRateMs: 30_000,
  changeMs: 30_000,
  syncBacklog: 125_000,
  syncWindowMs: 40_000,
  memoryDeliveries: 200_000,
  verifyIterations: 100_000,
};

export function parseSettings(argv: readonly string[], bodyBytes: number): Settings {
  const known = new Set(["--full", "--quick", "--profile"]);
  const onlyArg = argv.find((a) => a.startsWith("--only="));
  const unknown = argv.filter((a) => !known.has(a) && a !== onlyArg);
  if (unknown.length > 0)
    throw new Error(`unknown argument ${unknown.join(" ")} (use --full, --only=a,b, --profile)`);
  const named = (onlyArg?.slice("--only=".length).split(",") ?? [...MEASURES]).map((name) => {
    const m = MEASURES.find((x) => x === name.trim());
    if (m === undefined) throw new Error(`unknown measure ${name}; measures: ${MEASURES.join(", ")}`);
    return m;
  });
  // Always in MEASURES order, whatever the order asked: a later measure may use an earlier one's figures
  // (postgres shows its throughput against the Express baseline the ingest measure took).
  const only = MEASURES.filter((m) => named.includes(m));
  const full = argv.includes("--full");
  return {
    mode: full ? "full" : "quick",
    only,
    profile: argv.includes("--profile"),
    bodyBytes,
    ...(full ? FULL : QUICK),
  };
}
