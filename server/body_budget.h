/* The memory budget for request bodies held in memory.
 *
 * Every body is buffered whole before it is decoded, up to max_body_bytes
 * each, and thousands of connections could each hold one: 16 MiB x 4096
 * is 64 GiB. So the bytes held by all requests together are counted
 * against one limit (max_buffered_bytes); a request whose declared length
 * does not fit is answered 503 before any of its body is read, and one
 * without a declared length (chunked) is refused as soon as its bytes go
 * over. Taking and giving are lock-free.
 */
#ifndef VISIOND_BODY_BUDGET_H
#define VISIOND_BODY_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    size_t limit;
    atomic_size_t used;
    atomic_size_t peak;
} body_budget;

void body_budget_init(body_budget *b, size_t limit);
/* Takes n bytes if they fit; false (nothing taken) when they do not. */
bool body_budget_take(body_budget *b, size_t n);
void body_budget_give(body_budget *b, size_t n);
size_t body_budget_used(const body_budget *b);

#endif
