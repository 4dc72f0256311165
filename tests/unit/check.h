/* The unit tests' one assertion: report the failed condition and its line,
 * then exit 1, so a failing check is loud and the rest is never reached. */
#ifndef VISIOND_TEST_CHECK_H
#define VISIOND_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

#endif
