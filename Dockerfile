# One image for every lakeferry process: `lakeferry worker`, `lakeferry discoverer`, `lakeferry migrate`, …
# TypeScript runs directly through tsx; there is no build step.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production NPM_CONFIG_UPDATE_NOTIFIER=false
COPY package.json package-lock.json .npmrc ./
COPY scripts/prisma-generate.sh scripts/
COPY prisma prisma
COPY packages packages
COPY apps apps
RUN npm ci --include=dev && npm cache clean --force
USER node
ENTRYPOINT ["node", "apps/cli/bin/lakeferry.js"]
CMD ["--help"]
