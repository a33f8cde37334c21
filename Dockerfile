# Steward's image. The build stage compiles src/ to dist/ (tsc: types erased, nothing bundled); the
# image holds dist/ and the production dependencies. Running compiled JavaScript rather than the
# TypeScript sources spares Node its type stripper: about 18 MB less resident memory per process
# (docs/benchmarks.md). The integration tests run the same dist/main.js with the same flags.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
USER 65532:65532
EXPOSE 8080
# --liftoff-only: V8 would otherwise recompile the SQL parser's WASM with its optimising tier at the
# first MaskedView, a transient ~550 MB (see docs/benchmarks.md); the baseline compiler is enough.
# --max-semi-space-size=1: a small young generation; 1,000 accesses then take 127 MB, not 189 MB.
# --heap-growing-percent=50: after a full collection the heap may grow by half before the next one,
# not by up to four times; converging 10,000 accesses then peaks at ~215 MB, not ~295 MB.
ENTRYPOINT ["node", "--liftoff-only", "--max-semi-space-size=1", "--heap-growing-percent=50", "dist/main.js"]
