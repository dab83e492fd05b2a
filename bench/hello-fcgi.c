/*
 * hello-fcgi.c - the bare FastCGI application of bench/run: answers every
 * request "hello" and nothing else, so the benchmark measures the web
 * server and the FastCGI hop alone (variant a), and the same hop behind
 * fcgi-ratelimit as an authorizer (variant b). Started as a FastCGI
 * Authorizer it grants every request with a bare "Status: 200": the no-op
 * authorizer of variant n, the ceiling of what any authorizer can reach.
 *
 *   cc -O2 -o hello-fcgi hello-fcgi.c -lfcgi
 *
 * Started by lighttpd (bin-path) with the listening socket on fd 0.
 */
#include <string.h>

#include <fcgiapp.h>

int main(void)
{
    FCGX_Request req;

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&req) >= 0) {
        const char *role = FCGX_GetParam("FCGI_ROLE", req.envp);

        if (role != NULL && strcmp(role, "AUTHORIZER") == 0)
            FCGX_PutS("Status: 200 OK\r\n\r\n", req.out);
        else
            FCGX_PutS("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n", req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
