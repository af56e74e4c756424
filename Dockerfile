# syntax=docker/dockerfile:1
#
# One image for every adfleet worker; the container command picks the worker:
#   node workers/profile-sync/main.ts | workers/bulk-item/main.ts | workers/backfill-chunk/main.ts
# Node 24 runs the TypeScript sources directly (type stripping): there is no build step,
# so the build stage only resolves production dependencies.
#
# Pin the base by digest in CI (--build-arg NODE_IMAGE=node:24-slim@sha256:...) so a
# rebuild of the same commit gives the same image.
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Exactly the lockfile's production tree. No install scripts: no production dependency
# needs one to work, and none gets to run code at build time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# RDS certificates chain to the RDS CA, which is not in Node's bundle; trusting it lets
# DATABASE_URL use sslmode=verify-full.
ADD --chmod=444 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/rds-global-bundle.pem
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY contract ./contract
COPY shared ./shared
COPY domain ./domain
COPY workers ./workers
COPY cli ./cli
# Files stay owned by root and read-only to the process; it runs as the image's `node` user.
USER node
# The operator CLI by default; ECS sets the worker command per service.
CMD ["node", "cli/main.ts", "--help"]
