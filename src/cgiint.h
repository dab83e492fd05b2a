/*
 * cgiint.h - what the relay's files share (not a public interface):
 * struct relay, one request's state from the script's name to its reaped
 * exit, and the doors between the rooms. cgiscript.c picks and checks the
 * script and never answers; cgibody.c receives the request body;
 * cgienv.c builds the environment (pure); cgispawn.c starts a process
 * from fds, argv, envp and a folder; cgirelay.c holds them together, runs
 * the poll loop and writes every answer.
 */
#ifndef RL_CGIINT_H
#define RL_CGIINT_H

#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"
#include "cgiheader.h"
#include "cgirelay.h"
#include "rl.h"

#define RELAY_IO_SIZE 65536                          /* one read of body or answer */
#define RELAY_MSG_CANNOT_RUN "cannot run the script" /* our 500 */

/* How the request ended when it did not end well; the first one wins. */
enum relay_outcome {
    RL_RELAY_OK = 0,
    RL_RELAY_TIMEOUT,     /* 504 */
    RL_RELAY_CLIENT_GONE, /* nobody to answer */
    RL_RELAY_BAD_HEADERS, /* 502 */
    RL_RELAY_NO_HEADERS,  /* 502: exit or EOF before the blank line */
    RL_RELAY_INTERNAL     /* our own syscall failed: 500 */
};

/* The body received so far: mem, then (once mem is full) all in fd. */
struct relay_spool {
    char *mem; /* CGIBODY_MEM bytes; owned, lazily */
    size_t len;
    int fd; /* unlinked temp file, -1 until the body outgrows mem */
    long long total;
};

struct relay {
    const struct rl_relay_req *req;
    struct cgirelay_cache *cache; /* req->cache, or own */
    struct cgirelay_cache own;    /* used when req->cache is NULL */
    struct buf limits;            /* the rate-limit header lines */
    char client[64];              /* REMOTE_ADDR, printable, for logs */
    char what[256];               /* the script, printable, for logs */
    char *script;                 /* realpath of the script; owned */
    const char *name;             /* its last component, inside script */
    int dir_fd;                   /* its folder (O_PATH), checked inside the root */
    struct stat st;               /* stat of script, valid when st_err == 0 */
    int st_err;                   /* errno of that stat */
    char **envp;                  /* owned (cgienv_build) */
    char **argv;                  /* owned (cgienv_argv) */
    struct relay_spool spool;     /* the body while it arrives (cgibody.c) */
    long long content_length;     /* given to the script, -1: none */
    int stdin_fd;                 /* child's stdin: filled pipe, spool or /dev/null */
    int out_r, err_r;             /* parent's ends, non-blocking */
    int out_w, err_w;             /* child's ends, closed in the parent after spawn */
    pid_t pid;
    int reaped, wstatus;
    long long started, deadline;
    long long started_us; /* when the script was started, for the metrics */
    int sent;             /* a byte of the script's answer went to the client */
    int outcome;
    int streaming;      /* answer bytes go straight out, not to ans */
    int dirty;          /* answer bytes written since the last flush */
    struct buf ans;     /* the answer so far while not streaming */
    long long last_out; /* now_ms() of the script's last stdout bytes */
    size_t err_bytes;   /* script stderr bytes seen */
    char *io;           /* one read of body or answer */
    struct cgihdr hdr;
};

/* One log line naming the script and the client, so that an admin can
 * tell which request it is about. */
void cgirelay_log(const struct relay *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The JSON error answer with the rate-limit headers (nothing once the
 * answer has started); RL_ANSWERED always, so that callers can return it. */
enum rl_step cgirelay_reply(struct relay *r, int status, const char *message);

/* Copy s into out as printable ASCII (log lines must stay one line). */
void cgirelay_printable(char *out, size_t outsz, const char *s);

/*
 * Pick the script and check it (cgiscript.c): sets r->script, r->name,
 * r->dir_fd, r->st and r->what, and logs why it refuses. RL_OK, or
 * RL_ERR with err's kind (RL_E_NOTFOUND, RL_E_DENIED, RL_E_IO) and the
 * message for the client; it never answers.
 */
int cgiscript_resolve(struct relay *r, struct rl_err *err);

/* A pipe, both ends O_CLOEXEC, the parent's end (the read end when
 * mine_is_read, else the write end) non-blocking. RL_OK or RL_ERR. */
int cgispawn_pipe(int *rd, int *wr, int mine_is_read);

/*
 * Start "./name" in the folder dir_fd (fchdir) with fds[0..2] as its
 * stdin, stdout and stderr, argv and envp, in its own process group, with
 * every signal at its default and no other fd open. cache (may be NULL)
 * keeps what can be reused. Returns 0 with *pid the child, or an errno
 * (the child, if one was made, is already reaped); the fds stay the
 * caller's to close.
 */
int cgispawn(struct cgirelay_cache *cache, int dir_fd, const char *name, const int fds[3],
             char *const argv[], char *const envp[], pid_t *pid);

/* Free the spawn part of a cache (cgispawn.c). */
void cgispawn_cache_free(struct cgirelay_cache *c);

/* Receive the whole request body (cgibody.c): sets r->stdin_fd and
 * r->content_length. RL_GO_ON, or RL_ANSWERED (400/408/413/500). */
enum rl_step cgibody_receive_or_reply(struct relay *r);

/* An unlinked temp file in $TMPDIR or /tmp, O_CLOEXEC; -1 on error. */
int cgibody_spool_open(void);

#endif
