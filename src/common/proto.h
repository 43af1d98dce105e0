/*
 * proto.h - messages on the control socket between the runtime in a traced
 * process and the collector.  SOCK_SEQPACKET, one message per packet, every
 * message starts with its size and only grows at the end.
 *
 * record:  the collector listens on the path in $HEAPTRACE_SESSION; the
 *          runtime connects at its first allocation and sends HELLO; the
 *          collector answers SESSION with the region memfd and an eventfd
 *          (SCM_RIGHTS), or SESSION with status HT_PROTO_NOT_TRACED.
 * attach:  the runtime of every process listens on <control dir>/<pid>.sock
 *          (see ctl.h).  A client sends REQUEST: QUERY gets STATUS, DETACH
 *          gets REPLY, ATTACH gets HELLO and the handshake above goes on
 *          over that connection, which then stays the session's.  On the
 *          session connection the collector may send REQUEST STOP; the
 *          runtime sends EXIT when the process exits and END once it has
 *          stopped writing (detach, STOP), then closes.
 */
#ifndef HT_PROTO_H
#define HT_PROTO_H

#include <stdint.h>

#define HT_PROTO_MAGIC 0x48545043u /* "HTPC" */
#define HT_PROTO_VERSION 1
#define HT_ENV_SESSION "HEAPTRACE_SESSION"
#define HT_ENV_RUNTIME_DIR "HEAPTRACE_RUNTIME_DIR"

enum ht_proto_type {
    HT_MSG_HELLO = 1,   /* runtime -> collector: who I am */
    HT_MSG_SESSION = 2, /* collector -> runtime: the region (+ memfd, eventfd) */
    HT_MSG_REQUEST = 3, /* client -> runtime endpoint: ht_ctl_op */
    HT_MSG_REPLY = 4,   /* runtime -> client: status */
    HT_MSG_STATUS = 5,  /* runtime -> client: answer to HT_OP_QUERY */
    HT_MSG_END = 6,     /* runtime -> collector: session over, nothing more is written */
    HT_MSG_EXIT = 7,    /* runtime -> collector: the process is exiting with a status */
};
enum ht_proto_status {
    HT_PROTO_OK = 0,
    HT_PROTO_NOT_TRACED = 1, /* collector: this process is not part of the session */
    HT_PROTO_DENIED = 2,     /* endpoint: peer of another user */
    HT_PROTO_BUSY = 3,       /* endpoint: a session is already recording */
    HT_PROTO_NOT_TRACING = 4,/* endpoint: detach without a session */
    HT_PROTO_BAD = 5,        /* endpoint: malformed request */
};
enum ht_ctl_op { HT_OP_ATTACH = 1, HT_OP_DETACH = 2, HT_OP_QUERY = 3, HT_OP_STOP = 4 };
enum ht_end_reason { HT_END_DETACHED = 1, HT_END_COLLECTOR_GONE = 2, HT_END_STOPPED = 3 };
#define HT_SESS_FOLLOW_FORKS 1u /* ht_msg_session.flags: forked children join too */

typedef struct ht_msg_hello {
    uint32_t size, magic, version, type;
    uint32_t pid, ppid;
    uint64_t runtime_version;
} ht_msg_hello;

typedef struct ht_msg_session {
    uint32_t size, magic, version, type;
    uint32_t status, flags;
    uint64_t shm_size; /* bytes to map from the memfd */
} ht_msg_session;

/* REQUEST (op), REPLY (status), END (op = reason), EXIT (status = wait
 * status as exit() got it) share this shape. */
typedef struct ht_msg_ctl {
    uint32_t size, magic, version, type;
    uint32_t op, status;
} ht_msg_ctl;

typedef struct ht_msg_status {
    uint32_t size, magic, version, type;
    uint32_t status, pid;
    uint32_t tracing, collector_pid;
    uint32_t subbufs_in_use, subbufs_total;
    uint64_t events, lost, bytes, subbufs_written;
    char trace[256];
} ht_msg_status;

static inline void ht_msg_init(void *m, uint32_t size, uint32_t type)
{
    uint32_t *w = (uint32_t *)m;
    w[0] = size;
    w[1] = HT_PROTO_MAGIC;
    w[2] = HT_PROTO_VERSION;
    w[3] = type;
}

static inline int ht_msg_ok(const void *m, long got, uint32_t size, uint32_t type)
{
    const uint32_t *w = (const uint32_t *)m;
    return got >= (long)size && w[0] >= size && w[1] == HT_PROTO_MAGIC && w[3] == type;
}

#endif
