# cartbridge: Shopify webhooks → HubSpot carts. Node 24 runs the TypeScript sources directly (type stripping),
# so there is no build step: one stage installs the production dependencies, the other is what runs.
#
#   docker build -t cartbridge .
#   docker run --env-file .env -p 3000:3000 -v cartbridge-data:/data cartbridge
#   docker exec <container> cartbridge status
#
# Nothing secret is baked in: configuration comes from the environment at run time (see .env.example).

# ---- dependencies: production only, from the lockfile -----------------------------------------------------
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund

# ---- runtime ---------------------------------------------------------------------------------------------
FROM node:24-slim
# MALLOC_ARENA_MAX=2: the V8, libuv and checkpoint threads share one glibc arena instead of one each (bench/results.md).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    PORT=3000 \
    DATABASE_URL=sqlite:/data/cartbridge.db
WORKDIR /app
# Code and dependencies belong to root and are read-only for the unprivileged `node` user that runs them.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
# /data is the store's directory (the SQLite file and its WAL), the only place the app writes. /app/data points
# at it too, so the app's relative default (sqlite:data/cartbridge.db, e.g. from a copied .env.example) also
# lands on the volume. `cartbridge <command>` is on PATH for `docker exec`.
RUN mkdir -p /data \
 && chown node:node /data \
 && ln -s /data /app/data \
 && ln -s /app/bin/cartbridge.js /usr/local/bin/cartbridge
VOLUME ["/data"]
USER node
EXPOSE 3000
# /healthz answers 200 while the process is alive; readiness (store, HubSpot setup) is /readyz, for a load
# balancer. The slim image has no curl, so node itself makes the request.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 itself (no npm, no shell in between), so `docker stop`'s SIGTERM reaches the bridge: it stops
# accepting, finishes in-flight requests, sends what is pending (up to ~15 s in all) and exits 0. Give it a
# stop grace period of 30 s (docker stop -t 30, compose stop_grace_period) rather than Docker's default 10 s.
# A 16 MB young generation (V8 otherwise grows it to 64-128 MB) and a full GC once the old generation has grown
# by half (V8's own factor lets promoted garbage pile up) keep peak RSS under 200 MB through 200,000 deliveries
# at full load; bench/results.md has the numbers. Neither caps the heap. One V8 helper thread instead of four
# keeps garbage collection from taking both of a small machine's cores from the event loop at once.
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "--v8-pool-size=1", "src/main.ts"]
CMD ["serve"]
