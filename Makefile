# Developer shortcuts; CI runs scripts/test.sh (the README's test command).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS ?= -buildvcs=false
export GOFLAGS

.PHONY: build run test test-quick test-race fuzz lint interop bench chaos soak

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/gregor ./cmd/gregor

run:
	go run ./cmd/gregor serve

test:
	bash scripts/test.sh

test-quick:
	QUICK=1 bash scripts/test.sh

test-race:
	go test -race -count=1 ./...

fuzz:
	bash scripts/fuzz.sh 2m

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...

interop:
	bash interop/run.sh

bench:
	go test -run '^$$' -bench . -benchmem ./internal/...

# The fault-injection safety suite (test/chaos, needs root): CI-sized, and
# the one-hour soak. Both end with the one-line `chaos: ...` summary; the
# report and timeline go to chaos-out/ (CHAOS_OUT). Extra suite flags go in
# CHAOS_ARGS, e.g. CHAOS_ARGS="-chaos.seed=4711 -chaos.nodes=5".
CHAOS_ARGS ?=
CHAOS_OUT ?= $(CURDIR)/chaos-out
export CHAOS_OUT
chaos:
	bash scripts/chaos.sh ci $(CHAOS_ARGS)

soak:
	bash scripts/chaos.sh soak $(CHAOS_ARGS)
