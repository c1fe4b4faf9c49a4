# One image for every lakeferry process: `lakeferry worker`, `lakeferry discoverer`, `lakeferry migrate`, …
# `npm ci` generates the Prisma client and builds the CLI into apps/cli/dist (its postinstall runs
# scripts/prisma-generate.sh, then scripts/build.js); the entrypoint, the `lakeferry` launcher, then runs
# that built JavaScript instead of compiling the TypeScript through tsx at every start. The sources stay in
# the image: the build reads the .proto files and the SQL migrations next to them. Dev dependencies are
# pruned after the build (tsx stays, a dependency of the CLI for the launcher's fallback to the sources).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production NPM_CONFIG_UPDATE_NOTIFIER=false
COPY package.json package-lock.json .npmrc ./
COPY scripts/prisma-generate.sh scripts/build.js scripts/
COPY prisma prisma
COPY packages packages
COPY apps apps
RUN npm ci --include=dev && npm prune --omit=dev && npm cache clean --force
USER node
ENTRYPOINT ["node", "apps/cli/bin/lakeferry.js"]
CMD ["--help"]
