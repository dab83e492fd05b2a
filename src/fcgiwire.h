/*
 * fcgiwire.h - check the head of a FastCGI connection before libfcgi
 * reads it: is the request's header part (BEGIN_REQUEST, then PARAMS up to
 * the empty PARAMS record) complete, still arriving, or malformed?
 *
 * libfcgi reads a request's params with blocking reads and no deadline,
 * and aborts the process on some malformed params (Debian's patch for
 * CVE-2025-23016 turns a length overflow into an abort). The accept loop
 * therefore peeks at what a connection has sent and hands it to libfcgi
 * only once the params are whole and well-formed. No I/O here: the
 * function looks at bytes, so unit tests and a fuzzer feed it buffers.
 */
#ifndef RL_FCGIWIRE_H
#define RL_FCGIWIRE_H

#include <stddef.h>

/* Largest params stream accepted (name-value pairs of all PARAMS records
 * together): ample for any web server's CGI variables (Apache's default
 * limits allow about 800 KB of headers in theory, 8 KB each in practice). */
#define FCGIWIRE_PARAMS_MAX (128 * 1024)

enum fcgiwire_state {
    FCGIWIRE_BAD = -1,       /* not a FastCGI request we will serve: drop it */
    FCGIWIRE_INCOMPLETE = 0, /* well-formed so far: wait for more bytes */
    FCGIWIRE_COMPLETE = 1    /* BEGIN_REQUEST and every PARAMS record are here */
};

/* What the scan found. */
struct fcgiwire_head {
    const char *why; /* FCGIWIRE_BAD: a static reason for the log */
    /* FCGIWIRE_COMPLETE: 1 when the whole body (STDIN records up to the
     * empty one that ends it) is in the bytes too, so that reading it to
     * its end cannot block; a GET from a web server usually is. */
    int body_whole;
};

/*
 * Scan the first n bytes a connection sent (borrowed). Returns an enum
 * fcgiwire_state and fills *h. Management records (request id 0) and
 * records of another request id than the BEGIN_REQUEST's are refused.
 */
int fcgiwire_scan(const unsigned char *p, size_t n, struct fcgiwire_head *h);

#endif
