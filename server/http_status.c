/* How the engine's statuses are answered over HTTP: one table for every
 * endpoint and every stage (decoding in the pool, the batcher's result),
 * so that an error keeps its kind from the engine to the client. */
#include "server.h"

http_answer http_answer_of(engine_status st)
{
    static const http_answer table[] = {
        [ENGINE_OK] = {MHD_HTTP_OK, NULL},
        [ENGINE_E_IO] = {MHD_HTTP_INTERNAL_SERVER_ERROR, NULL},  /* a file of ours */
        [ENGINE_E_PARSE] = {MHD_HTTP_BAD_REQUEST, NULL},         /* the client's bytes */
        [ENGINE_E_UNSUPPORTED] = {MHD_HTTP_BAD_REQUEST, NULL},
        [ENGINE_E_INVALID] = {MHD_HTTP_BAD_REQUEST, NULL},
        [ENGINE_E_ARG] = {MHD_HTTP_BAD_REQUEST, NULL},
        /* memory may be there again in a moment: retry, as for overload */
        [ENGINE_E_NOMEM] = {MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory"},
        /* the device failed and so did the fallback: ours */
        [ENGINE_E_BACKEND] = {MHD_HTTP_INTERNAL_SERVER_ERROR, NULL},
        [ENGINE_E_TIMEOUT] = {MHD_HTTP_GATEWAY_TIMEOUT, NULL},
        [ENGINE_E_BUSY] = {MHD_HTTP_SERVICE_UNAVAILABLE, "busy"},
    };
    if ((unsigned)st < sizeof table / sizeof table[0] && table[st].status)
        return table[st];
    return (http_answer){MHD_HTTP_INTERNAL_SERVER_ERROR, NULL};
}
