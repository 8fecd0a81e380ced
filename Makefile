# Top-level wrapper around CMake + CTest.
#   make          release build: build/pigeon, build/libpigeon.{so,a}, build/pigeon.pc
#   make check    installs missing Debian packages, builds with -Werror under ASan+UBSan,
#                 runs every test (unit, integration against real peers, round trips)
#   make demo     sends a real multipart mail through a local STARTTLS+AUTH server
#   make bench    benchmarks beside the peers (a report, not a test)
#   make fuzz     builds the libFuzzer targets and runs each for FUZZ_SECONDS
#   make install  installs the library, headers, pkg-config file, command and man pages
#   make deb      Debian packages in dist/ (libpigeon0, libpigeon-dev, pigeon), lintian-checked
PREFIX      ?= /usr/local
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
CMAKE       ?= cmake

.PHONY: all deps check demo bench fuzz install deb clean format format-check

all:
	@./scripts/deps.sh
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	$(CMAKE) --build build -j$(JOBS)

deps:
	./scripts/deps.sh

check:
	@./scripts/deps.sh
	$(CMAKE) -S . -B build-check -DCMAKE_BUILD_TYPE=Debug -DPIGEON_SANITIZE=ON -DPIGEON_WERROR=ON >/dev/null
	$(CMAKE) --build build-check -j$(JOBS)
	cd build-check && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 300

demo: all
	./scripts/demo.sh build/pigeon

bench: all
	@./scripts/deps.sh --bench
	./bench/run.sh build

fuzz:
	@./scripts/deps.sh
	CC=clang $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIGEON_FUZZ=ON >/dev/null
	$(CMAKE) --build build-fuzz -j$(JOBS)
	./scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

install: all
	$(CMAKE) --install build

# Debian's paths and hardening flags (dpkg-buildflags, hardening=+all) in build-deb, then
# dpkg-deb from the staged install (scripts/mkdeb.sh); lintian fails it on any warning.
deb:
	@./scripts/deps.sh
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all; \
	$(CMAKE) -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	  -DCMAKE_INSTALL_LIBDIR=lib/$$(dpkg-architecture -qDEB_HOST_MULTIARCH) -DPIGEON_TESTS=OFF \
	  -DCMAKE_C_FLAGS="$$(dpkg-buildflags --get CFLAGS) $$(dpkg-buildflags --get CPPFLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$$(dpkg-buildflags --get LDFLAGS)" \
	  -DCMAKE_SHARED_LINKER_FLAGS="$$(dpkg-buildflags --get LDFLAGS)" >/dev/null
	$(CMAKE) --build build-deb -j$(JOBS)
	rm -rf dist
	./scripts/mkdeb.sh build-deb dist
	lintian --fail-on error,warning dist/*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-check build-fuzz build-deb dist
