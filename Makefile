# vipfarm: two commands do everything on a fresh Debian machine with only the Swift toolchain.
#   make test   installs what the project needs, builds, and runs the whole test suite
#   make demo   installs, builds (release) and runs the main job
# Privileged tests (network namespaces, TAP devices) need root, as CI has.

SWIFT ?= swift
# Debian packages: the C libraries (found by pkg-config) and the tools the testbed and benchmarks use.
DEB_PACKAGES := pkg-config libpcap-dev libnl-3-dev libnl-route-3-dev liburing-dev iproute2 nftables keepalived ethtool nginx-light iperf3 wrk python3 systemd binutils linux-perf
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup build release test demo bench bench-hash clean install deb deb-check

## setup: install the missing Debian packages (apt-get update, then apt-get install -y)
setup:
	@missing=""; \
	for package in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# One test at a time: the privileged suites each build a farm (namespaces, three lbnodes, engines, applications);
# side by side on a 2-core machine they starve each other's heartbeats, which tests the machine, not vipfarm.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --no-parallel

## install: the binaries, the systemd unit vipfarm@.service, /etc/vipfarm/example.yaml, man pages and completions
## (PREFIX=/usr/local, UNITDIR=/etc/systemd/system; DESTDIR stages them elsewhere)
PREFIX ?= /usr/local
UNITDIR ?= /etc/systemd/system
install: release
	$(SWIFT) build -c release --product generate-manual
	rm -rf .build/manual && mkdir -p .build/manual
	for binary in lbnode lbbench; do .build/release/generate-manual .build/release/$$binary --output-directory .build/manual --multi-page; done
	$(SUDO) scripts/install.sh --destdir "$(DESTDIR)" --prefix $(PREFIX) --unitdir $(UNITDIR) --build .build/release --manual .build/manual

## deb: a Debian package in .build-deb/ (dpkg-deb; the Swift runtime linked in)
deb: setup
	scripts/build-deb.sh

## deb-check: build the package, install it, verify its unit, remove it (needs root; CI runs it)
deb-check: setup
	$(SUDO) env PATH="$$PATH" scripts/check-deb.sh

## demo: the main job: a farm on a virtual network, balancing, a server failing and coming back (needs root).
demo: release
	$(SUDO) .build/release/lbbench demo

bench-hash: release
	.build/release/lbbench hash --json

## chaos: hostile and abnormal conditions on testbed farms, both delivery modes (needs root, ~20 min)
chaos: release
	$(SUDO) .build/release/lbbench chaos --delivery flood --report bench/results/$(shell date +%Y-%m-%d)
	$(SUDO) .build/release/lbbench chaos --delivery directed --report bench/results/$(shell date +%Y-%m-%d)

## bench: every benchmark, with reports (Markdown, JSON, SVG) in bench/results/<date>/ (needs root, ~50 min)
bench: release
	$(eval DIR := bench/results/$(shell date +%Y-%m-%d))
	.build/release/lbbench hash --report $(DIR)
	.build/release/lbbench frames --report $(DIR)
	$(SUDO) .build/release/lbbench engine --report $(DIR)
	$(SUDO) .build/release/lbbench pps --report $(DIR)
	$(SUDO) .build/release/lbbench failover --compare --report $(DIR)
	$(SUDO) .build/release/lbbench apps --report $(DIR)
	$(SUDO) .build/release/lbbench scenarios --report $(DIR)
	$(SUDO) .build/release/lbbench steady --seconds 60 --report $(DIR)
	$(SUDO) .build/release/lbbench chaos --report $(DIR)
	$(SUDO) .build/release/lbbench demo --report $(DIR)

## fuzz: libFuzzer (with AddressSanitizer) on the frame parser and decider, the heartbeat gate and decoder, and the
## configuration loader, FUZZ_SECONDS each; the corpus grows in .build-fuzz/corpus, a crash is saved there and fails.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := frames heartbeat config
fuzz: setup
	@binary=$$(scripts/build-fuzzer.sh) && for target in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/$$target && echo "fuzz: $$target for $(FUZZ_SECONDS) s" && \
	  VIPFARM_FUZZ=$$target $$binary -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=.build-fuzz/crash-$$target- .build-fuzz/corpus/$$target \
	    Tests/lbnodeTests/FuzzInputs/$$target 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Test unit written' \
	    && ! ls .build-fuzz/crash-$$target-* >/dev/null 2>&1 || exit 1; done

clean:
	rm -rf .build .build-fuzz
