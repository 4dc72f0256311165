# visiond — one entry point.
#
#   make              install missing Debian packages, build build/visiond
#   make test         the same, then every test (unit, ONNX conformance, loader
#                     failures, sanitizers)
#   make run          build and serve the embedded default model
#   make bench-cpu    visiond vs ONNX Runtime on the CPU, alternating, same threads
#   make bench-http   the daemon under wrk at concurrency 1, 8, 32 vs engine-only
#                     (both benches clear OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for
#                     visiond and say so; BENCH_KEEP_BLAS_ENV=1 keeps them)
#   make install      binary, default model, config and systemd unit (PREFIX, DESTDIR)
#   make CUDA=0       build without the CUDA backend even where nvcc/cuDNN exist
#   make BUILD=dir    put every output under dir (default: build)
#   make SAN=1        build with AddressSanitizer + UndefinedBehaviorSanitizer
#   make CC=clang     build with clang instead of GCC
#   make ONNX_PROTO=f the ONNX schema from f instead of libonnx-dev's
#   make WERROR=0     warnings stay warnings (a compiler this project does not test)
#   make ARCH=arm64   cross build for arm64 (Jetson Xavier/Orin userland) into
#                     build-arm64; ARCH=armhf for 32-bit ARMv7 (the TK1)
#   make arm-test     both ARM builds, tested under qemu-user (in make test)
#   make deb          a Debian package (ARCH=arm64/armhf for those), see README
#   make fuzz         each libFuzzer harness for FUZZ_SECONDS (default 600) on its
#                     corpus (tests/fuzz), built with clang under ASan + UBSan

# ARCH=arm64 (Jetson TX2/Xavier/Orin userland) or ARCH=armhf (the TK1's
# 32-bit ARMv7): a cross build with Debian's cross compiler against the
# multiarch -dev packages scripts/deps.sh installs, into build-$(ARCH);
# qemu-user runs what it builds (make arm-test). No CUDA module there.
ARCH ?= native
ifeq ($(ARCH),native)
BUILD ?= build
MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
else ifeq ($(ARCH),arm64)
MULTIARCH := aarch64-linux-gnu
QEMU := qemu-aarch64
else ifeq ($(ARCH),armhf)
MULTIARCH := arm-linux-gnueabihf
QEMU := qemu-arm
else
$(error ARCH=$(ARCH): use arm64, armhf or leave it unset)
endif
ifneq ($(ARCH),native)
BUILD ?= build-$(ARCH)
override CC := $(MULTIARCH)-gcc
override CUDA := 0
endif
SAN ?= 0
CC ?= gcc
DEPS ?= 1

# The OpenMP build of OpenBLAS shares its thread pool with our OpenMP kernels,
# so BLAS threads and ours never oversubscribe the cores.
BLAS_DIR := /usr/lib/$(MULTIARCH)/openblas-openmp
PKGCONF := PKG_CONFIG_PATH=$(BLAS_DIR)/pkgconfig pkg-config
ifneq ($(ARCH),native)
# only the target's .pc files: a cross build must never see the host's
PKGCONF := PKG_CONFIG_LIBDIR=$(BLAS_DIR)/pkgconfig:/usr/lib/$(MULTIARCH)/pkgconfig:/usr/share/pkgconfig \
	pkg-config
endif
ONNX_PROTO ?= /usr/include/onnx/onnx.proto

# Ensure packages before anything asks pkg-config about them.
ifeq ($(DEPS),1)
ifneq ($(filter %test bench%,$(MAKECMDGOALS)),)
DEPS_LEVEL := $(if $(filter bench%,$(MAKECMDGOALS)),bench,test)
else
DEPS_LEVEL := build
endif
ifneq ($(filter-out clean,$(MAKECMDGOALS) all),)
DEPS_OUT := $(shell ONNX_PROTO=$(ONNX_PROTO) scripts/deps.sh $(DEPS_LEVEL) $(filter-out native,$(ARCH)) >&2 || echo FAILED)
ifeq ($(DEPS_OUT),FAILED)
$(error scripts/deps.sh $(DEPS_LEVEL) failed: install the packages it names)
endif
endif
endif

PKGS := openblas jansson libprotobuf-c libmicrohttpd gnutls libjpeg libpng libsystemd
PKG_CFLAGS := $(shell $(PKGCONF) --cflags $(PKGS))
PKG_LIBS := $(shell $(PKGCONF) --libs $(PKGS)) -Wl,-rpath,$(BLAS_DIR)

# snprintf truncation is how messages are bounded here, not a bug to warn about.
# --- CUDA: detected (nvcc and cudnn.h), or forced with CUDA=0 / CUDA=1 ---
CUDA ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
CUDNN_H := $(firstword $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h \
	/usr/include/$(MULTIARCH)/cudnn.h))
ifeq ($(CUDA),auto)
override CUDA := $(if $(and $(NVCC),$(CUDNN_H)),1,0)
endif
ifeq ($(CUDA),1)
CUDA_LIBDIR ?= $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib /usr/lib/$(MULTIARCH)))
CUDA_CFLAGS := -I$(CUDA_HOME)/include -I$(dir $(CUDNN_H))
CUDA_LIBS := -L$(CUDA_LIBDIR) -lcudnn -lcublas -lcudart -lstdc++ -Wl,-rpath,$(CUDA_LIBDIR)
# Turing to Hopper, plus PTX for newer GPUs; a Jetson TK1 build (CUDA 6.5)
# sets CUDA_ARCH="-gencode arch=compute_32,code=sm_32".
CUDA_ARCH ?= -gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80 \
	-gencode arch=compute_87,code=sm_87 -gencode arch=compute_90,code=[sm_90,compute_90]
endif

# GCC and clang both build visiond; each gets only the flags it knows.
CC_IS_CLANG := $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null | head -1)),1,)
# WERROR=0 where the compiler is not one this project tests (a Jetson
# image's GCC 9 or 11): a new warning there must not stop the build.
WERROR ?= 1
WARN := -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Wshadow -Wno-unused-function \
	$(if $(CC_IS_CLANG),,-Wno-format-truncation)
OPT := -O2 -g
ifeq ($(SAN),1)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
endif
# libFuzzer builds (clang): the same sanitizers, plus coverage for the fuzzer
ifeq ($(SAN),fuzz)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
endif

CFLAGS_ALL := -std=c11 -D_POSIX_C_SOURCE=200809L -D_FILE_OFFSET_BITS=64 $(OPT) $(WARN) -fopenmp -MMD -MP \
	-I$(BUILD)/gen -Iengine $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -fopenmp $(LDSAN) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lm -lpthread -ldl

ENGINE_SRC := $(wildcard engine/*.c)
CPU_SRC := $(wildcard cpu_fallback/*.c)
SERVER_SRC := $(wildcard server/*.c)
GEN_SRC := $(BUILD)/gen/onnx.pb-c.c

# Backends built into the binary (the registry's list, build/gen/backend_list.c);
# the CUDA backend is a module beside it (libvisiond_cuda.so), loaded with
# dlopen when it and its libraries are there.
BUILTIN_BACKENDS := cpu
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o) $(CPU_SRC:%.c=$(BUILD)/obj/%.o) \
	$(BUILD)/obj/gen/onnx.pb-c.o $(BUILD)/obj/gen/backend_list.o
CUDA_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cuda/*.c)) \
	$(patsubst %.cu,$(BUILD)/obj/%.o,$(wildcard cuda/*.cu))
CUDA_MODULE := $(if $(filter 1,$(CUDA)),$(BUILD)/libvisiond_cuda.so)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all test run install deb bench-cpu bench-http clean unit-test conformance-test daemon-test arm-test emulated-test \
	gpu-test build-matrix-test sanitizer-test fuzz fuzz-test fuzz-harnesses

all: $(BUILD)/visiond $(BUILD)/libvisiond_engine.a $(CUDA_MODULE)

$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(BUILD)/gen $(ONNX_PROTO)

# Generated code is compiled without -Werror: its warnings are protoc-c's.
$(BUILD)/obj/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -MMD -MP -I$(BUILD)/gen $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/gen/backend_list.c: Makefile
	@mkdir -p $(BUILD)/gen
	@{ echo '/* generated by the Makefile from BUILTIN_BACKENDS */'; \
	  echo '#include "backend.h"'; \
	  for b in $(BUILTIN_BACKENDS); do echo "extern const backend_ops $${b}_backend_ops;"; done; \
	  printf 'const backend_ops *const backend_builtin[] = {'; \
	  for b in $(BUILTIN_BACKENDS); do printf '&%s_backend_ops, ' $$b; done; \
	  echo 'NULL};'; } > $@

$(BUILD)/obj/gen/backend_list.o: $(BUILD)/gen/backend_list.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The try-it page (GET /) as a C string: backslashes, quotes and '?' (no
# trigraphs) escaped, each line a literal ending in a newline.
$(BUILD)/gen/page_html.inc: server/page.html
	@mkdir -p $(BUILD)/gen
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@
$(BUILD)/obj/server/page.o: $(BUILD)/gen/page_html.inc

# Objects depend on the build's configuration, so switching CUDA or SAN in
# one BUILD folder rebuilds what it must.
CONFIG_STAMP := $(BUILD)/config.$(CUDA).$(SAN)
$(CONFIG_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/config.* && touch $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/onnx.pb-c.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(KERNEL_OPT) -c $< -o $@

# The CPU kernels and preprocessing get the full optimiser (vectorisation);
# sanitizer builds keep -O1.
ifneq ($(SAN),1)
$(BUILD)/obj/cpu_fallback/%.o $(BUILD)/obj/engine/preproc.o: KERNEL_OPT := -O3
# The convolution micro-kernels keep 24 sums in 32 vector registers; GCC
# 12's partial-redundancy elimination hoists loads across the unrolled loop
# and then spills the sums (100 stack accesses per 384 FMAs in the 4x6 tile,
# against 8 without), so those two passes are off for that file.
$(BUILD)/obj/cpu_fallback/cpu_fastmath.o: KERNEL_OPT := -O3 -fno-math-errno -fno-trapping-math \
	-ffinite-math-only -fno-signed-zeros
$(BUILD)/obj/cpu_fallback/cpu_nchwc_tile.o: KERNEL_OPT := -O3 $(if $(CC_IS_CLANG),,-fno-tree-pre -fno-gcse)
endif
# ARMv7: only the NEON kernels are built for NEON (with VFPv4's fused
# multiply-add, as on the TK1's Cortex-A15); the binary keeps armhf's
# baseline and picks them at run time (cpu_nchwc_tile.c, AT_HWCAP).
ifeq ($(ARCH),armhf)
$(BUILD)/obj/cpu_fallback/cpu_simd_neon.o $(BUILD)/obj/cpu_fallback/cpu_nchwc_neon.o: \
	KERNEL_OPT := $(if $(filter 1,$(SAN)),,-O3) -mfpu=neon-vfpv4
endif

$(BUILD)/obj/cuda/%.o: cuda/%.cu cuda/kernels.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) -O3 $(CUDA_ARCH) -Xcompiler -Wall,-fPIC -c $< -o $@

$(BUILD)/obj/cuda/%.o: cuda/%.c $(BUILD)/gen/onnx.pb-c.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CUDA_CFLAGS) -fPIC -c $< -o $@

# where an installed visiond looks for backend modules (besides its own
# folder); a stamp per PREFIX rebuilds it when that changes (make deb: /usr)
PREFIX ?= /usr/local
PREFIX_STAMP := $(BUILD)/prefix$(subst /,_,$(PREFIX))
$(PREFIX_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/prefix_* && touch $@
$(BUILD)/obj/engine/backend_registry.o: $(PREFIX_STAMP)
$(BUILD)/obj/engine/backend_registry.o: KERNEL_OPT = -DVISIOND_MODULE_DIR='"$(PREFIX)/lib/visiond"'

$(BUILD)/libvisiond_engine.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The module takes the engine's functions from the binary that loads it
# (linked -rdynamic, with the whole engine archive), so there is one copy.
$(BUILD)/libvisiond_cuda.so: $(CUDA_OBJ)
	$(CC) -shared $(LDSAN) -o $@ $^ $(CUDA_LIBS)

$(BUILD)/visiond: $(SERVER_OBJ) $(BUILD)/libvisiond_engine.a
	$(CC) $(LDFLAGS_ALL) -rdynamic -o $@ $(SERVER_OBJ) -Wl,--whole-archive \
		$(BUILD)/libvisiond_engine.a -Wl,--no-whole-archive $(LIBS)

# --- tests -----------------------------------------------------------------

UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(BUILD)/libvisiond_engine.a $(filter-out $(BUILD)/obj/server/main.o,$(SERVER_OBJ))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iserver -o $@ $< $(filter-out $(BUILD)/obj/server/main.o,$(SERVER_OBJ)) \
		$(BUILD)/libvisiond_engine.a $(LDFLAGS_ALL) $(LIBS)

unit-test: $(UNIT_BIN)
	@failed=""; for t in $(UNIT_BIN); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit tests failed:$$failed"; exit 1; fi

PYTEST := /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider
export VISIOND_BUILD := $(abspath $(BUILD))

conformance-test: all
	scripts/npm_pkg.sh $(BUILD)/ort onnxruntime-node 1.30.0
	$(PYTEST) tests/conformance tests/onnx_node tests/loader

# A backend module for the tests: a device that fails every batch
# (tests/modules/testdev_backend.c), loaded from a folder of its own.
TEST_MODULE := $(BUILD)/testmod/libvisiond_testdev.so
$(TEST_MODULE): tests/modules/testdev_backend.c engine/backend.h $(BUILD)/gen/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -shared -o $@ $<

daemon-test: all $(TEST_MODULE)
	scripts/npm_pkg.sh $(BUILD)/ort onnxruntime-node 1.30.0
	$(PYTEST) tests/daemon

# The CUDA backend: skipped, with the reason shown, where there is no GPU
# (failed instead with VISIOND_EXPECT_GPU=1); then the same suite with the
# CPU standing in for the GPU, a rehearsal of what a GPU run will do.
gpu-test: all
	$(PYTEST) tests/gpu
	VISIOND_GPU_DEVICE=cpu VISIOND_GPU_MODELS=squeezenet1_1,mobilenet_v2 $(PYTEST) tests/gpu

# The build without CUDA still builds and runs, and links no CUDA library.
build-matrix-test:
	$(MAKE) --no-print-directory BUILD=$(BUILD)-cpu CUDA=0 DEPS=0 all
	! ldd $(BUILD)-cpu/visiond | grep -E 'libcu(da|dnn|blas)'
	$(BUILD)-cpu/visiond info --model models/mnist/model.onnx --device auto | grep -q 'backend    cpu'
	! $(BUILD)-cpu/visiond info --model models/mnist/model.onnx --device cuda 2>&1 | grep -v 'has no cuda backend'
	! ldd $(BUILD)/visiond | grep -E 'libcu(da|dnn|blas)'

# --- ARM under emulation (make arm-test, one of make test's suites) --------
# Both ARM builds (make ARCH=arm64, ARCH=armhf), then, under qemu-user
# against the ARM libraries: every unit test; the daemon serving the shipped
# models over loopback, checked against the native binary and the README
# (tests/emulated); conformance at batch 1 and 2 on three networks (a
# squeeze/expand CNN, depthwise MobileNetV2, a residual ResNet; the others
# cost minutes each under emulation); every forced CPU convolution algorithm
# on both kernel sets (NEON and portable C).
ARM_ARCHES := arm64 armhf
ARM_MODELS := squeezenet1_1 or mobilenet_v2 or resnet18
arm-test: all
	scripts/npm_pkg.sh $(BUILD)/ort onnxruntime-node 1.30.0
	@failed=""; for a in $(ARM_ARCHES); do \
	  $(MAKE) --no-print-directory ARCH=$$a DEPS=0 HOST_BUILD=$(abspath $(BUILD)) emulated-test \
	    || failed="$$failed $$a"; done; \
	if [ -n "$$failed" ]; then echo "arm-test failed:$$failed"; exit 1; fi

# the driver of bench/arm/neon_proxy.sh (instruction counts under qemu)
$(BUILD)/neon_proxy: bench/arm/neon_proxy.c $(BUILD)/libvisiond_engine.a
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libvisiond_engine.a $(LDFLAGS_ALL) $(LIBS)

ifneq ($(ARCH),native)
HOST_BUILD ?= $(abspath build)
EMULATED := $(BUILD)/visiond-emulated
$(EMULATED): $(BUILD)/visiond
	printf '#!/bin/sh\n# %s under qemu-user (make ARCH=$(ARCH))\nexec $(QEMU) %s "$$@"\n' \
		visiond $(abspath $(BUILD)/visiond) > $@ && chmod +x $@

emulated-test: all $(EMULATED) $(UNIT_BIN)
	@failed=""; for t in $(UNIT_BIN); do echo "== $(QEMU) $$t"; $(QEMU) $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit tests failed under $(QEMU):$$failed"; exit 1; fi
	VISIOND_BIN=$(abspath $(EMULATED)) VISIOND_BUILD=$(HOST_BUILD) \
		$(PYTEST) tests/emulated/test_arm_daemon.py tests/conformance/test_cpu_algos.py
	VISIOND_BIN=$(abspath $(EMULATED)) VISIOND_BUILD=$(HOST_BUILD) VISIOND_CONFORMANCE_BATCHES=1,2 \
		$(PYTEST) tests/conformance/test_models.py -k "$(ARM_MODELS)"
	$(MAKE) --no-print-directory ARCH=$(ARCH) DEPS=0 deb
	VISIOND_BIN=$(abspath $(EMULATED)) VISIOND_BUILD=$(HOST_BUILD) \
		VISIOND_DEB=$(abspath $(DEB)) \
		$(PYTEST) tests/emulated/test_package.py $(if $(filter arm64,$(ARCH)),tests/emulated/test_dockerfile.py)
endif

# The same suites on an AddressSanitizer + UndefinedBehaviorSanitizer build
# (leaks included): the engine on every conformance model, the loader's
# failure paths, and the daemon over HTTP.
sanitizer-test: $(TEST_MODULE)
	$(MAKE) --no-print-directory BUILD=$(BUILD)-san SAN=1 CUDA=0 DEPS=0 all
	scripts/npm_pkg.sh $(BUILD)/ort onnxruntime-node 1.30.0
	VISIOND_BIN=$(abspath $(BUILD))-san/visiond ASAN_OPTIONS=detect_leaks=1 \
		$(PYTEST) tests/conformance/test_models.py tests/onnx_node tests/loader tests/daemon

# Every suite runs, in this order, even after one has failed, in an
# environment cleared of OPENBLAS_*, OMP_*, GOMP_* and VISIOND_* (the host's
# settings must not decide what a test sees; a test that needs one sets it).
# The summary names each suite's result and time; make test fails if any did.
TEST_SUITES := unit-test conformance-test daemon-test gpu-test build-matrix-test arm-test \
	sanitizer-test fuzz-test
test: all
	@scripts/clean_env.sh --keep VISIOND_BUILD true
	@failed=""; summary=""; \
	for suite in $(TEST_SUITES); do \
	  start=$$(date +%s); \
	  if scripts/clean_env.sh --quiet --keep VISIOND_BUILD $(MAKE) --no-print-directory DEPS=0 $$suite; then \
	    result=passed; else result=FAILED; failed="$$failed $$suite"; fi; \
	  summary="$$summary$$(printf '  %-20s %-6s %6ss' $$suite $$result $$(( $$(date +%s) - start )))\n"; \
	done; \
	printf '\n== make test: every suite\n%b' "$$summary"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all $(words $(TEST_SUITES)) suites passed"

# --- fuzzing: clang's libFuzzer, every harness under ASan + UBSan ---------
# Harnesses in tests/fuzz (the ONNX loader, image decoding, the HTTP request
# path in process, the .npy reader), seeds in tests/fuzz/corpus/<name>; what
# a run finds goes to $(FUZZ_BUILD)/corpus/<name>, crashes to
# $(FUZZ_BUILD)/artifacts. make test runs each for FUZZ_TEST_SECONDS.
FUZZERS := onnx image npy http
FUZZ_BUILD := $(BUILD)-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TEST_SECONDS ?= 20

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libvisiond_engine.a \
		$(filter-out $(BUILD)/obj/server/main.o,$(SERVER_OBJ))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iserver -fsanitize=fuzzer -o $@ $< \
		$(filter-out $(BUILD)/obj/server/main.o,$(SERVER_OBJ)) $(BUILD)/libvisiond_engine.a \
		$(LDFLAGS_ALL) $(LIBS)

fuzz-harnesses: $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)

fuzz:
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN=fuzz CUDA=0 DEPS=0 fuzz-harnesses
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS)

fuzz-test:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)

run: all
	$(BUILD)/visiond serve --config config/visiond.json

BENCH_FLAGS := $(if $(filter-out 0,$(BENCH_KEEP_BLAS_ENV)),--keep-blas-env)
bench-http: all
	/usr/bin/python3 tests/bench/bench_http.py --build $(BUILD) $(BENCH_FLAGS)

bench-cpu: all
	scripts/npm_pkg.sh $(BUILD)/ort onnxruntime-node 1.30.0
	/usr/bin/python3 tests/bench/bench_cpu.py --build $(BUILD) $(BENCH_FLAGS)

DESTDIR ?=
# The installed configuration listens on loopback only; LISTEN=0.0.0.0:8080
# (make install LISTEN=...) writes a wider listener: then set tls_cert,
# tls_key and api_keys too (README, Security).
install: all
	install -D -m 755 $(BUILD)/visiond $(DESTDIR)$(PREFIX)/bin/visiond
	$(if $(CUDA_MODULE),install -D -m 755 $(CUDA_MODULE) $(DESTDIR)$(PREFIX)/lib/visiond/libvisiond_cuda.so)
	install -d $(DESTDIR)$(PREFIX)/share/visiond/models
	cp -r models/mnist models/faces $(DESTDIR)$(PREFIX)/share/visiond/models/
	install -m 755 models/fetch.sh $(DESTDIR)$(PREFIX)/share/visiond/models/fetch.sh
	test -f $(DESTDIR)/etc/visiond/visiond.json || { install -d $(DESTDIR)/etc/visiond && \
	  sed 's|"./models"|"$(PREFIX)/share/visiond/models"|$(if $(LISTEN),; s|"127.0.0.1:8080"|"$(LISTEN)"|)' \
	  config/visiond.json > $(DESTDIR)/etc/visiond/visiond.json; }
	test -f $(DESTDIR)/etc/default/visiond || install -D -m 644 config/visiond.env \
	  $(DESTDIR)/etc/default/visiond
	sed 's|/usr/local/bin|$(PREFIX)/bin|' config/visiond.service > visiond.service.tmp && \
	  install -D -m 644 visiond.service.tmp $(DESTDIR)/etc/systemd/system/visiond.service; \
	  rm -f visiond.service.tmp

# The Debian package of this build (ARCH=arm64 / armhf for those), written
# to $(BUILD)/visiond_<version>_<arch>.deb: scripts/make_deb.sh says what
# it holds.
DEB_ARCH := $(if $(filter native,$(ARCH)),$(shell dpkg --print-architecture),$(ARCH))
VERSION := $(shell sed -n 's/^.define VISIOND_VERSION "\(.*\)"/\1/p' server/server.h)
DEB := $(BUILD)/visiond_$(VERSION)_$(DEB_ARCH).deb
deb: all
	scripts/make_deb.sh $(BUILD) $(DEB_ARCH) $(MULTIARCH) $(ARCH) $(VERSION)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
