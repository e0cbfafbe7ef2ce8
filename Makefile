# libbottle: the two front-door commands are `make demo` and `make test`.
# Both build everything they need from a fresh checkout.

CC       ?= cc
CXX      ?= c++
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wpedantic -Werror
LIBDIR   := $(CURDIR)/target/release
STANDIN  := $(CURDIR)/target/debug/smolvm-standin
BUILD    := build

# Tests keep the stand-in's machines under target/, never in the host's /tmp.
export SMOLVM_STANDIN_HOME ?= $(CURDIR)/target/standin-home

# What a static Rust library needs from the C side when linked.
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

.PHONY: all lib standin header demo test lint test-rust test-c test-standin clean

all: lib

lib:
	cargo build --release

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
# header drift check among them), the stand-in's own checks, and the C tests
# against the shared and the static library.
test: lint test-rust test-standin test-c

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

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

test-c: standin $(BUILD)/test_bottle $(BUILD)/test_bottle_static $(BUILD)/header_cpp
	BOTTLE_SMOLVM=$(STANDIN) $(BUILD)/test_bottle
	BOTTLE_SMOLVM=$(STANDIN) $(BUILD)/test_bottle_static
	BOTTLE_SMOLVM=/nonexistent $(BUILD)/header_cpp

clean:
	cargo clean
	rm -rf $(BUILD)
