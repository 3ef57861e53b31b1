# helix - GNU make build. See docs/build.md.
#
#   make            debug build (-O1 -g) into build/debug/
#   make test       install Debian deps, build, run unit + integration tests
#   make check      -Werror build, ASan/UBSan tests, headers, layering, banned calls, format, fuzz
#   make run        install deps, build release, run a local heterogeneous cluster (helix run --local)
#   make bench      build bench/ programs (release)
#   make VARIANT=release|asan|tsan ...   other variants, each in build/<variant>/
#   make CUDA=1     also build the CUDA backend, into build/<variant>-cuda/ (needs nvcc)
#   WERROR=0        escape hatch: warnings stay warnings

VARIANT ?= debug
CUDA ?= 0
WERROR ?= 1
CC ?= cc
ifeq ($(CC),cc)
CC := gcc
endif

ifeq ($(CUDA),1)
BUILD ?= build/$(VARIANT)-cuda
else
BUILD ?= build/$(VARIANT)
endif

# Quiet by default (V=1 prints full command lines).
ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
        -Wvla -Wpointer-arith -Wwrite-strings -Wformat=2 -Wundef -fno-common
ifeq ($(WERROR),1)
WARN += -Werror
endif

ifeq ($(VARIANT),debug)
OPT := -O1 -g
else ifeq ($(VARIANT),release)
OPT := -O2 -g -DNDEBUG
else ifeq ($(VARIANT),asan)
OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(VARIANT),tsan)
OPT := -O1 -g -fsanitize=thread
else
$(error unknown VARIANT '$(VARIANT)' (use debug, release, asan or tsan))
endif

# Debian packages exposing pkg-config files; OpenBLAS and GLPK are linked explicitly
# (a fresh machine's default libblas is netlib; GLPK ships no .pc).
PKGS := cbc libzmq libmicrohttpd libcjson inih
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CPPFLAGS := -Isrc -D_POSIX_C_SOURCE=200809L
CFLAGS := -std=c11 $(OPT) $(WARN) -MMD -MP
LDLIBS = -lopenblas $(PKG_LIBS) -lglpk -lpthread -lm

# Library sources: everything under src/ except the CLI and the CUDA backend.
LIB_SRC := $(filter-out src/cli/% src/engine/cuda/%,$(wildcard src/*/*.c src/*/*/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/unit/*.c)

# Developer builds of a subset while other modules are in flux:
#   make BUILD=build/me ONLY="base engine" TESTS="tests/unit/test_engine*.c" build
# builds only those modules and tests; the helix binary then links with unresolved symbols
# ignored (only the subcommands of those modules may be run). Never used by CI.
ifneq ($(ONLY),)
LIB_SRC := $(filter-out src/engine/cuda/%,$(wildcard $(ONLY:%=src/%/*.c) $(ONLY:%=src/%/*/*.c)))
TEST_SRC := $(wildcard tests/unit/test_base.c $(TESTS))
ONLY_LDFLAGS := -Wl,--unresolved-symbols=ignore-all
endif
BENCH_SRC := $(wildcard bench/bench_*.c)
CU_SRC := $(wildcard src/engine/cuda/*.cu)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/tests/test_main.o
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/%)

ifeq ($(CUDA),1)
include mk/cuda.mk
endif

LIB := $(BUILD)/libhelix.a
HELIX := $(BUILD)/helix
RUNNER := $(BUILD)/test_runner

.PHONY: all deps build test test-run check run bench clean format \
        check-headers check-layering check-banned check-format fuzz test-asan help

all: $(HELIX)

help:
	@sed -n '3,14p' Makefile

deps:
	@scripts/deps.sh

build: $(HELIX) $(RUNNER)

# The dashboard page is assembled into its object (.incbin): rebuild it when the page changes.
$(BUILD)/obj/src/api/dashboard.o build/fuzz/obj/src/api/dashboard.o: src/api/dashboard.html

# Warnings-as-conversion checks are on, per directory, where numeric narrowing bites.
$(BUILD)/obj/src/engine/%.o: CFLAGS += -Wconversion -Wno-sign-conversion
$(BUILD)/obj/src/runtime/proto.o: CFLAGS += -Wconversion -Wno-sign-conversion

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(HELIX): $(CLI_OBJ) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $(ONLY_LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS) $(CU_LIBS)

# The test list is generated from every TEST(name) in tests/unit.
$(BUILD)/gen/test_list.h: $(TEST_SRC) FORCE
	@mkdir -p $(@D)
	@grep -ho '^TEST([a-zA-Z0-9_]*)' $(TEST_SRC) /dev/null | sed 's/^TEST(\(.*\))/TEST_ENTRY(\1)/' > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp

$(BUILD)/obj/tests/%.o: CPPFLAGS += -Itests -I$(BUILD)/gen
$(BUILD)/obj/tests/test_main.o: tests/test_main.c $(BUILD)/gen/test_list.h
	@mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(RUNNER): $(TEST_OBJ) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(LIB) $(LDLIBS) $(CU_LIBS)

$(BUILD)/obj/bench/%.o: CPPFLAGS += -Itests -Ibench
# bench programs are bench/bench_*.c; bench_engine has more parts (bench/engine_*.c). Its
# llama.cpp race (--vs-llamacpp) takes the types of llama.cpp's C API from llama.h in the
# llama-cpp-python sdist's copy of llama.cpp (LLAMA_CPP_SRC) and dlopens the library at run time.
LLAMA_CPP_SRC ?= build/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp
$(BUILD)/obj/bench/engine_llamacpp.o: CPPFLAGS += $(if $(wildcard $(LLAMA_CPP_SRC)/include/llama.h),\
    -DHX_HAVE_LLAMA_H -isystem $(LLAMA_CPP_SRC)/include -isystem $(LLAMA_CPP_SRC)/ggml/include)
$(BUILD)/obj/bench/engine_race.o: CPPFLAGS += -DHX_LLAMA_CPP_SRC='"$(LLAMA_CPP_SRC)"'
$(BUILD)/bench_engine: $(BUILD)/obj/bench/engine_model.o $(BUILD)/obj/bench/engine_full.o \
    $(BUILD)/obj/bench/engine_llamacpp.o $(BUILD)/obj/bench/engine_race.o
# bench_serve's per-hop part (plain vs CURVE)
$(BUILD)/bench_serve: $(BUILD)/obj/bench/serve_hop.o
$(BUILD)/bench_%: $(BUILD)/obj/bench/bench_%.o $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS) $(CU_LIBS)

# ---- the README's commands -------------------------------------------------------------

# With nvcc on the machine, `make test` also builds the CUDA variant (build/debug-cuda) and
# runs the whole suite against it: tests that need a GPU skip there, saying so.
HAVE_NVCC := $(shell { [ -n "$(CUDA_HOME)" ] && [ -x "$(CUDA_HOME)/bin/nvcc" ]; } || \
               command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] && echo 1)

test: deps
	@scripts/pyenv.sh >/dev/null
	@$(MAKE) --no-print-directory -j2 build
ifeq ($(HAVE_NVCC)$(CUDA),10)
	@$(MAKE) --no-print-directory -j2 CUDA=1 build
	@tests/run_builds.sh $(BUILD) build/$(VARIANT)-cuda
else
	@HELIX=$(HELIX) RUNNER=$(RUNNER) tests/run.sh
endif

test-run: build
	@scripts/pyenv.sh >/dev/null
	@HELIX=$(HELIX) RUNNER=$(RUNNER) tests/run.sh

run: deps
	@$(MAKE) --no-print-directory -j2 VARIANT=release build/release/helix
	build/release/helix run --local

bench: deps
	@$(MAKE) --no-print-directory -j2 VARIANT=release $(BENCH_SRC:bench/%.c=build/release/%)

# ---- checks -----------------------------------------------------------------------------

check: deps
	@$(MAKE) --no-print-directory -j2 VARIANT=debug WERROR=1 build
	@$(MAKE) --no-print-directory check-headers check-layering check-banned check-format
	@$(MAKE) --no-print-directory -j2 VARIANT=asan build
	@HELIX=build/asan/helix RUNNER=build/asan/test_runner HX_TEST_TIMEOUT=900 \
	    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh
	@$(MAKE) --no-print-directory fuzz
	@echo "check: all green"

check-headers:
	@tools/check_headers.sh

check-layering:
	@tools/check_layering.sh

check-banned:
	@tools/check_banned.sh

check-format:
	@clang-format --dry-run -Werror $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null)
	@echo "format: ok"

format:
	clang-format -i $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null)

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 20
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_FLAGS := -std=c11 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer

build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(PKG_CFLAGS) $(FUZZ_FLAGS) -c $< -o $@

build/fuzz/libhelix.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libhelix.a
	clang $(CPPFLAGS) -Itests $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libhelix.a \
	    $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	    name=$$(basename $$f); corpus=tests/fuzz/corpus/$${name#fuzz_}; \
	    mkdir -p build/fuzz/corpus-$$name; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=0 \
	        -artifact_prefix=build/fuzz/$$name- \
	        build/fuzz/corpus-$$name $$( [ -d $$corpus ] && echo $$corpus ) \
	        2>build/fuzz/$$name.log || { tail -50 build/fuzz/$$name.log; exit 1; }; \
	done; echo "fuzz: ok"

clean:
	rm -rf build

FORCE:

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d)
