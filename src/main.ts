import { loadConfig } from "./config.ts";
import { CartbridgeError, ConfigError, StoreSchemaError } from "./errors.ts";
import { createLogger } from "./logger.ts";
import { deadLetters, setupHubSpot, status } from "./cli.ts";
import { reconcileCommand } from "./cli-reconcile.ts";
import { startService } from "./service.ts";

const USAGE = `usage: cartbridge <command>
  serve                          run the bridge (default)
  setup-hubspot                  create the unique cart key property in HubSpot when missing (or say how by hand)
  dead-letters list              list dead letters
  dead-letters replay <id>…|--all  map and commit dead letters again
  status                         pending carts, dead letters, and what HubSpot still needs set up
  reconcile [--shop D] [--since 30d|ISO]  one reconciliation pass now (a backfill)`;

const EXIT_CONFIG = 78;
const EXIT_USAGE = 64;
const COMMANDS = new Set(["serve", "setup-hubspot", "dead-letters", "status", "reconcile"]);

async function main(argv: readonly string[]): Promise<number> {
  const [command = "serve", ...args] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // A mistyped command says so, before any complaint about the environment.
  if (!COMMANDS.has(command)) {
    process.stderr.write(`cartbridge: unknown command ${command}\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`cartbridge: ${error.message}\n`);
      return EXIT_CONFIG;
    }
    throw error;
  }
  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  switch (command) {
    case "serve":
      return serve(config);
    case "setup-hubspot":
      return setupHubSpot(config, print);
    case "dead-letters":
      return deadLetters(config, args, print);
    case "status":
      return status(config, print);
    case "reconcile":
      return reconcileCommand(config, args, print);
    default:
      process.stderr.write(`cartbridge: unknown command ${command}\n${USAGE}\n`);
      return EXIT_USAGE;
  }
}

async function serve(config: ReturnType<typeof loadConfig>): Promise<number> {
  const log = createLogger(config.logLevel);
  let service;
  try {
    service = await startService(config, log);
  } catch (error) {
    // A known condition (the file held by another process, a newer schema) is said in one line; a bug keeps
    // its stack.
    if (error instanceof CartbridgeError) {
      log.fatal({ code: error.code, reason: error.message }, "cartbridge could not start");
      process.stderr.write(`cartbridge: ${error.message}\n`);
    } else {
      log.fatal({ err: error }, "cartbridge could not start");
    }
    return error instanceof StoreSchemaError ? EXIT_CONFIG : 1;
  }
  const running = service;
  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) return;
      signalled = true;
      log.info({ signal }, "shutdown requested");
      running.stop({ drainMs: 10_000 }).then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ err: error }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`cartbridge: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof StoreSchemaError ? EXIT_CONFIG : 1);
  },
);
