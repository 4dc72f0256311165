/* Error formatting for engine_status/engine_error (see status.h). */
#include "status.h"

#include <stdio.h>
#include <string.h>

engine_status engine_fail(engine_error *err, engine_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

engine_status engine_error_prefix(engine_error *err, const char *fmt, ...)
{
    if (!err)
        return ENGINE_E_INVALID;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = strlen(prefix), cap = sizeof err->message;
    if (plen >= cap)
        plen = cap - 1;
    size_t olen = strnlen(err->message, cap - 1);
    if (plen + olen >= cap)
        olen = cap - 1 - plen;
    memmove(err->message + plen, err->message, olen);
    memcpy(err->message, prefix, plen);
    err->message[plen + olen] = 0;
    return err->status;
}

const char *engine_status_name(engine_status st)
{
    switch (st) {
    case ENGINE_OK: return "ok";
    case ENGINE_E_IO: return "io error";
    case ENGINE_E_PARSE: return "parse error";
    case ENGINE_E_UNSUPPORTED: return "unsupported";
    case ENGINE_E_INVALID: return "invalid model";
    case ENGINE_E_NOMEM: return "out of memory";
    case ENGINE_E_ARG: return "bad argument";
    case ENGINE_E_BACKEND: return "backend failure";
    case ENGINE_E_TIMEOUT: return "timed out";
    case ENGINE_E_BUSY: return "busy";
    }
    return "unknown";
}
