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

type Print = (line: string) => void;
type Config = ReturnType<typeof loadConfig>;

/** Every command, by name: what it runs once the configuration is loaded. */
const COMMANDS: Readonly<
  Record<string, (config: Config, args: readonly string[], print: Print) => Promise<number>>
> = {
  serve: (config) => serve(config),
  "setup-hubspot": (config, _args, print) => setupHubSpot(config, print),
  "dead-letters": (config, args, print) => deadLetters(config, args, print),
  status: (config, _args, print) => status(config, print),
  reconcile: (config, args, print) => reconcileCommand(config, args, print),
};

async function main(argv: readonly string[]): Promise<number> {
  const [command = "serve", ...args] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // A mistyped command says so, before any complaint about the environment.
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (run === undefined) {
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
  return run(config, args, (line) => void process.stdout.write(`${line}\n`));
}

async function serve(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  let service;
  try {
    service = await startService(config, log);
  } catch (error) {
    log.fatal({ err: error }, "cartbridge could not start");
    // A known condition (the file held by another process, a newer schema) is also said in one line.
    if (error instanceof CartbridgeError) process.stderr.write(`cartbridge: ${error.message}\n`);
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
