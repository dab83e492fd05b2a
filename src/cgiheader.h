/* cgiheader.h - placeholder */
#ifndef RL_CGIHEADER_H
#define RL_CGIHEADER_H
#endif
