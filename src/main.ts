import { loadConfig } from "./config.ts";
import { ConfigError, StoreSchemaError } from "./errors.ts";
import { createLogger } from "./logger.ts";
import { deadLetters, setupHubSpot, status } from "./cli.ts";
import { startService } from "./service.ts";

const USAGE = `usage: cartbridge <command>
  serve                          run the bridge (default)
  setup-hubspot                  create the unique cart key property in HubSpot when missing (or say how by hand)
  dead-letters list              list dead letters
  dead-letters replay <id>…|--all  map and commit dead letters again
  status                         pending carts, dead letters, and what HubSpot still needs set up`;

const EXIT_CONFIG = 78;

async function main(argv: readonly string[]): Promise<number> {
  const [command = "serve", ...args] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
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
    default:
      process.stderr.write(`cartbridge: unknown command ${command}\n${USAGE}\n`);
      return 64;
  }
}

async function serve(config: ReturnType<typeof loadConfig>): Promise<number> {
  const log = createLogger(config.logLevel);
  let service;
  try {
    service = await startService(config, log);
  } catch (error) {
    log.fatal({ err: error }, "cartbridge could not start");
    if (!(error instanceof StoreSchemaError)) return 1;
    process.stderr.write(`cartbridge: ${error.message}\n`);
    return EXIT_CONFIG;
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
