/*
 * cgilog.c - what every room of the relay (cgirelay.c, cgibody.c,
 * cgiscript.c) uses to log about the script and to answer with an error
 * of ours: kept apart so that those rooms call into it and never back
 * into each other.
 */
#include "cgirelay.h"
#include "cgiint.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "response.h"

void cgirelay_printable(char *out, size_t outsz, const char *s)
{
    size_t i;

    for (i = 0; s != NULL && s[i] != '\0' && i + 1 < outsz; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
}

void cgirelay_log(const struct relay *r, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rl_log(level, "cgi %s (client %s): %s", r->what, r->client, msg);
}

enum rl_step cgirelay_reply(struct relay *r, int status, const char *message)
{
    (void)response_error(r->req->out, status, message, 0, buf_str(&r->limits));
    return RL_ANSWERED;
}
