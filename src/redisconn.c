/* redisconn.c - placeholder until its module lands. */
#include "rl.h"
