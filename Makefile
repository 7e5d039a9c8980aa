# imapctl — build, test, benchmark, lint.
GO      ?= go
BIN     ?= imapctl
PKGS    ?= ./...
# Stamp the VCS revision into the binary (shown by --version).
BUILDFLAGS ?= -trimpath -buildvcs=auto

.PHONY: all build test test-short race bench fuzz lint fmt vet run clean

all: build

build:
	$(GO) build $(BUILDFLAGS) -o $(BIN) ./cmd/imapctl

## test: the whole suite, with the race detector (what CI runs)
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: quick unit tests only
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: Go benchmarks (figures go to docs/performance.md)
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 -timeout 30m $(PKGS)

## fuzz: run every fuzz target briefly (FUZZTIME=30s by default)
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet $(PKGS)

## lint: gofmt check + go vet (+ golangci-lint when installed)
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@lint=$$(command -v golangci-lint || echo "$$($(GO) env GOPATH)/bin/golangci-lint"); \
	if [ -x "$$lint" ]; then "$$lint" run --max-issues-per-linter=0 --max-same-issues=0 ./...; \
	else echo "golangci-lint not installed: go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0"; fi

## run: the server on its zero-config defaults
run:
	$(GO) run ./cmd/imapctl serve

clean:
	rm -f $(BIN)
