/*
 * fcgxio.h - the request's byte streams as the rest of the program sees
 * them (struct rl_out, struct rl_body_src, the log sink): adapters over
 * libfcgi's FCGX_Stream for FastCGI and over plain fds for CGI.
 */
#ifndef RL_FCGXIO_H
#define RL_FCGXIO_H

#include <stddef.h>
#include <sys/types.h>

#include <fcgiapp.h>

/* All n bytes to the stream ctx (an FCGX_Stream *): RL_OK or RL_ERR. */
int fcgx_write(void *ctx, const char *p, size_t n);

/* Push what libfcgi buffered for ctx (an FCGX_Stream *): RL_OK or RL_ERR. */
int fcgx_flush(void *ctx);

/*
 * Read up to n bytes of the body from ctx (an FCGX_Stream *), blocking
 * (a loop: any n): n bytes, fewer only at the end of the body or before
 * a failure, 0 at the end, -1 when the connection failed (or the
 * request's deadline broke a blocking read). A failure after some bytes
 * returns those bytes, and every later call -1, never 0: a body that
 * breaks off is never taken for a shorter one, and no byte is lost.
 */
ssize_t fcgx_read(void *ctx, char *p, size_t n);

/*
 * A log line to the request ctx's (an FCGX_Request *) FCGI_STDERR, the
 * web server's log. RL_ERR once the connection has failed (nothing sent
 * there arrives): log.c then writes the line to our own stderr, which
 * lighttpd and mod_fcgid also put in their log. A log_set_sink function.
 */
int fcgx_log(void *ctx, const char *line, int len);

/* The script's stderr, as it comes, to ctx (an FCGX_Stream *). */
void fcgx_errlog(void *ctx, const char *p, size_t n);

/*
 * Read what is left of the body and throw it away; 1 when it was read to
 * its end without error. With nothing unread a plain close sends no
 * reset, so libfcgi's lingering close (shutdown, wait for the server to
 * close, read, close) can be skipped. Call it only when the whole body
 * has arrived (the acceptor saw it): it cannot block then.
 */
int fcgx_drain(FCGX_Stream *s);

/*
 * End the answer of the request ctx (an FCGX_Request *) now: closing its
 * out and err streams sends their EOF records and FCGI_END_REQUEST
 * (libfcgi sends it when the last writer closes); FCGX_Finish_r's own
 * closes are then no-ops. RL_OK, or RL_ERR when the peer is gone.
 */
int fcgx_end(void *ctx);

/* Plain CGI: the same over fds; ctx points at the int fd. fd_read
 * retries EINTR, but not past the request's deadline. */
int fd_write(void *ctx, const char *p, size_t n);
ssize_t fd_read(void *ctx, char *p, size_t n);
void fd_errlog(void *ctx, const char *p, size_t n);

#endif
