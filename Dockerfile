# syntax=docker/dockerfile:1
# One image for every lakeferry process: `lakeferry worker`, `lakeferry discoverer`, `lakeferry api`,
# `lakeferry migrate`, … Three stages:
#   build  – every dependency (dev ones included), the Prisma client generated and the CLI bundled into
#            apps/cli/dist by scripts/build.js (npm ci's postinstall runs both);
#   deps   – production dependencies only, installed from the lock file without install scripts (none of
#            ours needs one: package.json's allowScripts turns them all off);
#   runtime – deps' node_modules, the sources (the bundle reads the .proto files and SQL migrations next to
#            them at run time), the build's dist/ and generated client; no dev dependency, no tsx: the
#            entrypoint runs the built JavaScript itself rather than through the launcher, whose fallback
#            compiles the sources with tsx.
# Node 20 (package.json engines); pin a patch release with --build-arg NODE_VERSION=20.x.y.
ARG NODE_VERSION=20
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
COPY . .
RUN npm ci --include=dev --no-audit

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
# Only the manifests: this layer is rebuilt when a dependency changes, not when a source file does.
COPY package.json package-lock.json .npmrc ./
COPY packages/app-kit/package.json packages/app-kit/
COPY packages/core/package.json packages/core/
COPY packages/db/package.json packages/db/
COPY packages/fault-proxy/package.json packages/fault-proxy/
COPY packages/iceberg/package.json packages/iceberg/
COPY packages/metrics/package.json packages/metrics/
COPY packages/pipeline/package.json packages/pipeline/
COPY packages/queue/package.json packages/queue/
COPY packages/spark-connect/package.json packages/spark-connect/
COPY packages/storage/package.json packages/storage/
COPY apps/api/package.json apps/api/
COPY apps/cli/package.json apps/cli/
COPY apps/discoverer/package.json apps/discoverer/
COPY apps/worker/package.json apps/worker/
RUN npm ci --omit=dev --ignore-scripts --no-audit && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production NPM_CONFIG_UPDATE_NOTIFIER=false
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/prisma prisma
COPY --from=build /app/packages packages
COPY --from=build /app/apps apps
COPY docker/healthcheck.js /usr/local/lib/lakeferry/healthcheck.js
# The node image's unprivileged user `node`, by number so that Kubernetes' runAsNonRoot can verify it; the
# files stay root's, so the process cannot rewrite its own code.
USER 1000:1000
# The API's /healthz, or a worker's or discoverer's metrics /healthz when LAKEFERRY_METRICS_PORT is set;
# one-shot commands (migrate, apply, …) pass without a request.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/usr/local/lib/lakeferry/healthcheck.js"]
ENTRYPOINT ["node", "--enable-source-maps", "apps/cli/dist/main.js"]
CMD ["--help"]
