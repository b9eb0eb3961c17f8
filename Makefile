# zen-twilio: one verb per target (STYLE R15). `./...` does not work at a
# go.work root without a go.mod, so every target lists the modules.

MODULES := pkg services/ingester services/transformer services/forwarder cmd/zen
PKGS    := $(addsuffix /...,$(addprefix ./,$(MODULES)))
GO      ?= go
BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
TEST_TIMEOUT ?= 12m

.DEFAULT_GOAL := build

## build: compile the three services and the zen CLI into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ingester ./services/ingester/cmd/ingester
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/transformer ./services/transformer/cmd/transformer
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/forwarder ./services/forwarder/cmd/forwarder
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/zen ./cmd/zen
.PHONY: build

## tools: build bin/nats (natscli, pinned in tools/go.mod) and bin/nats-server
tools: $(BIN)/nats $(BIN)/nats-server
.PHONY: tools

$(BIN)/nats: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	cd tools && GOWORK=off $(GO) build -o $(BIN)/nats github.com/nats-io/natscli/nats

$(BIN)/nats-server: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	cd tools && GOWORK=off $(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

## test: gofmt and vet, every module's tests with the race detector, the manifests, then the short e2e run
test: fmt-check vet tools
	$(GO) test -race -shuffle=on -count=1 -timeout=$(TEST_TIMEOUT) $(PKGS)
	cd deploy && GOWORK=off ZEN_NATS_SERVER=$(BIN)/nats-server ZEN_NATS_CLI=$(BIN)/nats $(GO) test -race -count=1 -timeout=5m ./...
	ZEN_E2E_WEBHOOKS=1000 ZEN_E2E_RATE=100 $(GO) test -count=1 -timeout=10m ./e2e/...
.PHONY: test

## e2e: the fault-injection suite in full (5,000 webhooks, kills, NATS failover; E2E_RUNS=3 repeats it), then make hostile
E2E_RUNS ?= 1
e2e: tools
	@mkdir -p $(BIN)
	@for i in $$(seq 1 $(E2E_RUNS)); do \
		echo "== e2e run $$i of $(E2E_RUNS)"; \
		ZEN_E2E_WEBHOOKS=5000 ZEN_E2E_RATE=200 ZEN_E2E_REPORT=$(CURDIR)/bin/e2e-report-$$i.txt \
			$(GO) test -count=1 -timeout=20m -v -run TestNothingLostNothingTwice ./e2e/... > $(CURDIR)/bin/e2e-run-$$i.log 2>&1 \
			|| { tail -150 $(CURDIR)/bin/e2e-run-$$i.log; exit 1; }; \
		cat $(CURDIR)/bin/e2e-report-$$i.txt; \
	done
	@$(MAKE) --no-print-directory hostile
.PHONY: e2e

## vet: go vet over every module
vet:
	$(GO) vet $(PKGS) ./e2e/...
	$(GO) vet -tags soak ./e2e/
	$(GO) vet -tags hostile ./e2e/
	cd deploy && GOWORK=off $(GO) vet ./...
.PHONY: vet

## fmt-check: fail when gofmt would change a file
fmt-check:
	@out=$$(gofmt -l $(MODULES) e2e deploy tools); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
.PHONY: fmt-check

## lint: fmt-check and vet (the linters that need nothing beyond Go)
lint: fmt-check vet
.PHONY: lint

## bench: floor vs ingest vs end-to-end vs RSS in one run (writes bench/results.md), then the Go benchmarks
BENCH_REQUESTS ?= 40000
bench: build
	$(GO) run ./e2e/bench -requests $(BENCH_REQUESTS) -concurrency 64 -rate 1000 -seconds 10 -out bench/results.md
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/twiliosig ./pkg/transform ./services/ingester | tee -a bench/results.md.go-bench
	@{ echo; echo '## Go benchmarks'; echo; echo '```'; grep -E '^(Benchmark|goos|cpu)' bench/results.md.go-bench; echo '```'; } >> bench/results.md
	@rm -f bench/results.md.go-bench
.PHONY: bench

## hostile: the real ingester under 1,000 slow-body connections and a flood of 1 MiB unsigned forms while valid webhooks arrive at 50/s; valid >= 99% 200 with p99 <= 50 ms, RSS under the 256 MiB limit (HOSTILE_SECONDS, HOSTILE_SLOW, HOSTILE_FLOODERS, HOSTILE_RATE; report in bin/hostile-report.txt; not part of make test)
hostile: tools
	@mkdir -p $(BIN)
	ZEN_HOSTILE_REPORT=$(CURDIR)/bin/hostile-report.txt NATS_SERVER_BIN=$(BIN)/nats-server \
		$(GO) test -tags hostile -count=1 -timeout=10m -v -run TestHostileFlood ./e2e/ > $(CURDIR)/bin/hostile.log 2>&1 \
		|| { tail -60 $(CURDIR)/bin/hostile.log; exit 1; }
	cat $(CURDIR)/bin/hostile-report.txt
.PHONY: hostile

## soak: 30 minutes at 500 webhooks/s through two replicas of each stage and a nats-server process, horizons scaled to minutes; NATS RSS and store must level off (SOAK_MINUTES, SOAK_RATE; report in bin/soak-report.txt; not part of make test)
SOAK_MINUTES ?= 30
SOAK_RATE ?= 500
soak: tools
	ZEN_SOAK_MINUTES=$(SOAK_MINUTES) ZEN_SOAK_RATE=$(SOAK_RATE) ZEN_SOAK_REPORT=$(CURDIR)/bin/soak-report.txt NATS_SERVER_BIN=$(BIN)/nats-server \
		$(GO) test -tags soak -count=1 -timeout=$$(( $(SOAK_MINUTES) + 30 ))m -v -run TestSoak ./e2e/ > $(CURDIR)/bin/soak.log 2>&1 \
		|| { tail -80 $(CURDIR)/bin/soak.log; exit 1; }
	cat $(CURDIR)/bin/soak-report.txt
.PHONY: soak

## capacity: NATS memory and disk per dedupe key, duplicate-window entry and stored message, on a bin/nats-server process at 1M and 2M entries; appends the tables to bench/results.md (not part of make test)
CAPACITY_SIZES ?= 1000000,2000000
capacity: tools
	$(GO) run ./e2e/capacity -nats-server $(BIN)/nats-server -sizes $(CAPACITY_SIZES) -out bench/results.md
.PHONY: capacity

## goldens: rewrite goldens/twilio from fixtures/twilio (never the fixtures)
goldens:
	$(GO) test ./pkg/transform -run Golden -update
.PHONY: goldens

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./pkg/twiliosig -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/transform -run '^$$' -fuzz FuzzTransform -fuzztime $(FUZZTIME)
	$(GO) test ./services/ingester -run '^$$' -fuzz FuzzResolve -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/zen -run '^$$' -fuzz FuzzAppendJSON -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/natsconn -run '^$$' -fuzz FuzzPubAck -fuzztime $(FUZZTIME)
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/pack -run '^$$' -fuzz FuzzLoadPackage -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/pack -run '^$$' -fuzz FuzzLoadRules -fuzztime $(FUZZTIME)
.PHONY: fuzz

## run: the whole pipeline locally on an embedded NATS server (data in .zen/; ZEN_DEV_FLAGS are passed on), with bin/nats for the banner's commands
# exec: no shell between make and zen dev. --stop-with-parent: make passes
# SIGTERM on to zen dev but not a SIGINT sent to make alone (Ctrl-C reaches
# both), so zen dev watches for it.
ZEN_DEV_FLAGS ?=
run: $(BIN)/nats
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/zen ./cmd/zen
	@exec $(BIN)/zen dev --stop-with-parent $(ZEN_DEV_FLAGS)
.PHONY: run

## images: container images $(IMAGE_PREFIX)/<name>:$(VERSION), one multi-stage Dockerfile each (needs Docker)
IMAGE_PREFIX ?= zen-twilio
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_ARGS := --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION)
images:
	@command -v docker >/dev/null || { echo "make images needs docker (not installed here)"; exit 1; }
	docker build -f services/ingester/Dockerfile    $(IMAGE_ARGS) -t $(IMAGE_PREFIX)/ingester:$(VERSION) .
	docker build -f services/transformer/Dockerfile $(IMAGE_ARGS) -t $(IMAGE_PREFIX)/transformer:$(VERSION) .
	docker build -f services/forwarder/Dockerfile   $(IMAGE_ARGS) -t $(IMAGE_PREFIX)/forwarder:$(VERSION) .
	docker build -f cmd/zen/Dockerfile              $(IMAGE_ARGS) -t $(IMAGE_PREFIX)/zen:$(VERSION) .
.PHONY: images

## k8s: render both overlays with kubectl (the tests render them with kustomize's Go API)
k8s:
	kubectl kustomize deploy/k8s/overlays/dev > /dev/null && kubectl kustomize deploy/k8s/overlays/prod > /dev/null && echo "overlays render"
.PHONY: k8s

## deploy-sync-package: refresh the package copy the ConfigMap zen-package is generated from
deploy-sync-package:
	cp packages/transforms/twilio/v1/*.yaml deploy/k8s/base/package/
.PHONY: deploy-sync-package

## clean: remove build output (not .zen/ data)
clean:
	rm -rf $(BIN)
.PHONY: clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'
.PHONY: help
