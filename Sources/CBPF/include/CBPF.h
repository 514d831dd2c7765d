#ifndef VIPFARM_CBPF_H
#define VIPFARM_CBPF_H
// The bpf() system call for TapEngine's bucket prefilter and kernel delivery, behind plain functions. A C target
// rather than a line in CKernel's shim: <linux/bpf.h> defines an eBPF `struct bpf_insn` that clashes with libpcap's
// classic one, which Swift also sees, so the kernel header stays inside bpf.c. Instructions cross as 8-byte records
// (opcode, registers, offset, immediate), the layout of the kernel's struct. Only TapEngine imports this module.

// An array map of one value of `value_size` bytes that user space maps into memory (BPF_F_MMAPABLE): a file
// descriptor, or -1 with errno set.
int vipfarm_bpf_map_create(unsigned value_size);

// Loads a socket filter of `count` instructions; the verifier's complaint, if any, goes to `log`. A file descriptor,
// or -1 with errno set.
int vipfarm_bpf_socket_filter_load(const void *instructions, unsigned count, char *log, unsigned log_size);

// Loads a traffic-control classifier (BPF_PROG_TYPE_SCHED_CLS, direct action) the same way.
int vipfarm_bpf_classifier_load(const void *instructions, unsigned count, char *log, unsigned log_size);

// Attaches a classifier to `ifindex`'s ingress through a tcx link (Linux 6.6): the link's file descriptor, or -1 with
// errno set. The program stays attached while the descriptor is open, and no longer.
int vipfarm_bpf_tcx_ingress_attach(int program, int ifindex);

// Replaces the program of `link` with `program`, atomically.
int vipfarm_bpf_link_update(int link, int program);

// Runs a loaded program `repeat` times over `frame` (BPF_PROG_TEST_RUN): its return value, or -1 with errno set.
// When `out` is not NULL, the frame as the program left it is copied there (at most `out_size` bytes); when
// `nanoseconds` is not NULL, the kernel's mean time per run goes there, the system call itself left out.
long vipfarm_bpf_test_run(int program, const void *frame, unsigned size, void *out, unsigned out_size,
                          unsigned repeat, unsigned *nanoseconds);
#endif
