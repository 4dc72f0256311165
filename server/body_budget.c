/* The request-body memory budget; see body_budget.h. */
#include "body_budget.h"

void body_budget_init(body_budget *b, size_t limit)
{
    b->limit = limit;
    atomic_init(&b->used, 0);
    atomic_init(&b->peak, 0);
}

bool body_budget_take(body_budget *b, size_t n)
{
    size_t cur = atomic_load(&b->used);
    do {
        if (n > b->limit || cur > b->limit - n)
            return false;
    } while (!atomic_compare_exchange_weak(&b->used, &cur, cur + n));
    size_t peak = atomic_load(&b->peak);
    while (cur + n > peak && !atomic_compare_exchange_weak(&b->peak, &peak, cur + n))
        ;
    return true;
}

void body_budget_give(body_budget *b, size_t n)
{
    atomic_fetch_sub(&b->used, n);
}

size_t body_budget_used(const body_budget *b)
{
    return atomic_load(&((body_budget *)b)->used);
}
