/**
 * The HubSpot sandbox as a process of its own, for the measures that time answers from the load generator
 * (`sandboxProcessIn` in context.ts). In the generator's process, the sandbox's work (parsing and storing
 * each 100-cart batch the bridge sends) would hold the generator's event loop, so deliveries would leave
 * late and answers be read late, and the bridge would be charged for the bench's own HubSpot stand-in.
 * Run as `SANDBOX_OPTIONS=<json> node bench/sandbox-process.ts`; prints "listening <port>" when ready and
 * exits on SIGTERM.
 */
import type { FakeHubSpotOptions } from "../test/fakes/hubspot-server.ts";
import { startSandbox } from "./sandbox.ts";

const opts = JSON.parse(process.env["SANDBOX_OPTIONS"] ?? "{}") as FakeHubSpotOptions;
const sandbox = await startSandbox({ ...opts, recordRequests: false });
process.once("SIGTERM", () => {
  void sandbox.close().finally(() => process.exit(0));
});
process.stdout.write(`listening ${new URL(sandbox.url).port}\n`);
