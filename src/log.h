/*
 * log.h - one printf-checked logging function.
 *
 * Lines go to a sink: by default stderr; during a FastCGI request request.c
 * points the sink at the request's FCGI_STDERR stream so that the line lands
 * in the web server's error log next to the request it is about. Each line is
 * "fcgi-ratelimit[PID]: LEVEL: message\n".
 */
#ifndef RL_LOG_H
#define RL_LOG_H

enum rl_log_level { RL_LOG_ERROR = 0, RL_LOG_WARN, RL_LOG_INFO, RL_LOG_DEBUG };

/* Write one line at level if level <= the current threshold. */
void rl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Threshold: lines above it are dropped. Default RL_LOG_WARN. */
void log_set_level(int level);
int log_get_level(void);

/*
 * Divert lines to write(ctx, line, len) (e.g. an FCGX_Stream); NULL restores
 * stderr. write returns 0 when it took the line, or -1 when it could not
 * deliver it (a dead connection): the line then goes to stderr. The
 * function must not call rl_log itself.
 */
void log_set_sink(int (*write_fn)(void *ctx, const char *line, int len), void *ctx);

/* Level names for RATELIMIT_LOG: "error", "warn", "info", "debug". */
const char *log_level_name(int level);

#endif
