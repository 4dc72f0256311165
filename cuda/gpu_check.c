/* Error reporting for GPU_CHECK (gpu_check.h). */
#include "gpu_check.h"

#include <stdio.h>

engine_status gpu_fail(engine_error *err, const char *file, int line, const char *call,
                       const char *library, int code, const char *text)
{
    return engine_fail(err, ENGINE_E_BACKEND, "%s error %d (%s) in %s at %s:%d", library, code,
                       text ? text : "?", call, file, line);
}

/* cublasGetStatusString exists only from cuBLAS 11.4 on; this covers every version. */
const char *gpu_cublas_text(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    default: return "unknown cuBLAS status";
    }
}
