/*
 * cgiint.h - what the relay's files share (not a public interface):
 * struct relay, one request's state from the script's name to its reaped
 * exit, and the logging and error-answer helpers of cgirelay.c.
 * cgispawn.c picks, checks and starts the script; cgibody.c receives the
 * request body; cgirelay.c runs the poll loop and relays the answer.
 */
#ifndef RL_CGIINT_H
#define RL_CGIINT_H

#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"
#include "cgiheader.h"
#include "cgirelay.h"

#define RELAY_IO_SIZE 65536 /* one read of body or answer */

/* How the request ended when it did not end well; the first one wins. */
enum relay_outcome {
    RL_RELAY_OK = 0,
    RL_RELAY_TIMEOUT,     /* 504 */
    RL_RELAY_CLIENT_GONE, /* nobody to answer */
    RL_RELAY_BAD_HEADERS, /* 502 */
    RL_RELAY_NO_HEADERS,  /* 502: exit or EOF before the blank line */
    RL_RELAY_INTERNAL     /* our own syscall failed: 500 */
};

struct relay {
    const struct rl_relay_req *req;
    char client[64];          /* REMOTE_ADDR, printable, for logs */
    char what[256];           /* the script, printable, for logs */
    char *script;             /* realpath of the script; owned */
    const char *name;         /* its last component, inside script */
    int dir_fd;               /* its folder (O_PATH), checked inside the root */
    struct stat st;           /* stat of script, valid when st_err == 0 */
    int st_err;               /* errno of that stat */
    char **envp;              /* owned (cgienv_build) */
    char **argv;              /* owned (cgienv_argv) */
    long long content_length; /* given to the script, -1: none */
    int stdin_fd;             /* child's stdin: filled pipe, spool or /dev/null */
    int out_r, err_r;         /* parent's ends, non-blocking */
    int out_w, err_w;         /* child's ends, closed in the parent after spawn */
    pid_t pid;
    int reaped, wstatus;
    long long started, deadline;
    int outcome;
    int streaming;      /* answer bytes go straight out, not to ans */
    int dirty;          /* answer bytes written since the last flush */
    struct buf ans;     /* the answer so far while not streaming */
    long long last_out; /* now_ms() of the script's last stdout bytes */
    size_t err_bytes;   /* script stderr bytes seen */
    char *io;           /* one read of body or answer */
    struct cgihdr hdr;
};

/* One log line naming the script and the client (STYLE 13). */
void cgirelay_log(const struct relay *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The JSON error answer with the rate-limit headers (nothing once the
 * answer has started); RL_ERR always, so that callers can return it. */
int cgirelay_reply(struct relay *r, int status, const char *message);

/* Copy s into out as printable ASCII (log lines must stay one line). */
void cgirelay_printable(char *out, size_t outsz, const char *s);

/* Pick the script and check it (cgispawn.c): sets r->script, r->name,
 * r->dir_fd, r->what. RL_OK, or RL_ERR (answered 404/403/500). */
int cgispawn_resolve_or_reply(struct relay *r);

/* Start the script (cgispawn.c) with r->stdin_fd, r->envp, r->argv in
 * its folder, its own process group: sets r->pid, r->out_r, r->err_r.
 * RL_OK with the child running, or RL_ERR (answered 500/502). */
int cgispawn_start_or_reply(struct relay *r);

/* Receive the whole request body (cgibody.c): sets r->stdin_fd and
 * r->content_length. RL_OK, or RL_ERR (answered 400/408/413/500). */
int cgibody_receive_or_reply(struct relay *r);

/* An unlinked temp file in $TMPDIR or /tmp, O_CLOEXEC; -1 on error. */
int cgibody_spool_open(void);

#endif
