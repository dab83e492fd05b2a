/*
 * decision.c - arithmetic on a decision that needs no Redis (decision.h).
 */
#include "decision.h"

long long limiter_ttl_seconds(long long ms)
{
    if (ms <= 1000)
        return 1;
    /* No ms + 999: it would overflow for LLONG_MAX. */
    return ms / 1000 + (ms % 1000 != 0);
}
