/*
 * testhelp.h - the smallest test harness (after redis' testhelp.h and
 * hiredis' test.c) speaking TAP, so automake's tap-driver counts each case.
 *
 *   test_cond("parses 30s", parse(...) == RL_OK);
 *   return test_report();
 */
#ifndef RL_TESTHELP_H
#define RL_TESTHELP_H

#undef NDEBUG
#include <stdio.h>

static int test_n, test_failed;

#define test_cond(descr, cond)                                                                     \
    do {                                                                                           \
        test_n++;                                                                                  \
        if (cond) {                                                                                \
            printf("ok %d - %s\n", test_n, (descr));                                               \
        } else {                                                                                   \
            test_failed++;                                                                         \
            printf("not ok %d - %s\n# at %s:%d: %s\n", test_n, (descr), __FILE__, __LINE__,        \
                   #cond);                                                                         \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

static inline int test_report(void)
{
    printf("1..%d\n", test_n);
    return test_failed ? 1 : 0;
}

#endif
