# libbottle: the two front-door commands are `make demo` and `make test`.
# Both build everything they need from a fresh checkout.

CC       ?= cc
CXX      ?= c++
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wpedantic -Werror
LIBDIR   := $(CURDIR)/target/release
STANDIN  := $(CURDIR)/target/debug/smolvm-standin
BUILD    := build

# The Python package's tools (pytest, ruff, mypy) from PyPI, in a virtualenv
# of the project's own, remade when their pinned versions change.
PYENV    := $(CURDIR)/$(BUILD)/pyenv
PY       := $(PYENV)/bin/python

# Tests keep the stand-in's machines under target/, never in the host's /tmp.
export SMOLVM_STANDIN_HOME ?= $(CURDIR)/target/standin-home

# The real smolvm CLI, which tests/real-smolvm runs against the stand-in
# guest (its machine database under target/real-smolvm-home). CI has it in
# ../shared; point BOTTLE_REAL_SMOLVM at any other smolvm 1.9 build.
export BOTTLE_REAL_SMOLVM ?= $(abspath $(CURDIR)/../shared/smolvm-1.9.2/smolvm)
REAL_SMOLVM := $(CURDIR)/tests/real-smolvm

# What a static Rust library needs from the C side when linked
# (`cargo rustc -- --print native-static-libs`).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# A 0.x library may break its ABI in any minor release (see build.rs).
SONAME   := libbottle.so.$(shell echo $(VERSION) | awk -F. '$$1 == 0 { print "0." $$2; next } { print $$1 }')

# Installation, GNU style; DESTDIR is honoured.
PREFIX      ?= /usr/local
INSTALL_LIB ?= $(PREFIX)/lib
INSTALL_INC ?= $(PREFIX)/include
INSTALL_PC  ?= $(INSTALL_LIB)/pkgconfig
STRIP       ?= strip

.PHONY: all lib standin header install uninstall demo test lint test-rust test-c test-standin \
	test-sanitize test-valgrind test-examples test-go test-python python-package test-serve test-real \
	bench clean

all: lib

# The in-tree build, with the soname link a program linked to it looks for,
# and a pkg-config file for using it uninstalled:
# PKG_CONFIG_PATH=$(CURDIR)/build/pkgconfig.
lib: | $(BUILD)
	cargo build --release
	ln -sf libbottle.so $(LIBDIR)/$(SONAME)
	mkdir -p $(BUILD)/pkgconfig
	$(call pc_file,$(CURDIR),$(LIBDIR),$(CURDIR)/include, -Wl$(comma)-rpath$(comma)$(LIBDIR)) \
		> $(BUILD)/pkgconfig/bottle-uninstalled.pc

comma := ,
# $(call pc_file,prefix,libdir,includedir,extra libs)
pc_file = sed -e 's|@PREFIX@|$(1)|' -e 's|@LIBDIR@|$(2)|' -e 's|@INCLUDEDIR@|$(3)|' \
	-e 's|@VERSION@|$(VERSION)|' -e 's|@EXTRA_LIBS@|$(4)|' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|' \
	bottle.pc.in

# bottle.pc names its directories relative to ${prefix}, and finds the
# prefix from its own place (${pcfiledir}), so an installed tree still works
# when moved. That needs the three directories under PREFIX; otherwise the
# paths are absolute.
space := $(subst ,, )
pc_up  = $(subst $(space),/,$(patsubst %,..,$(subst /, ,$(patsubst $(PREFIX)/%,%,$(INSTALL_PC)))))
ifeq ($(words $(filter $(PREFIX)/%,$(INSTALL_PC) $(INSTALL_LIB) $(INSTALL_INC))),3)
installed_pc = $(call pc_file,$${pcfiledir}/$(pc_up),$${prefix}/$(patsubst $(PREFIX)/%,%,$(INSTALL_LIB)),$${prefix}/$(patsubst $(PREFIX)/%,%,$(INSTALL_INC)),)
else
installed_pc = $(call pc_file,$(PREFIX),$(INSTALL_LIB),$(INSTALL_INC),)
endif

# Installs the shared library (real file, soname link, dev link), the static
# library, the header and bottle.pc; uninstall removes exactly those. It
# builds nothing: `sudo make install` runs without the user's PATH, where
# cargo lives, so `make lib` comes first, as the user. The shared library is
# installed stripped (the unstripped one, with debug info, stays in
# target/release), the static one without debug info.
install:
	@for f in libbottle.so libbottle.a; do [ -f $(LIBDIR)/$$f ] || { \
		echo "make install: $(LIBDIR)/$$f is missing: run \`make lib\` first, as yourself" \
			"(install builds nothing: under sudo, cargo is not on PATH)" >&2; exit 1; }; done
	install -d $(DESTDIR)$(INSTALL_LIB) $(DESTDIR)$(INSTALL_INC) $(DESTDIR)$(INSTALL_PC)
	install -m 0755 $(LIBDIR)/libbottle.so $(DESTDIR)$(INSTALL_LIB)/libbottle.so.$(VERSION)
	$(STRIP) --strip-unneeded $(DESTDIR)$(INSTALL_LIB)/libbottle.so.$(VERSION)
	ln -sf libbottle.so.$(VERSION) $(DESTDIR)$(INSTALL_LIB)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(INSTALL_LIB)/libbottle.so
	install -m 0644 $(LIBDIR)/libbottle.a $(DESTDIR)$(INSTALL_LIB)/libbottle.a
	$(STRIP) --strip-debug $(DESTDIR)$(INSTALL_LIB)/libbottle.a
	install -m 0644 include/bottle.h $(DESTDIR)$(INSTALL_INC)/bottle.h
	$(installed_pc) > $(DESTDIR)$(INSTALL_PC)/bottle.pc

uninstall:
	rm -f $(DESTDIR)$(INSTALL_LIB)/libbottle.so.$(VERSION) $(DESTDIR)$(INSTALL_LIB)/$(SONAME) \
		$(DESTDIR)$(INSTALL_LIB)/libbottle.so $(DESTDIR)$(INSTALL_LIB)/libbottle.a \
		$(DESTDIR)$(INSTALL_INC)/bottle.h $(DESTDIR)$(INSTALL_PC)/bottle.pc

standin:
	cargo build -p smolvm-standin

header:
	BOTTLE_UPDATE_HEADER=1 cargo test --test header

$(BUILD):
	mkdir -p $@

$(BUILD)/demo: examples/demo.c include/bottle.h lib | $(BUILD)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -Iinclude $< -o $@ -L$(LIBDIR) -lbottle -Wl,-rpath,$(LIBDIR)

demo: lib standin $(BUILD)/demo
	scripts/demo.sh

# Every test: formatting and lints, the Rust unit and integration tests (the
# header drift check among them), the stand-in's own checks, the C tests
# against the shared and the static library and under ASan+UBSan and
# valgrind, the C examples with an install, the Go binding and the Python
# package; then the Rust, C, Go and Python suites again through the real
# smolvm CLI.
test: lint test-rust test-standin test-c test-sanitize test-valgrind test-examples test-go \
	test-python test-serve test-real

lint: $(PYENV)/tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	test -z "$$(gofmt -l bindings/go)" || { gofmt -l bindings/go; exit 1; }
	cd bindings/python && $(PY) -m ruff check && $(PY) -m ruff format --check && $(PY) -m mypy

test-rust: standin
	cargo test --workspace

test-standin: standin
	tests/smolvm-standin/selftest.sh

$(BUILD)/test_bottle: tests/c/test_bottle.c include/bottle.h lib | $(BUILD)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -Iinclude $< -o $@ -L$(LIBDIR) -lbottle -lpthread \
		-Wl,-rpath,$(LIBDIR)

$(BUILD)/test_bottle_static: tests/c/test_bottle.c include/bottle.h lib | $(BUILD)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -Iinclude $< -o $@ $(LIBDIR)/libbottle.a $(STATIC_LIBS)

$(BUILD)/header_cpp: tests/c/header_cpp.cc include/bottle.h lib | $(BUILD)
	$(CXX) -std=c++17 $(WARN) -Iinclude $< -o $@ -L$(LIBDIR) -lbottle -Wl,-rpath,$(LIBDIR)

# The C tests through the CLI, then at the stand-in's serve: on a unix
# socket, and over mutual TLS (tests/with-serve).
test-c: standin $(BUILD)/test_bottle $(BUILD)/test_bottle_static $(BUILD)/header_cpp
	BOTTLE_SMOLVM=$(STANDIN) $(BUILD)/test_bottle
	BOTTLE_SMOLVM=$(STANDIN) $(BUILD)/test_bottle_static
	BOTTLE_SMOLVM=$(STANDIN) tests/with-serve $(BUILD)/test_bottle
	BOTTLE_SMOLVM=$(STANDIN) tests/with-serve --tls $(BUILD)/test_bottle
	BOTTLE_SMOLVM=/nonexistent $(BUILD)/header_cpp

SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

$(BUILD)/test_bottle_asan: tests/c/test_bottle.c include/bottle.h lib | $(BUILD)
	$(CC) -std=c11 $(WARN) -O1 -g $(SANITIZE) -Iinclude $< -o $@ -L$(LIBDIR) -lbottle -lpthread \
		-Wl,-rpath,$(LIBDIR)

# Under ASan+UBSan and valgrind, through the CLI and at a serve on a unix
# socket. Not over TLS: what the C side does is the same as over the
# socket, and valgrind takes four times as long there and cannot follow
# ring's assembly crypto (it reports the ciphertext as uninitialised).
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
VALGRIND := valgrind -q --suppressions=tests/c/valgrind.supp --leak-check=full \
	--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
	--error-exitcode=1

test-sanitize: standin $(BUILD)/test_bottle_asan
	BOTTLE_SMOLVM=$(STANDIN) $(SANITIZE_ENV) $(BUILD)/test_bottle_asan
	BOTTLE_SMOLVM=$(STANDIN) $(SANITIZE_ENV) tests/with-serve $(BUILD)/test_bottle_asan

test-valgrind: standin $(BUILD)/test_bottle
	BOTTLE_SMOLVM=$(STANDIN) $(VALGRIND) $(BUILD)/test_bottle
	BOTTLE_SMOLVM=$(STANDIN) tests/with-serve $(VALGRIND) $(BUILD)/test_bottle

test-examples: standin lib
	BOTTLE_SMOLVM=$(STANDIN) tests/examples.sh

test-go: standin lib
	cd bindings/go/bottle && PKG_CONFIG_PATH=$(CURDIR)/build/pkgconfig BOTTLE_SMOLVM=$(STANDIN) \
		go vet ./... && PKG_CONFIG_PATH=$(CURDIR)/build/pkgconfig BOTTLE_SMOLVM=$(STANDIN) \
		go test -race -count=1 ./...
	tests/with-serve sh -c 'cd bindings/go/bottle && PKG_CONFIG_PATH=$(CURDIR)/build/pkgconfig \
		go test -race -count=1 ./...'

$(PYENV)/tools: bindings/python/requirements-dev.txt | $(BUILD)
	python3 -m venv $(PYENV)
	$(PY) -m pip install -q --disable-pip-version-check -r $<
	touch $@

# Installs bindings/python as a user would (pip builds libbottle into the
# wheel; its own cargo target directory keeps `make lib`'s output as it is).
python-package: $(PYENV)/tools
	CARGO_TARGET_DIR=$(CURDIR)/target/python $(PY) -m pip install -q --disable-pip-version-check \
		--force-reinstall --no-deps ./bindings/python

# The Python package's tests against the stand-in.
test-python: standin python-package
	cd bindings/python && BOTTLE_SMOLVM=$(STANDIN) $(PY) -m pytest -q
	tests/with-serve sh -c 'cd bindings/python && $(PY) -m pytest -q'

# The suites that drive machines, again with their bottles at an endpoint
# (tests/with-serve): the stand-in's serve on a unix socket, and over mutual
# TLS. tests/serve.rs, part of test-rust, covers what serve does
# differently.
SERVE_SUITES := --test exec --test exec_with --test cp_in --test copy_with --test claude \
	--test roundtrip
test-serve: standin
	tests/with-serve cargo test -p bottle $(SERVE_SUITES) --test concurrency
	tests/with-serve --tls cargo test -p bottle --test exec --test cp_in --test claude

# One test body, two smolvms: the integration suites through the real
# smolvm CLI driving the stand-in guest. Without a real smolvm this says so
# loudly, and fails under CI, which must run both.
ifeq ($(wildcard $(BOTTLE_REAL_SMOLVM)),)
test-real:
	@echo "=================================================================="
	@echo "NOT RUN: the suites against the real smolvm CLI: no smolvm at"
	@echo "  $(BOTTLE_REAL_SMOLVM) (set BOTTLE_REAL_SMOLVM)"
	@echo "=================================================================="
	@if [ -n "$$CI" ]; then echo "CI must run them" >&2; exit 1; fi
else
test-real: standin lib $(BUILD)/test_bottle python-package
	@echo "test-real: $$($(REAL_SMOLVM) --version) ($(BOTTLE_REAL_SMOLVM)), stand-in guest"
	BOTTLE_SMOLVM=$(REAL_SMOLVM) cargo test -p bottle --tests
	tests/with-serve --real cargo test -p bottle $(SERVE_SUITES)
	BOTTLE_SMOLVM=$(REAL_SMOLVM) $(BUILD)/test_bottle
	cd bindings/go/bottle && PKG_CONFIG_PATH=$(CURDIR)/build/pkgconfig \
		BOTTLE_SMOLVM=$(REAL_SMOLVM) go test -race -count=1 ./...
	cd bindings/python && BOTTLE_SMOLVM=$(REAL_SMOLVM) $(PY) -m pytest -q
endif

# Benchmarks against a smolvm that runs nothing: library against the floor,
# large captures, concurrency, the Go binding. Results: BENCHMARKS.md.
bench:
	scripts/bench.sh

clean:
	cargo clean
	rm -rf $(BUILD)
