/*
 * deadline.h - one process-wide wall-clock deadline that interrupts
 * blocking I/O.
 *
 * libfcgi reads and writes its connection with plain blocking read() and
 * write() and gives no timeout hook, so a peer that stops sending or stops
 * reading would hold the worker forever. A worker serves one request at a
 * time, so one timer per process is enough: deadline_arm() starts it
 * (setitimer, ITIMER_REAL), and when it fires, SIGALRM (installed without
 * SA_RESTART) makes the blocked read() or write() fail with EINTR, which
 * libfcgi turns into a stream error. Past the deadline the signal comes
 * again every 100 ms until deadline_disarm(), so that no later blocking
 * write (an error answer, libfcgi's end of the request) can hang either.
 * Code that loops on EINTR must check deadline_expired() and stop.
 */
#ifndef RL_DEADLINE_H
#define RL_DEADLINE_H

/* Install the SIGALRM handler (no SA_RESTART). Call once at start, after
 * FCGX_Init (which installs handlers of its own). */
void deadline_init(void);

/* Fire in ms milliseconds from now (ms >= 1), replacing any armed
 * deadline; clears the expired flag. ms <= 0 disarms. Two system calls
 * at most (setitimer). */
void deadline_arm(long long ms);

/* Stop the timer and clear the expired flag. */
void deadline_disarm(void);

/* 1 once the armed deadline has passed (SIGALRM came), else 0. */
int deadline_expired(void);

#endif
