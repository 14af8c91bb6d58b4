/**
 * The framework's ceiling: a bare Express 5 server that reads the webhook body (express.raw, the same
 * parser and limit the bridge uses) and answers 200 — no verification, no store. Run as its own process
 * by the benchmark: `PORT=<port> node bench/baseline-express.ts`; prints "listening <port>" when ready and
 * exits on SIGTERM.
 *
 * With `DURABLE_DIR` set it is the disk's floor instead: each body goes into the bridge's own inbox of raw
 * deliveries (store/inbox-file.ts) in that directory and the answer waits for its synced write (one O_DSYNC
 * write on Linux) — the least a durable answer costs on this machine, with nothing else (no HMAC, no
 * mapping, no store, no sender).
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { openInbox } from "../src/store/inbox-file.ts";

const app = express();
app.disable("x-powered-by");
app.set("etag", false);
const durableDir = process.env["DURABLE_DIR"];
const inbox = durableDir === undefined ? undefined : (await openInbox(durableDir, undefined)).inbox;
app.post("/webhooks/shopify", express.raw({ type: () => true, limit: 2_097_152 }), (req, res) => {
  if (inbox === undefined) {
    res.status(200).json({ outcome: "applied" });
    return;
  }
  const body = req.body as Buffer;
  inbox
    .append({
      webhookId: undefined,
      topic: "t",
      shopDomain: "s",
      receivedAtMs: Date.now(),
      headers: {},
      body,
    })
    .then(
      () => res.status(200).json({ outcome: "accepted" }),
      () => res.status(503).json({ error: "not stored" }),
    );
});

const server = createServer({ keepAliveTimeout: 65_000 }, app);
server.listen(Number(process.env["PORT"] ?? 0), "127.0.0.1");
await once(server, "listening");
process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);

process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
