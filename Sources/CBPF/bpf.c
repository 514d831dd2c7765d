#include "CBPF.h"
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(struct bpf_insn) == 8, "an instruction is 8 bytes");

// enum bpf_attach_type's tcx ingress (Linux 6.6), newer than Debian 12's headers, which end at BPF_LSM_CGROUP (43):
// after it come BPF_STRUCT_OPS, BPF_NETFILTER, then this.
enum { VIPFARM_BPF_TCX_INGRESS = 46 };

static long bpf(int command, union bpf_attr *attribute) {
    return syscall(__NR_bpf, command, attribute, sizeof *attribute);
}

int vipfarm_bpf_map_create(unsigned value_size) {
    union bpf_attr attribute;
    memset(&attribute, 0, sizeof attribute);
    attribute.map_type = BPF_MAP_TYPE_ARRAY;
    attribute.key_size = 4;
    attribute.value_size = value_size;
    attribute.max_entries = 1;
    attribute.map_flags = BPF_F_MMAPABLE;
    return (int)bpf(BPF_MAP_CREATE, &attribute);
}

static int load(enum bpf_prog_type type, const void *instructions, unsigned count, char *log, unsigned log_size) {
    union bpf_attr attribute;
    memset(&attribute, 0, sizeof attribute);
    attribute.prog_type = type;
    attribute.insns = (unsigned long)instructions;
    attribute.insn_cnt = count;
    attribute.license = (unsigned long)"GPL";
    attribute.log_buf = (unsigned long)log;
    attribute.log_size = log_size;
    attribute.log_level = log_size > 0 ? 1 : 0;
    return (int)bpf(BPF_PROG_LOAD, &attribute);
}

int vipfarm_bpf_socket_filter_load(const void *instructions, unsigned count, char *log, unsigned log_size) {
    return load(BPF_PROG_TYPE_SOCKET_FILTER, instructions, count, log, log_size);
}

int vipfarm_bpf_classifier_load(const void *instructions, unsigned count, char *log, unsigned log_size) {
    return load(BPF_PROG_TYPE_SCHED_CLS, instructions, count, log, log_size);
}

int vipfarm_bpf_tcx_ingress_attach(int program, int ifindex) {
    union bpf_attr attribute;
    memset(&attribute, 0, sizeof attribute);
    attribute.link_create.prog_fd = (unsigned)program;
    attribute.link_create.target_ifindex = (unsigned)ifindex;
    attribute.link_create.attach_type = VIPFARM_BPF_TCX_INGRESS;
    return (int)bpf(BPF_LINK_CREATE, &attribute);
}

int vipfarm_bpf_link_update(int link, int program) {
    union bpf_attr attribute;
    memset(&attribute, 0, sizeof attribute);
    attribute.link_update.link_fd = (unsigned)link;
    attribute.link_update.new_prog_fd = (unsigned)program;
    return (int)bpf(BPF_LINK_UPDATE, &attribute);
}

long vipfarm_bpf_test_run(int program, const void *frame, unsigned size, void *out, unsigned out_size,
                          unsigned repeat, unsigned *nanoseconds) {
    union bpf_attr attribute;
    memset(&attribute, 0, sizeof attribute);
    attribute.test.prog_fd = (unsigned)program;
    attribute.test.data_in = (unsigned long)frame;
    attribute.test.data_size_in = size;
    attribute.test.data_out = (unsigned long)out;
    attribute.test.data_size_out = out ? out_size : 0;
    attribute.test.repeat = repeat;
    if (bpf(BPF_PROG_TEST_RUN, &attribute) != 0) return -1;
    if (nanoseconds) *nanoseconds = attribute.test.duration;
    return (long)attribute.test.retval;
}
