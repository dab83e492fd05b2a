/*
 * cgienv.h - the script's environment and argv, built from the request's
 * parameters alone (RFC 3875 section 4): pure functions, no process, no
 * fd, so tests/unit/test_cgienv.c checks them directly.
 */
#ifndef RL_CGIENV_H
#define RL_CGIENV_H

/* PATH for the script when the server gives none (lighttpd's mod_cgi
 * gives none): Debian's default for services. */
#define CGIENV_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Most ISINDEX words passed as arguments (Apache's APACHE_ARG_MAX - 1). */
#define CGIENV_ARGV_MAX 511

/*
 * The script's whole environment: every request param whose name is a
 * valid variable name (the first of repeated names wins, as FCGX_GetParam
 * finds it), except HTTP_PROXY (httpoxy, any case), every RATELIMIT_*
 * (also as Apache's REDIRECT_ copies) and the variables set here; then
 * GATEWAY_INTERFACE=CGI/1.1, PATH (CGIENV_DEFAULT_PATH unless the server
 * gave one), CONTENT_LENGTH (when content_length >= 0) and
 * SCRIPT_FILENAME=script. The process's own environment is never read.
 * params: NULL-terminated, borrowed (may be NULL). Caller owns the
 * result (NULL-terminated, every entry owned): free it with cgienv_free().
 */
char **cgienv_build(char *const *params, const char *script, long long content_length);

/*
 * The script's argv: script, then for an ISINDEX query (non-empty, no '=',
 * RFC 3875 4.4) its words: split on '+', each percent-decoded, at most
 * CGIENV_ARGV_MAX of them (Apache mod_cgi's cut). No words at all when a
 * word decodes to a NUL byte (it cannot be passed). query may be NULL.
 * Caller owns the result, NULL-terminated; free it with cgienv_free().
 */
char **cgienv_argv(const char *script, const char *query);

/* Free a vector from cgienv_build or cgienv_argv; NULL is a no-op. */
void cgienv_free(char **v);

#endif
