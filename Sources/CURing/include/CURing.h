#ifndef VIPFARM_CURING_H
#define VIPFARM_CURING_H
// liburing for TapEngine's batched TAP writes, behind plain functions. This is a C target rather than a
// system-library module map because liburing.h defines _GNU_SOURCE, which changes glibc's types (fd_set) in every
// header it pulls in; Swift would then see two different definitions and refuse to build. Keeping liburing.h inside
// uring.c keeps it away from Swift. Only TapEngine imports this module.

// A ring, opaque to Swift (struct io_uring is full of unions and kernel-shared pointers).
typedef struct vipfarm_uring vipfarm_uring;

// A ring with `entries` submission slots, or NULL with errno set.
vipfarm_uring *vipfarm_uring_create(unsigned entries);

void vipfarm_uring_destroy(vipfarm_uring *ring);

// Queues a write of `length` bytes at `data` to `fd`; -1 when the submission queue is full.
int vipfarm_uring_queue_write(vipfarm_uring *ring, int fd, const void *data, unsigned length);

// Submits the queued writes and waits for all `count` of them; returns how many completed, and stores the failures
// in *failed. Returns -errno if the submission itself failed.
int vipfarm_uring_flush(vipfarm_uring *ring, unsigned count, unsigned *failed);
#endif
