/**
 * Raw HTTP/1.1 over a TCP socket, for requests `fetch` will not send: duplicated or oversized headers, no
 * content type, chunked bodies, bytes trickled one at a time, connections that never send anything.
 */
import { connect, type Socket } from "node:net";

export interface RawAnswer {
  /** Status code, or undefined when the server closed the connection without answering. */
  readonly status: number | undefined;
  readonly head: string;
  readonly body: string;
  /** From the first byte written until the server closed the connection or answered. */
  readonly ms: number;
}

/** Builds a request's bytes; `headers` are written as given, in order, duplicates included. */
export function rawRequest(opts: {
  method?: string;
  path?: string;
  headers: ReadonlyArray<readonly [string, string]>;
  body?: Buffer;
  /** Send the body with Transfer-Encoding: chunked instead of Content-Length. */
  chunked?: boolean;
  /** Leave out Content-Length (the caller put its own in `headers`). */
  noContentLength?: boolean;
}): Buffer {
  const body = opts.body ?? Buffer.alloc(0);
  const lines = [
    `${opts.method ?? "POST"} ${opts.path ?? "/webhooks/shopify"} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Connection: close",
  ];
  for (const [name, value] of opts.headers) lines.push(`${name}: ${value}`);
  if (opts.chunked === true) lines.push("Transfer-Encoding: chunked");
  else if (opts.noContentLength !== true) lines.push(`Content-Length: ${body.length}`);
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  if (opts.chunked !== true) return Buffer.concat([head, body]);
  const parts: Buffer[] = [head];
  for (let at = 0; at < body.length; at += 65_536) {
    const piece = body.subarray(at, at + 65_536);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n"));
  }
  parts.push(Buffer.from("0\r\n\r\n"));
  return Buffer.concat(parts);
}

function parse(raw: Buffer, startedAt: number): RawAnswer {
  const text = raw.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  const head = end < 0 ? text : text.slice(0, end);
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  return {
    status: match ? Number(match[1]) : undefined,
    head,
    body: end < 0 ? "" : text.slice(end + 4),
    ms: Date.now() - startedAt,
  };
}

/**
 * Sends `bytes` — all at once, or the first `atOnce` bytes and then one byte every `trickleMs` — and reads
 * until the server closes the connection.
 */
export function sendRaw(
  port: number,
  bytes: Buffer,
  opts: { trickleMs?: number; atOnce?: number; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const startedAt = Date.now();
    let trickle: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer and no close within ${opts.timeoutMs ?? 30_000} ms`));
    }, opts.timeoutMs ?? 30_000);
    const finish = (): void => {
      clearTimeout(guard);
      if (trickle) clearInterval(trickle);
      resolve(parse(Buffer.concat(chunks), startedAt));
    };
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("close", finish);
    socket.on("error", () => undefined); // a reset is an answer too: the close handler reports it
    socket.once("connect", () => {
      if (opts.trickleMs === undefined) {
        socket.write(bytes);
        return;
      }
      let at = opts.atOnce ?? 0;
      if (at > 0) socket.write(bytes.subarray(0, at));
      trickle = setInterval(() => {
        if (at >= bytes.length || socket.destroyed) {
          if (trickle) clearInterval(trickle);
          return;
        }
        socket.write(bytes.subarray(at, at + 1));
        at++;
      }, opts.trickleMs);
    });
  });
}

/** Opens `count` TCP connections that never send a byte; resolves once all are connected. */
export async function openIdleConnections(
  port: number,
  count: number,
): Promise<{ sockets: Socket[]; destroy: () => void }> {
  const sockets: Socket[] = [];
  const opening: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    const socket = connect(port, "127.0.0.1");
    sockets.push(socket);
    socket.on("error", () => undefined);
    opening.push(
      new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("error", reject);
      }),
    );
  }
  try {
    await Promise.all(opening);
  } catch (error) {
    for (const s of sockets) s.destroy();
    throw error;
  }
  return {
    sockets,
    destroy() {
      for (const s of sockets) s.destroy();
    },
  };
}
