# syntax=docker/dockerfile:1
# One image for every role: `tally start` (all-in-one, the default), `tally ingest`,
# `tally process`, `tally query`, and admin commands (`tally migrate`, `tally keys ...`).
#   docker build -t tally .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgresql://... tally ingest

ARG NODE_IMAGE=node:24-slim

# Production dependencies only; the TypeScript sources run as they are (Node 24 strips types).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    TALLY_HOST=0.0.0.0 \
    TALLY_DATA_DIR=/var/lib/tally
WORKDIR /app
# Application files stay owned by root: the process (user `node`) cannot modify its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
# The only writable path: the embedded PostgreSQL of `tally start` (unused by the split roles).
RUN mkdir -p /var/lib/tally && chown node:node /var/lib/tally
USER node
# ingest / start: SERVER_PORT; query: TALLY_QUERY_PORT + TALLY_GRPC_PORT; process: METRICS_PORT
EXPOSE 8080 8081 9090 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "src/cli/healthcheck.ts"]
STOPSIGNAL SIGTERM
# V8 flags: src/cli/v8-flags.ts.
ENTRYPOINT ["node", "--max-semi-space-size=32", "--heap-growing-percent=50", "bin/tally.js"]
CMD ["start"]
