# vmglue — build, run, test.
#   make run     vmglue serve on the embedded NATS default (127.0.0.1:4222)
#   make test    installs the test servers' Debian packages, runs every test
GO        ?= go
BIN       := bin
# The Puppet test stack lives here: the puppet user must reach it, so /tmp,
# not the checkout (whose parents may not be world-searchable). One per
# checkout, so that test runs of two checkouts never stop each other's stack.
TESTDIR   ?= /tmp/vmglue-test-$(shell printf %s '$(CURDIR)' | cksum | cut -d' ' -f1)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/vmglue/vmglue/internal/cli.Version=$(VERSION)
GOFLAGS_B := -trimpath -ldflags '$(LDFLAGS)'
FUZZTIME  ?= 10s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The shared sample corpus beside the checkout, when there is one: the corpus
# tests parse every real OpenNebula document in it.
VMGLUE_CORPUS ?= $(wildcard $(CURDIR)/../shared/corpus)
export VMGLUE_CORPUS

.PHONY: all build deb run sample-event sample-delete test test-deps test-go vet fmt-check fuzz bench bench-hook bench-dns bench-autosign bench-sweep bench-bridge bench-churn bench-verify bench-faults clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -o $(BIN)/vmglue ./cmd/vmglue
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -o $(BIN)/vmglue-hook ./cmd/vmglue-hook

# Debian packages vmglue and vmglue-hook in dist/ (DEB_ARCH="amd64 arm64"
# for both architectures); nfpm runs as a pinned Go module (scripts/deb.sh).
deb:
	VERSION=$(VERSION) GO=$(GO) scripts/deb.sh dist

# make run's embedded NATS address and data directory (the default of
# vmglue serve: /var/lib/vmglue as root, else ~/.local/state/vmglue); serve
# makes the role credentials in $(RUN_DATA)/credentials on its first start.
RUN_NATS  ?= 127.0.0.1:4222
RUN_DATA  ?= $(if $(filter 0,$(shell id -u)),/var/lib/vmglue,$(or $(XDG_STATE_HOME),$(HOME)/.local/state)/vmglue)

run: build
	$(BIN)/vmglue serve --nats-listen $(RUN_NATS) --data-dir $(RUN_DATA) $(ARGS)

# Fire a sample OpenNebula hook run (VM 42 RUNNING, then DONE) at make run's
# serve, as HEM would, with the hook's credential; watch it with:
# bin/vmglue tail --all (as the same user: it finds the ops credential)
SAMPLE_ENV := VMGLUE_CLOUD=one VMGLUE_NATS_URL=nats://$(RUN_NATS) VMGLUE_SPOOL_DIR=$(CURDIR)/.run/spool \
	VMGLUE_NATS_USER=hook VMGLUE_NATS_PASSWORD_FILE=$(RUN_DATA)/credentials/hook.password
sample-event: build
	@printf '%s running' "$$(base64 -w0 testdata/sample/vm-42-running.xml)" | $(SAMPLE_ENV) $(BIN)/vmglue-hook
sample-delete: build
	@printf '%s done' "$$(base64 -w0 testdata/sample/vm-42-done.xml)" | $(SAMPLE_ENV) $(BIN)/vmglue-hook

test-deps:
	scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) run $(STATICCHECK) ./...

# The Puppet JVMs and the OpenStack services take a minute or two to start:
# they start in the background first, while the rest builds and runs, and
# stop at the end whatever happens.
test: test-deps
	@mkdir -p $(TESTDIR)
	@scripts/puppet-stack.sh stop $(TESTDIR)/puppet >/dev/null 2>&1 || true
	@scripts/openstack-stack.sh stop $(TESTDIR)/openstack >/dev/null 2>&1 || true
	@echo "starting Puppet Server + PuppetDB in the background (log: $(TESTDIR)/puppet-start.log)"
	@setsid scripts/puppet-stack.sh start $(TESTDIR)/puppet > $(TESTDIR)/puppet-start.log 2>&1 < /dev/null &
	@setsid scripts/deb-chroot.sh > $(TESTDIR)/deb-chroot.log 2>&1 < /dev/null &
	@echo "starting OpenStack in the background (log: $(TESTDIR)/openstack-start.log)"
	@setsid scripts/openstack-stack.sh start $(TESTDIR)/openstack > $(TESTDIR)/openstack-start.log 2>&1 < /dev/null &
	@rc=0; \
	$(MAKE) --no-print-directory vet build || rc=$$?; \
	if [ $$rc -eq 0 ]; then \
	  VMGLUE_TEST_PUPPET=$(TESTDIR)/puppet VMGLUE_TEST_OPENSTACK=$(TESTDIR)/openstack \
	    $(GO) test -count=1 -timeout 30m ./... || rc=$$?; \
	fi; \
	scripts/puppet-stack.sh stop $(TESTDIR)/puppet >/dev/null 2>&1 || true; \
	scripts/openstack-stack.sh stop $(TESTDIR)/openstack >/dev/null 2>&1 || true; \
	exit $$rc

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The benches one after the other (bench-hook, bench-dns, bench-sweep, and
# bench-faults when the Makefile has it), each as its own target prints it,
# then one table of their figures (scripts/bench-table.sh). It fails if a
# bench failed; the table still shows what the others measured.
BENCHES := bench-hook bench-dns bench-sweep $(if $(shell grep -s '^bench-faults:' Makefile),bench-faults)
bench: build
	@log=$$(mktemp); \
	for t in $(BENCHES); do \
	  { $(MAKE) --no-print-directory $$t; echo "bench-exit $$t $$?"; } 2>&1 | tee -a $$log; \
	done; \
	scripts/bench-table.sh $$log; rc=$$?; rm -f $$log; exit $$rc

bench-hook: build
	scripts/bench-hook.sh

bench-dns: build
	@out=$$(mktemp); rc=$$(mktemp); \
	{ $(GO) test -run '^$$' -bench BenchmarkDNSBurst -benchtime 1x -timeout 30m ./bench/dns \
	    -args -vmglue $(CURDIR)/$(BIN)/vmglue -hook $(CURDIR)/$(BIN)/vmglue-hook $(BENCHARGS); echo $$? > $$rc; } 2>&1 | tee $$out; \
	grep '^vmglue .*, ratio ' $$out | tail -n 1; status=$$(cat $$rc); rm -f $$out $$rc; exit $$status

# 10,000 VMs created and deleted (embedded NATS, real HAProxy): heap and
# VMGLUE_VMS size printed after every sweep, flat.
bench-churn:
	$(GO) test -run '^$$' -bench BenchmarkChurn -benchtime 1x -timeout 20m ./bench/churn $(if $(BENCHARGS),-args $(BENCHARGS))

# One `vmglue autosign` lookup over 10,000 VM snapshots (embedded NATS).
bench-autosign:
	$(GO) test -run '^$$' -bench BenchmarkKVLookup -benchtime 20x ./internal/puppet

# One sweep of a generated pool of 10,000 VMs (the in-test oned, pages of
# 500) against 10,000 known snapshots: time, events published, memory.
bench-sweep:
	$(GO) test -run '^$$' -bench BenchmarkSweep -benchtime 1x -timeout 20m ./internal/sweep

# 200 converged VMs read back from a real BIND, as the periodic
# verification does: queries and milliseconds per VM.
bench-verify:
	$(GO) test -run '^$$' -bench BenchmarkVerify -benchtime 5x ./internal/dns

# Nova notifications per second through `vmglue bridge openstack` into
# JetStream, published onto a private RabbitMQ node as Nova's notifier does.
bench-bridge:
	$(GO) test -run '^$$' -bench BenchmarkBridge -benchtime 5000x -timeout 20m ./internal/bridge

# The fault suite full size (make test runs it small): a 3-node NATS
# cluster, two vmglue serve processes, BIND; 200 hook runs/s for 30 s while
# a NATS node is killed and restarted, a serve killed mid-burst, a serve
# paused past its lease, one against two serves on a burst of 2000 VMs.
# Ends with one table, one row per case, each starting with "fault ".
FAULTSARGS ?= -rate 200 -duration 30s -burst 2000
bench-faults: build
	@out=$$(mktemp); rc=$$(mktemp); \
	{ $(GO) test -count=1 -v -run '^TestFaults$$' -timeout 30m ./bench/faults \
	    -args -vmglue $(CURDIR)/$(BIN)/vmglue -hook $(CURDIR)/$(BIN)/vmglue-hook $(FAULTSARGS); echo $$? > $$rc; } 2>&1 | tee $$out; \
	echo; grep '^fault suite\|^fault ' $$out; status=$$(cat $$rc); rm -f $$out $$rc; exit $$status

clean:
	rm -rf $(BIN) dist $(TESTDIR)
