# sitectl — run `make help` for the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/sitectl
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Lab tests share one lab per run; packages run one at a time (-p 1) because they
# share it. Unit tests of every package run first, in parallel.
LAB_PKGS ?= ./...
TEST_TIMEOUT ?= 40m

.PHONY: help deps build unit test lint bench demo fuzz clean golden

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

deps: ## install missing packages and Go modules (root on Debian)
	@./hack/install-deps.sh

build: ## build bin/sitectl
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sitectl

unit: ## fast tests only (no lab, no daemons): go test -short
	$(GO) test -short ./...

test: deps build ## install what is missing, then run every test including the lab tests
	$(GO) vet ./...
	$(GO) test -short -count=1 ./...
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) -run 'TestLab|Fuzz' $(LAB_PKGS)

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOLANGCI_LINT ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

lint: ## gofmt, go vet, staticcheck, golangci-lint (pinned, from the module proxy); fails on any finding
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(GOLANGCI_LINT) run ./...
	$(GO) run ./hack/shape

bench: build ## benchmarks (config loading; lab figures need root)
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ## run the config loader fuzzer for 60s, the --set and saved-plan fuzzers for 30s each
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 60s ./sites
	$(GO) test -run '^$$' -fuzz FuzzSet -fuzztime 30s ./sites
	$(GO) test -run '^$$' -fuzz FuzzReadPlan -fuzztime 30s ./cmd/sitectl

golden: ## refresh golden files
	$(GO) test -short -count=1 $$(./hack/golden-pkgs.sh) -update

demo: deps build ## install, build, bring up the lab, deploy every site, run a drill
	./$(BIN) lab up
	./$(BIN) deploy --all
	./$(BIN) status --all
	./$(BIN) drill partition --site douala --duration 20s --writes 200 --report drill.html

clean: ## remove build output
	rm -rf bin
