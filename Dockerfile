# syntax=docker/dockerfile:1
#
# Foreman container image. See docs/deploy/README.md.
#
# Node 24 runs the TypeScript sources directly (type stripping), so there is no
# build step: the image is the production dependencies plus src/ and migrations/.
# The `node` package the project pins for development is a dev dependency; the
# image uses the base image's Node 24 instead.
#
# The image expects DATABASE_URL (and, for FOREMAN_ROLE=api|all,
# FOREMAN_PASSWORD_PEPPER and FOREMAN_JWT_KEYS). The embedded PostgreSQL is for
# development: without DATABASE_URL it would need a writable FOREMAN_EMBEDDED_PG_DIR.

# ---- build stage: production node_modules ---------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# ---- runtime stage ----------------------------------------------------------
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080
WORKDIR /app

# A dedicated user with a fixed numeric uid/gid, so Kubernetes can check
# runAsNonRoot and the manifests can name the same uid (docs/deploy/*.yaml).
RUN groupadd --system --gid 10001 foreman \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin foreman

# Owned by root and read-only to the service user: nothing is written under /app
# when DATABASE_URL is set, so the root filesystem can be mounted read-only.
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY migrations ./migrations
COPY src ./src

USER 10001:10001
EXPOSE 8080

# Liveness only (/healthz does not touch the database). Slim images have no curl,
# so the check uses Node's fetch.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# SIGTERM starts the shutdown sequence in docs/operations.md#shutdown.
STOPSIGNAL SIGTERM
CMD ["node", "src/main.ts"]
