"""seed_app.py - the seed design of fcgi-ratelimit, re-created for bench/run
(variants f and h-f): a FastAPI application behind uvicorn whose middleware
keeps a fixed window per client in Redis with redis.asyncio, INCR then
EXPIRE on the first request of a window, and answers 429 with a JSON body
carrying the key's TTL when the client is over its limit.

Only Debian's python3-fastapi, python3-uvicorn and python3-redis.

Environment: SEED_REDIS_SOCKET (unix socket path of Redis), SEED_PREFIX
(key prefix, default "seed:"), SEED_LIMIT
(requests per window), SEED_WINDOW (seconds).

    python3 -m uvicorn seed_app:app --uds ... | --host 127.0.0.1 --port N
"""
import os

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

LIMIT = int(os.environ.get("SEED_LIMIT", "60"))
WINDOW = int(os.environ.get("SEED_WINDOW", "60"))
PREFIX = os.environ.get("SEED_PREFIX", "seed:")

app = FastAPI()
pool = aioredis.Redis(unix_socket_path=os.environ["SEED_REDIS_SOCKET"])


@app.middleware("http")
async def ratelimit(request: Request, call_next):
    key = PREFIX + (request.client.host if request.client else "unknown")
    count = await pool.incr(key)
    if count == 1:
        await pool.expire(key, WINDOW)
    if count > LIMIT:
        ttl = await pool.ttl(key)
        return JSONResponse(
            {"message": "call limit reached", "limit": LIMIT, "remaining": 0,
             "window": WINDOW, "ttl": max(int(ttl), 1)},
            status_code=429, headers={"Retry-After": str(max(int(ttl), 1))})
    response = await call_next(request)
    response.headers["X-RateLimit-Limit"] = str(LIMIT)
    response.headers["X-RateLimit-Remaining"] = str(LIMIT - count)
    return response


@app.get("/hello")
async def hello():
    return PlainTextResponse("hello\n")
