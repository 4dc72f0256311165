/* Status codes and error messages shared by the engine and its backends.
 *
 * Nothing under engine/, cpu_fallback/ or cuda/ may print or exit, so every
 * fallible function returns an engine_status and, on failure, fills an
 * engine_error with a message a caller can show as-is (it names the file,
 * the node, the operator or the value involved).
 */
#ifndef VISIOND_STATUS_H
#define VISIOND_STATUS_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    ENGINE_OK = 0,
    ENGINE_E_IO,          /* a file could not be read */
    ENGINE_E_PARSE,       /* the model is not a well-formed ONNX protobuf */
    ENGINE_E_UNSUPPORTED, /* well-formed, but uses something visiond does not implement */
    ENGINE_E_INVALID,     /* well-formed, but inconsistent (shapes, missing values, bounds) */
    ENGINE_E_NOMEM,       /* an allocation failed */
    ENGINE_E_ARG,         /* the caller passed a bad argument */
    ENGINE_E_BACKEND,     /* the device failed while running (and the fallback too) */
    ENGINE_E_TIMEOUT,     /* the work's deadline passed before it ran */
    ENGINE_E_BUSY,        /* no room or stopping: the same work may succeed later */
} engine_status;

typedef struct {
    engine_status status;
    char message[768];
} engine_error;

/* Sets err (if not NULL) and returns st, so callers can write
 * `return engine_fail(err, ENGINE_E_INVALID, "...", ...);`. */
engine_status engine_fail(engine_error *err, engine_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends context ("node 'x' (Conv): ") to an error already set. */
engine_status engine_error_prefix(engine_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *engine_status_name(engine_status st);

#endif
