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
# report and timeline go to chaos-out/.
CHAOS_ARGS ?=
CHAOS_OUT ?= $(CURDIR)/chaos-out
chaos:
	@rm -f $(CHAOS_OUT)/summary.txt
	@go test -count=1 -timeout 40m -v -run '^TestChaos$$' ./test/chaos -args -chaos.profile=ci -chaos.out=$(CHAOS_OUT) $(CHAOS_ARGS); \
	status=$$?; cat $(CHAOS_OUT)/summary.txt 2>/dev/null || echo "chaos: no summary (the run did not finish)"; exit $$status

soak:
	@rm -f $(CHAOS_OUT)/soak/summary.txt
	@go test -count=1 -timeout 120m -v -run '^TestChaos$$' ./test/chaos -args -chaos.profile=soak -chaos.out=$(CHAOS_OUT)/soak $(CHAOS_ARGS); \
	status=$$?; cat $(CHAOS_OUT)/soak/summary.txt 2>/dev/null || echo "chaos: no summary (the run did not finish)"; exit $$status
