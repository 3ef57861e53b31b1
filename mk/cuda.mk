# CUDA backend (make CUDA=1): compiles src/engine/cuda/*.cu with nvcc, defines HX_HAVE_CUDA.
# nvcc comes from $(CUDA_HOME)/bin, else PATH, else /usr/local/cuda/bin. Machine code for
# sm_80 (A100), sm_86 (A10/RTX 30), sm_89 (L4/L40/RTX 40), sm_90 (H100/H200), plus PTX of
# sm_90 for newer cards; CUDA_ARCH overrides (e.g. CUDA_ARCH='-gencode arch=compute_90,code=sm_90').
ifneq ($(CUDA_HOME),)
NVCC ?= $(CUDA_HOME)/bin/nvcc
else
NVCC ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
endif
CUDA_ROOT := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
             -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
CPPFLAGS += -DHX_HAVE_CUDA
CU_OBJ := $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
CU_LIBS := -L$(CUDA_ROOT)/lib64 -L$(CUDA_ROOT)/targets/x86_64-linux/lib -lcublas -lcudart -lstdc++ \
           -Wl,-rpath,$(CUDA_ROOT)/lib64
ifeq ($(VARIANT),debug)
NVCC_OPT := -O2 -g -lineinfo
else
NVCC_OPT := -O3 -lineinfo
endif

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(@D)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVCC_OPT) $(CUDA_ARCH) -std=c++20 -Isrc -DHX_HAVE_CUDA -MMD -MP \
	    -Xcompiler -fPIC,-Wall -Werror all-warnings -c $< -o $@
