#include "CURing.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

struct vipfarm_uring {
    struct io_uring ring;
};

vipfarm_uring *vipfarm_uring_create(unsigned entries) {
    vipfarm_uring *owner = calloc(1, sizeof(vipfarm_uring));
    if (!owner) return NULL;
    int result = io_uring_queue_init(entries, &owner->ring, 0);
    if (result < 0) {
        free(owner);
        errno = -result;
        return NULL;
    }
    return owner;
}

void vipfarm_uring_destroy(vipfarm_uring *owner) {
    io_uring_queue_exit(&owner->ring);
    free(owner);
}

int vipfarm_uring_queue_write(vipfarm_uring *owner, int fd, const void *data, unsigned length) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&owner->ring);
    if (!sqe) return -1;
    io_uring_prep_write(sqe, fd, data, length, 0);
    return 0;
}

int vipfarm_uring_flush(vipfarm_uring *owner, unsigned count, unsigned *failed) {
    *failed = 0;
    if (count == 0) return 0;
    int submitted = io_uring_submit_and_wait(&owner->ring, count);
    if (submitted < 0) return submitted;
    unsigned done = 0, good = 0;
    while (done < count) {
        struct io_uring_cqe *cqe;
        int result = io_uring_wait_cqe(&owner->ring, &cqe);
        if (result < 0) return result;
        if (cqe->res > 0) good++; else (*failed)++;
        io_uring_cqe_seen(&owner->ring, cqe);
        done++;
    }
    return (int)good;
}
