/**
 * The framework's ceiling: a bare Express 5 server that reads the webhook body (express.raw, the same
 * parser and limit the bridge uses) and answers 200 — no verification, no store. Run as its own process
 * by the benchmark: `PORT=<port> node bench/baseline-express.ts`; prints "listening <port>" when ready and
 * exits on SIGTERM.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";

const app = express();
app.disable("x-powered-by");
app.set("etag", false);
app.post("/webhooks/shopify", express.raw({ type: () => true, limit: 2_097_152 }), (_req, res) => {
  res.status(200).json({ outcome: "applied" });
});

const server = createServer({ keepAliveTimeout: 65_000 }, app);
server.listen(Number(process.env["PORT"] ?? 0), "127.0.0.1");
await once(server, "listening");
process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);

process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
