# Steward's image. Node 24 runs the TypeScript sources directly (type stripping), so there is no
# build step and no build output: the image holds src/ and the production dependencies.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY src ./src
USER 65532:65532
EXPOSE 8080
# --liftoff-only: V8 would otherwise recompile the SQL parser's WASM with its optimising tier at the
# first MaskedView, a transient ~550 MB (see docs/benchmarks.md); the baseline compiler is enough.
# --max-semi-space-size=1: a small young generation; 1,000 accesses then take 127 MB, not 189 MB.
ENTRYPOINT ["node", "--liftoff-only", "--max-semi-space-size=1", "src/main.ts"]
