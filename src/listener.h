/* listener.h - placeholder */
#ifndef RL_LISTENER_H
#define RL_LISTENER_H
#endif
