/* The one way every CUDA, cuDNN and cuBLAS call is checked.
 *
 *   GPU_CHECK(cudaMalloc(&p, n));
 *
 * On failure it fills `err` (which must be in scope) with the file, the
 * line, the call and the library's own error string, and returns
 * ENGINE_E_BACKEND from the enclosing function, so the engine can re-run
 * the batch on the CPU. C11 _Generic picks the library by the status
 * type the call returns.
 */
#ifndef VISIOND_GPU_CHECK_H
#define VISIOND_GPU_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "../engine/status.h"

engine_status gpu_fail(engine_error *err, const char *file, int line, const char *call,
                       const char *library, int code, const char *text);
const char *gpu_cublas_text(cublasStatus_t s);

#define GPU_LIBRARY(rc) \
    _Generic((rc), cudaError_t: "CUDA", cudnnStatus_t: "cuDNN", cublasStatus_t: "cuBLAS")
#define GPU_TEXT(rc)                                                                            \
    _Generic((rc), cudaError_t: cudaGetErrorString, cudnnStatus_t: cudnnGetErrorString,       \
             cublasStatus_t: gpu_cublas_text)(rc)

/* cudaSuccess, CUDNN_STATUS_SUCCESS and CUBLAS_STATUS_SUCCESS are all 0. */
#define GPU_CHECK(call)                                                                         \
    do {                                                                                        \
        __typeof__(call) gpu_rc_ = (call);                                                      \
        if ((int)gpu_rc_ != 0)                                                                  \
            return gpu_fail(err, __FILE__, __LINE__, #call, GPU_LIBRARY(gpu_rc_), (int)gpu_rc_, \
                            GPU_TEXT(gpu_rc_));                                                 \
    } while (0)

#endif
