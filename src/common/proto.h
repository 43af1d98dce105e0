/*
 * proto.h - messages on the control socket between the runtime in a traced
 * process and the collector.  SOCK_SEQPACKET, one message per packet, every
 * message starts with its size and only grows at the end.
 *
 * record:  the collector listens on the path in $HEAPTRACE_SESSION; the
 *          runtime connects at its first allocation and sends HELLO; the
 *          collector answers SESSION with the region memfd and an eventfd
 *          (SCM_RIGHTS), or SESSION with status HT_PROTO_NOT_TRACED.
 */
#ifndef HT_PROTO_H
#define HT_PROTO_H

#include <stdint.h>

#define HT_PROTO_MAGIC 0x48545043u /* "HTPC" */
#define HT_PROTO_VERSION 1
#define HT_ENV_SESSION "HEAPTRACE_SESSION"

enum ht_proto_type { HT_MSG_HELLO = 1, HT_MSG_SESSION = 2 };
enum ht_proto_status { HT_PROTO_OK = 0, HT_PROTO_NOT_TRACED = 1 };

typedef struct ht_msg_hello {
    uint32_t size, magic, version, type;
    uint32_t pid, ppid;
    uint64_t runtime_version;
} ht_msg_hello;

typedef struct ht_msg_session {
    uint32_t size, magic, version, type;
    uint32_t status, _pad;
    uint64_t shm_size; /* bytes to map from the memfd */
} ht_msg_session;

#endif
