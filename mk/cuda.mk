# CUDA backend (make CUDA=1): compiles src/engine/cuda/*.cu with nvcc, defines HX_HAVE_CUDA.
NVCC ?= /usr/local/cuda/bin/nvcc
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90
CPPFLAGS += -DHX_HAVE_CUDA
CU_OBJ := $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
CU_LIBS := -L/usr/local/cuda/lib64 -lcudart -lcublas -lstdc++

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) -O3 $(CUDA_ARCH) -Isrc -DHX_HAVE_CUDA -Xcompiler -fPIC -c $< -o $@
