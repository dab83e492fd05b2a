/*
 * deadline.c - the process-wide deadline of deadline.h: an ITIMER_REAL
 * timer and a SIGALRM handler that only sets a flag. The handler is
 * installed without SA_RESTART, so that the signal breaks the blocking
 * read()/write() the worker is in (libfcgi's, or the relay's).
 */
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include "deadline.h"

static volatile sig_atomic_t expired;

static void on_alarm(int sig)
{
    (void)sig;
    expired = 1;
}

void deadline_init(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the point is the EINTR */
    sigaction(SIGALRM, &sa, NULL);
}

static void set_timer(long long ms)
{
    struct itimerval it;

    memset(&it, 0, sizeof(it));
    if (ms > 0) {
        it.it_value.tv_sec = (time_t)(ms / 1000);
        it.it_value.tv_usec = (suseconds_t)(ms % 1000) * 1000;
        /* Past the deadline, again every 100 ms: a write that blocks
         * after the first signal (the error answer, libfcgi's end of
         * request to a peer that stopped reading) must fail as well. */
        it.it_interval.tv_usec = 100 * 1000;
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

void deadline_arm(long long ms)
{
    expired = 0;
    set_timer(ms);
}

void deadline_disarm(void)
{
    set_timer(0);
    expired = 0;
}

int deadline_expired(void)
{
    return expired != 0;
}
