#ifndef VIPFARM_CURING_SHIM_H
#define VIPFARM_CURING_SHIM_H
// liburing for TapEngine's batched TAP writes. The ring lives in C memory and Swift holds it as an opaque pointer,
// because struct io_uring is full of unions and kernel-shared pointers that Swift should not copy. Only TapEngine
// imports this module.
#include <liburing.h>
#include <errno.h>
#include <stdlib.h>

// A ring with `entries` submission slots, or NULL with errno set.
static inline struct io_uring *vipfarm_uring_create(unsigned entries) {
    struct io_uring *ring = calloc(1, sizeof(struct io_uring));
    if (!ring) return NULL;
    int result = io_uring_queue_init(entries, ring, 0);
    if (result < 0) {
        free(ring);
        errno = -result;
        return NULL;
    }
    return ring;
}

static inline void vipfarm_uring_destroy(struct io_uring *ring) {
    io_uring_queue_exit(ring);
    free(ring);
}

// Queues a write of `length` bytes at `data` to `fd`; -1 when the submission queue is full.
static inline int vipfarm_uring_queue_write(struct io_uring *ring, int fd, const void *data, unsigned length) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) return -1;
    io_uring_prep_write(sqe, fd, data, length, 0);
    return 0;
}

// Submits the queued writes and waits for all `count` of them; returns how many completed with the full length, and
// stores the failures in *failed. Returns -errno if the submission itself failed.
static inline int vipfarm_uring_flush(struct io_uring *ring, unsigned count, unsigned *failed) {
    *failed = 0;
    if (count == 0) return 0;
    int submitted = io_uring_submit_and_wait(ring, count);
    if (submitted < 0) return submitted;
    unsigned done = 0, good = 0;
    while (done < count) {
        struct io_uring_cqe *cqe;
        int result = io_uring_wait_cqe(ring, &cqe);
        if (result < 0) return result;
        if (cqe->res > 0) good++; else (*failed)++;
        io_uring_cqe_seen(ring, cqe);
        done++;
    }
    return (int)good;
}
#endif
