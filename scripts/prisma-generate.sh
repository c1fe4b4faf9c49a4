#!/usr/bin/env bash
# Generates the Prisma client from prisma/schema.prisma into packages/db/src/generated/prisma.
# Prisma 7 needs no engine binary for the client (it talks through @prisma/adapter-pg); `prisma generate`
# only checks that PRISMA_SCHEMA_ENGINE_BINARY names a file, so it is pointed at the schema itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f prisma/schema.prisma ] || exit 0
[ -x node_modules/.bin/prisma ] || { echo "prisma-generate: prisma is not installed yet" >&2; exit 0; }
export PRISMA_SCHEMA_ENGINE_BINARY="${PRISMA_SCHEMA_ENGINE_BINARY:-$PWD/prisma/schema.prisma}"
export PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1
node_modules/.bin/prisma generate --schema prisma/schema.prisma >/dev/null

