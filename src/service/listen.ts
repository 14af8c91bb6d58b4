import { once } from "node:events";
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** The HTTP server with the bridge's timeouts, listening; `url` is where a local client reaches it. */
export async function listen(
  app: RequestListener,
  port: number,
  host: string,
): Promise<{ server: Server; url: string; port: number }> {
  // Shopify allows 5 s per delivery: a request (headers and body) slower than 10 s is not Shopify and is cut
  // off, checked every second, so trickled bodies cannot hold connections open.
  const server = createServer(
    {
      requestTimeout: 10_000,
      headersTimeout: 5_000,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 65_000,
    },
    app,
  );
  server.maxHeadersCount = 200;
  // A socket silent for 2 minutes (one that never sent a request, say) is closed.
  server.timeout = 120_000;
  server.listen(port, host);
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  const url = `http://${address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address}:${address.port}`;
  return { server, url, port: address.port };
}

/** Stops accepting, lets in-flight requests finish for up to 5 s, then cuts what is left. */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
  server.closeAllConnections();
}
