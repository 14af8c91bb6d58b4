import { pino, type Logger } from "pino";

/** JSON logs to stdout; secrets and personal data are redacted wherever they might be attached. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "cartbridge" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          'headers["x-shopify-hmac-sha256"]',
          'headers["shopify-hmac-sha256"]',
          "email",
          "*.email",
          "phone",
          "*.phone",
          "token",
          "accessToken",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
