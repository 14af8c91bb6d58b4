/**
 * What the operator console costs the bridge: time per refresh with 100 shops and 10,000 dead letters.
 *
 *   node bench/console.ts                       SQLite (a temp file)
 *   node bench/console.ts postgres://…          PostgreSQL (a fresh schema, dropped afterwards)
 *
 * Fills a store with 100 shops' deliveries spread over the last day (one per shop per 10-minute bucket:
 * 14,400 carts, all pending — the worst case for the per-shop pending read) and 10,000 dead letters, then
 * runs the bridge on it and times, over real HTTP, what one page refresh asks for: the overview, the first
 * page of dead letters (newest first, with the total), and the same filtered by shop and reason.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { startService } from "../src/service.ts";
import { openStore } from "../src/store/open.ts";
import type { IngestItem } from "../src/store/store.ts";
import { mapDelivery } from "../src/sync/mapping.ts";
import { startFakeHubSpot } from "../test/fakes/hubspot-server.ts";

const SHOPS = 100;
const DEAD_LETTERS = 10_000;
const ROUNDS = 40;
const TOKEN = "bench-admin";

function item(shop: string, topic: string, body: string, receivedAtMs: number): IngestItem {
  const webhookId = randomUUID();
  const buf = Buffer.from(body);
  return {
    webhookId,
    topic,
    shopDomain: shop,
    receivedAtMs,
    headers: { "x-shopify-topic": topic },
    body: buf,
    mapped: mapDelivery({
      topic,
      shopDomain: shop,
      body: buf,
      webhookId,
      triggeredAt: undefined,
      receivedAtMs,
    }),
  };
}

async function databaseUrl(arg: string | undefined): Promise<{ url: string; cleanup: () => Promise<void> }> {
  if (arg === undefined || !arg.startsWith("postgres")) {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-console-bench-"));
    return {
      url: `sqlite:${join(dir, "bench.db")}`,
      cleanup: () => {
        if (process.env["KEEP"] === undefined) rmSync(dir, { recursive: true });
        else console.log(`kept ${dir}`);
        return Promise.resolve();
      },
    };
  }
  const schema = `console_bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: arg });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const sep = arg.includes("?") ? "&" : "?";
  return {
    url: `${arg}${sep}options=-c%20search_path%3D${schema}`,
    cleanup: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

async function fill(url: string, nowMs: number): Promise<void> {
  const store = await openStore(url, { server: false });
  const batch: IngestItem[] = [];
  const flush = async () => {
    if (batch.length > 0) await store.ingestBatch(batch.splice(0));
  };
  for (let s = 0; s < SHOPS; s++) {
    const shop = `shop-${String(s).padStart(3, "0")}.myshopify.com`;
    for (let b = 0; b < 144; b++) {
      const at = nowMs - b * 600_000;
      const token = `cart-${s}-${b}`;
      const body = JSON.stringify({
        token,
        updated_at: new Date(at).toISOString(),
        line_items: [{ title: "Sock", quantity: 1, line_price: "10.00" }],
      });
      batch.push(item(shop, "carts/update", body, at));
      if (batch.length >= 500) await flush();
    }
  }
  for (let i = 0; i < DEAD_LETTERS; i++) {
    const shop = `shop-${String(i % SHOPS).padStart(3, "0")}.myshopify.com`;
    batch.push(
      item(shop, "checkouts/update", `{"token": "broken-${i}", "total_price": {}}`, nowMs - i * 1000),
    );
    if (batch.length >= 500) await flush();
  }
  await flush();
  await store.close();
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

const target = await databaseUrl(process.argv[2]);
const hubspot = await startFakeHubSpot({ recordRequests: false });
try {
  const started = Date.now();
  await fill(target.url, started);
  console.log(`filled ${target.url.split(":")[0]} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const config = loadConfig({
    SHOPIFY_WEBHOOK_SECRETS: "bench-secret",
    HUBSPOT_ACCESS_TOKEN: "test-token",
    HUBSPOT_BASE_URL: hubspot.url,
    DATABASE_URL: target.url,
    PORT: "0",
    ADMIN_TOKEN: TOKEN,
    // The sender stays out of the way: a long interval, so the 14,400 carts stay pending while we measure.
    FLUSH_INTERVAL_MS: "3600000",
    LOG_LEVEL: "warn",
  });
  const service = await startService(config, createLogger("warn"), { host: "127.0.0.1" });
  try {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const paths = {
      overview: "/admin/overview",
      "dead letters, newest 100 + total": "/admin/dead-letters?order=newest&limit=100",
      "dead letters by shop + reason":
        "/admin/dead-letters?order=newest&limit=100&shop=shop-042.myshopify.com&reason=price",
    };
    const rows: Array<Record<string, string>> = [];
    for (const [name, path] of Object.entries(paths)) {
      const times: number[] = [];
      let bytes = 0;
      for (let i = 0; i < ROUNDS + 3; i++) {
        const t0 = process.hrtime.bigint();
        const res = await fetch(`${service.url}${path}`, { headers: auth });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text}`);
        if (i >= 3) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        bytes = text.length;
      }
      times.sort((a, b) => a - b);
      rows.push({
        request: name,
        "median ms": quantile(times, 0.5).toFixed(1),
        "p95 ms": quantile(times, 0.95).toFixed(1),
        "answer kB": (bytes / 1024).toFixed(1),
      });
    }
    console.log(
      `${SHOPS} shops, ${DEAD_LETTERS} dead letters, ${SHOPS * 144} pending carts, ${ROUNDS} rounds each:`,
    );
    console.table(rows);
  } finally {
    await service.stop({ drainMs: 0 });
  }
} finally {
  await hubspot.close();
  await target.cleanup();
}
