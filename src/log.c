/*
 * log.c - rl_log(): level filter, one formatted line, one write.
 *
 * The line is formatted into a stack buffer and written with a single call
 * so that lines from several workers sharing the web server's log do not
 * interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_level = RL_LOG_WARN;
static int (*log_sink)(void *, const char *, int);
static void *log_sink_ctx;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(int level)
{
    log_level = level;
}

int log_get_level(void)
{
    return log_level;
}

const char *log_level_name(int level)
{
    if (level < RL_LOG_ERROR || level > RL_LOG_DEBUG)
        return "?";
    return level_names[level];
}

void log_set_sink(int (*write_fn)(void *ctx, const char *line, int len), void *ctx)
{
    log_sink = write_fn;
    log_sink_ctx = ctx;
}

void rl_log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n, m;

    if (level > log_level)
        return;
    n = snprintf(line, sizeof(line), "fcgi-ratelimit[%ld]: %s: ", (long)getpid(),
                 log_level_name(level));
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2; /* truncated: keep the newline */
    /* Control characters from input (CR/LF in a header value) must not be
     * able to forge extra log lines. */
    for (int i = 0; i < n; i++) {
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    }
    line[n++] = '\n';
    line[n] = '\0';
    if (log_sink != NULL && log_sink(log_sink_ctx, line, n) == 0)
        return;
    /* One write(): best effort, a full or closed log must not stop us. */
    {
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
    }
}
