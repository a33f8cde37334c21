# Steward: the two commands a newcomer needs are `make demo` and `make test`.
# npm scripts put node_modules/.bin first on PATH, so the pinned Node 24 runs everything.
SHELL := /bin/bash
NPM_BIN := $(CURDIR)/node_modules/.bin
export PATH := $(NPM_BIN):$(PATH)
STACK := test/stack/stack.sh
WITH_STACK := set -a; . .stack/env.sh; set +a;

.PHONY: deps stack stack-down test test-unit test-integration typecheck build lint format crds demo kind-demo run install bench clean

deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

stack: deps
	bash $(STACK) up

stack-down:
	bash $(STACK) down

typecheck: deps
	tsc --noEmit -p .

# dist/: src/ compiled as the image has it (the integration tests' setup builds it too).
build: deps
	tsc -p tsconfig.build.json

# Biome: the formatter's layout and the linter's rules (biome.jsonc); `make format` rewrites the layout.
lint: deps
	biome ci --error-on-warnings .

format: deps
	biome format --write .

crds: deps
	node src/api/generate.ts

# Unit tests need nothing running; integration tests use the local stack, started if needed and
# stopped afterwards when this target started it.
test: deps typecheck lint
	@started=0; if ! bash $(STACK) status 2>/dev/null | grep -q 'kube-apiserver: running'; then bash $(STACK) up && started=1; fi; \
	bash $(STACK) stop-demo; $(WITH_STACK) vitest run --project unit --project integration; status=$$?; \
	$(WITH_STACK) vitest run --project demo || status=1; \
	if [ $$started = 1 ]; then bash $(STACK) down; fi; exit $$status

test-unit: deps
	vitest run --project unit

test-integration: stack
	bash $(STACK) stop-demo; $(WITH_STACK) vitest run --project integration

demo: stack
	$(WITH_STACK) node test/demo/demo.ts

# Steward on a kind cluster (needs Docker, kind and helm): deploy/kind/demo.sh. Not run by make test.
kind-demo: deps
	bash deploy/kind/demo.sh

run: deps
	node --liftoff-only --max-semi-space-size=1 --heap-growing-percent=50 src/main.ts --leader-elect=false

install: deps
	kubectl apply --server-side -k crds/

bench: stack
	$(WITH_STACK) node bench/run.ts

clean: stack-down
	rm -rf .stack dist
