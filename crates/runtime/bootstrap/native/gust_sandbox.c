/*
 * gust-sandbox: starts one function instance confined (crates/runtime/src/sandbox/mod.rs).
 *
 * Gust spawns this small static executable (posix_spawn, no fork of Gust) in place of the
 * function's program. It joins the instance's cgroups, creates the namespaces, builds a
 * minimal root file system, and runs the function under a pid-1 "init" that reaps zombies:
 *
 *   gust-sandbox (host pid ns, waits; relays the exit status to Gust)
 *     └─ init (pid 1 of a new pid namespace, new mount and IPC namespaces)
 *          └─ the function (unprivileged uid, no capabilities, no_new_privs, seccomp)
 *
 * When the function exits, init exits with its status, which ends every process left in the
 * namespace (the kernel kills them when a pid namespace's init dies).
 *
 * Options (all before `--`; paths are host paths unless said):
 *   --root DIR          an empty directory to mount the new root (a small tmpfs) on
 *   --ro SRC[=DST]      bind SRC read-only at DST (default: the same path); missing SRC is skipped;
 *                       a symbolic link is recreated as the same link
 *   --task SRC          bind SRC read-only at /var/task (not recursive)
 *   --mask PATH         cover PATH (inside the new root) with an empty read-only directory
 *   --tmp BYTES         size of the private writable /tmp (tmpfs)
 *   --cgroup DIR        join the cgroup DIR (writes our pid to DIR/cgroup.procs); repeatable
 *   --uid N --gid N     run the function as N (Gust runs as root)
 *   --userns            create a user namespace mapping our own uid/gid (Gust is not root)
 *   --net-none          a new network namespace with only a loopback interface
 *   --netns FD          join the network namespace open as FD first (`network = "none"`: Gust
 *                       made it, with the instance's Runtime API and platform API listeners
 *                       inside; sandbox/netns.rs); FD 0 is then replaced by /dev/null
 *   --seccomp FILE      seccomp programs to load before exec: [u32 count][count * 8 bytes]...
 *   --nofile N          RLIMIT_NOFILE; --nproc N RLIMIT_NPROC (per-instance uid only)
 *   --cwd DIR           working directory inside (default /var/task)
 *   --control           stdin is a control socket (prewarmed spares): init keeps the host root
 *                       at a root-only path until Gust sends "task SRC[\tMASK...]\n", binds SRC
 *                       at /var/task, drops the host root and answers "ok\n" (or "error ...\n")
 *   --exec-later        with --control, and no PROGRAM: init starts the function only when Gust
 *                       sends "exec N\n" and N bytes: argv strings, an empty string, then the
 *                       environment's "K=V" strings, each NUL-terminated (a prewarmed
 *                       sandbox for `provided` functions: namespaces, mounts and, above all, the
 *                       cgroup move, which can wait ~15 ms for an RCU grace period, are paid
 *                       before the cold start)
 *
 * Errors before the function starts are printed to stderr as "gust-sandbox: ..." (Gust's log
 * for the instance) and end the process with status 125.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
struct mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

#define MAX_LIST 64
#define EXIT_SETUP 125

extern char **environ;

struct bind {
    const char *src, *dst;
};

static struct {
    const char *root, *task, *cwd, *seccomp;
    struct bind ro[MAX_LIST];
    int n_ro;
    const char *mask[MAX_LIST];
    int n_mask;
    const char *cgroup[MAX_LIST];
    int n_cgroup;
    unsigned long long tmp_bytes;
    long uid, gid, nofile, nproc, netns;
    int userns, net_none, control, exec_later;
    char **argv, **envp;
} opt = {.uid = -1, .gid = -1, .nofile = -1, .nproc = -1, .netns = -1};

/* The seccomp programs, read before the root changes. */
static struct sock_fprog filters[4];
static int n_filters;

static void die(const char *fmt, ...) {
    int e = errno;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    n += snprintf(buf + n, sizeof buf - n, ": %s\n", strerror(e));
    if (write(2, "gust-sandbox: ", 14) < 0 || write(2, buf, n) < 0) {
    }
    _exit(EXIT_SETUP);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("open %s", path);
    ssize_t len = (ssize_t)strlen(text);
    if (write(fd, text, len) != len) die("write %s", path);
    close(fd);
}

static void mkdirs(const char *path, mode_t mode) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        die("mkdir %s", path);
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) < 0 && errno != EEXIST) die("mkdir %s", buf);
            *p = '/';
        }
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST) die("mkdir %s", buf);
}

static void in_root(char *out, size_t size, const char *dst) {
    if (snprintf(out, size, "%s%s", opt.root, dst) >= (int)size) {
        errno = ENAMETOOLONG;
        die("path %s", dst);
    }
}

/* Makes a bind mount read-only, nosuid, nodev (recursively where the kernel can). */
static void make_read_only(const char *path, int recursive) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof attr) == 0) return;
    if (errno != ENOSYS && errno != EINVAL) die("mount_setattr %s", path);
    /* Kernels before 5.12: remount the top mount read-only. */
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
    if (mount(NULL, path, NULL, flags, NULL) < 0) die("remount %s read-only", path);
}

static void bind_at(const char *src, const char *dst, int recursive) {
    char target[4096];
    struct stat st;
    if (lstat(src, &st) < 0) {
        if (errno == ENOENT) return;
        die("stat %s", src);
    }
    in_root(target, sizeof target, dst);
    if (S_ISLNK(st.st_mode)) {
        char link[4096];
        ssize_t n = readlink(src, link, sizeof link - 1);
        if (n < 0) die("readlink %s", src);
        link[n] = 0;
        char *slash = strrchr(target, '/');
        *slash = 0;
        mkdirs(target, 0755);
        *slash = '/';
        if (symlink(link, target) < 0 && errno != EEXIST) die("symlink %s", target);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        mkdirs(target, 0755);
    } else {
        char *slash = strrchr(target, '/');
        *slash = 0;
        mkdirs(target, 0755);
        *slash = '/';
        int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) die("create %s", target);
        if (fd >= 0) close(fd);
    }
    if (mount(src, target, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL) < 0) die("bind %s", src);
    make_read_only(target, recursive);
}

static void mount_tmpfs(const char *target, const char *data, unsigned long flags) {
    if (mount("tmpfs", target, "tmpfs", flags, data) < 0) die("mount tmpfs on %s", target);
}

static void mask(const char *path) {
    char target[4096];
    struct stat st;
    in_root(target, sizeof target, path);
    if (lstat(target, &st) < 0) return;
    if (S_ISDIR(st.st_mode)) {
        mount_tmpfs(target, "size=4k,mode=0555", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    } else if (mount("/dev/null", target, NULL, MS_BIND, NULL) < 0) {
        die("mask %s", path);
    }
}

static void setup_dev(void) {
    char dev[4096], path[4200];
    in_root(dev, sizeof dev, "/dev");
    mkdirs(dev, 0755);
    mount_tmpfs(dev, "size=64k,mode=0755", MS_NOSUID | MS_NOEXEC);
    static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        char src[64];
        snprintf(src, sizeof src, "/dev/%s", nodes[i]);
        snprintf(path, sizeof path, "%s/%s", dev, nodes[i]);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0) die("create %s", path);
        close(fd);
        if (mount(src, path, NULL, MS_BIND, NULL) < 0 && errno != ENOENT) die("bind %s", src);
    }
    static const char *links[][2] = {
        {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        snprintf(path, sizeof path, "%s/%s", dev, links[i][1]);
        if (symlink(links[i][0], path) < 0) die("symlink %s", path);
    }
    snprintf(path, sizeof path, "%s/shm", dev);
    mkdirs(path, 01777);
    mount_tmpfs(path, "size=64m,mode=1777", MS_NOSUID | MS_NODEV);
}

static void read_seccomp(const char *file) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open %s", file);
    struct stat st;
    if (fstat(fd, &st) < 0) die("stat %s", file);
    unsigned char *buf = malloc(st.st_size + 1);
    if (!buf) die("memory");
    ssize_t got = 0;
    while (got < st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0) die("read %s", file);
        got += n;
    }
    close(fd);
    size_t at = 0;
    while (at + 4 <= (size_t)st.st_size && n_filters < 3) {
        uint32_t count;
        memcpy(&count, buf + at, 4);
        at += 4;
        if (count == 0 || count > 4096 || at + (size_t)count * 8 > (size_t)st.st_size) {
            errno = EINVAL;
            die("bad seccomp program in %s", file);
        }
        filters[n_filters].len = (unsigned short)count;
        filters[n_filters].filter = (struct sock_filter *)(buf + at);
        n_filters++;
        at += (size_t)count * 8;
    }
}

/* x86-64's x32 ABI numbers (bit 30) reach the same kernel calls under other numbers; refuse
 * them all (nothing a function runs uses x32). */
static void deny_x32(void) {
#if defined(__x86_64__)
    static struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    static struct sock_fprog prog = {.len = sizeof code / sizeof *code, .filter = code};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) die("seccomp (x32)");
#endif
}

static int cap_last(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    char buf[16] = {0};
    int last = CAP_LAST_CAP;
    if (fd >= 0) {
        if (read(fd, buf, sizeof buf - 1) > 0) last = atoi(buf);
        close(fd);
    }
    return last;
}

/* In the function's process, just before exec: identity, limits, privileges, seccomp. */
static void become_function(int last_cap) {
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    if (opt.nofile > 0) {
        struct rlimit r = {(rlim_t)opt.nofile, (rlim_t)opt.nofile};
        if (setrlimit(RLIMIT_NOFILE, &r) < 0) die("RLIMIT_NOFILE");
    }
    for (int c = 0; c <= last_cap; c++) {
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) die("drop capability %d", c);
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (opt.uid >= 0) {
        if (setgroups(0, NULL) < 0) die("setgroups");
        if (setresgid(opt.gid, opt.gid, opt.gid) < 0) die("setgid %ld", opt.gid);
        if (opt.nproc > 0) {
            struct rlimit r = {(rlim_t)opt.nproc, (rlim_t)opt.nproc};
            if (setrlimit(RLIMIT_NPROC, &r) < 0) die("RLIMIT_NPROC");
        }
        if (setresuid(opt.uid, opt.uid, opt.uid) < 0) die("setuid %ld", opt.uid);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
    if (chdir(opt.cwd ? opt.cwd : "/var/task") < 0) die("chdir %s", opt.cwd ? opt.cwd : "/var/task");
    deny_x32();
    for (int i = 0; i < n_filters; i++) {
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filters[i]) < 0) die("seccomp");
    }
    execve(opt.argv[0], opt.argv, opt.envp ? opt.envp : environ);
    fprintf(stderr, "gust-sandbox: cannot run %s: %s\n", opt.argv[0], strerror(errno));
    _exit(127);
}

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("SIOCSIFFLAGS lo");
    close(s);
}

/* Binds the function's code at /var/task, masks, and lets go of the host root (spares). */
static int take_task(char *line, char *err, size_t errsize) {
    char *src = line, *tab = strchr(line, '\t');
    if (tab) *tab = 0;
    char from[4096];
    if (snprintf(from, sizeof from, "/.gust-host/root%s", src) >= (int)sizeof from) {
        snprintf(err, errsize, "path too long");
        return -1;
    }
    if (mount(from, "/var/task", NULL, MS_BIND, NULL) < 0) {
        snprintf(err, errsize, "bind %s: %s", src, strerror(errno));
        return -1;
    }
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/var/task", 0, &attr, sizeof attr) < 0 &&
        mount(NULL, "/var/task", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) {
        snprintf(err, errsize, "read-only /var/task: %s", strerror(errno));
        return -1;
    }
    while (tab) {
        char *m = tab + 1;
        tab = strchr(m, '\t');
        if (tab) *tab = 0;
        struct stat st;
        if (*m && lstat(m, &st) == 0 && S_ISDIR(st.st_mode) &&
            mount("tmpfs", m, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0) {
            snprintf(err, errsize, "mask %s: %s", m, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Lets go of the host root that init kept (spares, and instances with a uid of their own).
 * Detaching a mount tree waits for an RCU grace period (about 10 ms measured here), so it is
 * done after the function's cold start has been answered, not before: until then the tree
 * is in a 0700 directory of root's that the function's own uid cannot enter. */
static int host_root_held;
static void drop_host_root(void) {
    if (!host_root_held) return;
    host_root_held = 0;
    if (umount2("/.gust-host/root", MNT_DETACH) < 0) die("detach the host root");
}

static void reply(int fd, const char *text) {
    if (write(fd, text, strlen(text)) < 0) {
    }
}

static int forward_to = -1;
static void forward(int sig) {
    if (forward_to > 0) kill(forward_to, sig);
}

/* Forks the function (pid 2). */
static pid_t start_function(int devnull, int status_fd, sigset_t *old, int last_cap) {
    pid_t fn = fork();
    if (fn < 0) die("fork");
    if (fn == 0) {
        sigprocmask(SIG_SETMASK, old, NULL);
        dup2(devnull, 0);
        close(status_fd);
        become_function(last_cap);
    }
    forward_to = fn;
    return fn;
}

/* Splits an "exec" blob into argv and envp (NUL-terminated strings; "" ends argv). */
static int parse_exec(char *blob, size_t len) {
    static char *ptrs[4096];
    size_t n = 0, at = 0;
    int in_env = 0;
    if (len == 0 || blob[len - 1] != 0) return -1;
    char **argv_start = ptrs;
    char **env_start = NULL;
    while (at < len && n < sizeof ptrs / sizeof *ptrs - 2) {
        char *str = blob + at;
        size_t l = strlen(str);
        at += l + 1;
        if (!in_env && l == 0) {
            ptrs[n++] = NULL;
            env_start = ptrs + n;
            in_env = 1;
            continue;
        }
        ptrs[n++] = str;
    }
    if (!in_env || argv_start[0] == NULL || at != len) return -1;
    ptrs[n++] = NULL;
    opt.argv = argv_start;
    opt.envp = env_start;
    return 0;
}

/* pid 1: reap everything; answer control commands; end with the function. */
static void run_init(int status_fd) {
    int last_cap = cap_last();
    /* The control socket stays with init; the function reads nothing from stdin. */
    int control = -1;
    if (opt.control) {
        control = fcntl(0, F_DUPFD_CLOEXEC, 3);
        if (control < 0) die("control socket");
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) die("/dev/null");
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &old);
    pid_t fn = opt.exec_later ? -1 : start_function(devnull, status_fd, &old, last_cap);
    if (!opt.control) drop_host_root();
    struct sigaction sa = {.sa_handler = forward};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");
    char line[8192];
    size_t have = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = control, .events = POLLIN}};
        int n = poll(fds, control >= 0 ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[0].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) < 0 && errno != EAGAIN) die("signalfd read");
            int st;
            pid_t p;
            while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
                if (p == fn) {
                    if (write(status_fd, &st, sizeof st) < 0) {
                    }
                    _exit(0);
                }
            }
        }
        if (control >= 0 && fds[1].revents) {
            ssize_t got = read(control, line + have, sizeof line - 1 - have);
            if (got <= 0) {
                close(control);
                control = -1;
                continue;
            }
            have += got;
            line[have] = 0;
            char *nl = strchr(line, '\n');
            if (!nl) {
                if (have >= sizeof line - 1) {
                    reply(control, "error command too long\n");
                    have = 0;
                }
                continue;
            }
            *nl = 0;
            char err[512] = "";
            int done = 1;
            if (strncmp(line, "task ", 5) == 0 && take_task(line + 5, err, sizeof err) == 0) {
                reply(control, "ok\n");
                done = !opt.exec_later;
            } else if (opt.exec_later && fn < 0 && strncmp(line, "exec ", 5) == 0) {
                size_t len = strtoul(line + 5, NULL, 10);
                size_t extra = have - (size_t)(nl + 1 - line);
                char *blob = len > 0 && len < (1 << 20) ? malloc(len) : NULL;
                if (!blob || extra > len) {
                    snprintf(err, sizeof err, "bad exec length");
                } else {
                    memcpy(blob, nl + 1, extra);
                    size_t got_all = extra;
                    while (got_all < len) {
                        ssize_t r = read(control, blob + got_all, len - got_all);
                        if (r <= 0) break;
                        got_all += r;
                    }
                    if (got_all == len && parse_exec(blob, len) == 0) {
                        fn = start_function(devnull, status_fd, &old, last_cap);
                        reply(control, "ok\n");
                        err[0] = 0;
                        free(blob);
                        goto closed;
                    }
                    snprintf(err, sizeof err, "bad exec command");
                }
            }
            if (err[0] || (strncmp(line, "task ", 5) && strncmp(line, "exec ", 5))) {
                char out[600];
                snprintf(out, sizeof out, "error %s\n", err[0] ? err : "unknown command");
                reply(control, out);
                done = 1;
            }
            if (!done) {
                /* Keep what followed the line (Gust waits for each answer, so normally nothing). */
                size_t used = (size_t)(nl + 1 - line);
                memmove(line, line + used, have - used);
                have -= used;
                continue;
            }
        closed:
            close(control);
            control = -1;
            if (fn > 0) drop_host_root();
        }
    }
}

static void build_root(void) {
    char path[4096];
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
    mount_tmpfs(opt.root, "size=1m,mode=0755", MS_NOSUID | MS_NODEV);
    /* /tmp first: read-only binds whose host path lies under /tmp go on top of it. */
    in_root(path, sizeof path, "/tmp");
    mkdirs(path, 01777);
    char data[64];
    snprintf(data, sizeof data, "size=%llu,mode=1777", opt.tmp_bytes ? opt.tmp_bytes : 512ULL << 20);
    mount_tmpfs(path, data, MS_NOSUID | MS_NODEV);
    for (int i = 0; i < opt.n_ro; i++) bind_at(opt.ro[i].src, opt.ro[i].dst, 1);
    in_root(path, sizeof path, "/var/task");
    mkdirs(path, 0755);
    if (opt.task) bind_at(opt.task, "/var/task", 0);
    setup_dev();
    in_root(path, sizeof path, "/proc");
    mkdirs(path, 0555);
    if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
    for (int i = 0; i < opt.n_mask; i++) mask(opt.mask[i]);
    if (chdir(opt.root) < 0) die("chdir %s", opt.root);
    if (opt.control || opt.uid >= 0) {
        /* The host root stays reachable to init only (0700, root's; the function has a uid
         * of its own) until the task is bound or the function started: drop_host_root. */
        if (mkdir(".gust-host", 0700) < 0) die("mkdir .gust-host");
        if (mkdir(".gust-host/root", 0700) < 0) die("mkdir .gust-host/root");
        if (syscall(SYS_pivot_root, ".", ".gust-host/root") < 0) die("pivot_root");
        host_root_held = 1;
    } else {
        if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
        if (umount2(".", MNT_DETACH) < 0) die("detach the host root");
    }
    if (chdir("/") < 0) die("chdir /");
    make_read_only("/", 0);
}

static void map_ids(uid_t uid, gid_t gid) {
    char buf[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(buf, sizeof buf, "%u %u 1", uid, uid);
    write_file("/proc/self/uid_map", buf);
    snprintf(buf, sizeof buf, "%u %u 1", gid, gid);
    write_file("/proc/self/gid_map", buf);
}

static void parse(int argc, char **argv) {
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
#define TAKE()                                   \
    do {                                         \
        if (!v) {                                \
            errno = EINVAL;                      \
            die("%s needs a value", a);          \
        }                                        \
        i++;                                     \
    } while (0)
        if (!strcmp(a, "--root")) { TAKE(); opt.root = v; }
        else if (!strcmp(a, "--task")) { TAKE(); opt.task = v; }
        else if (!strcmp(a, "--cwd")) { TAKE(); opt.cwd = v; }
        else if (!strcmp(a, "--seccomp")) { TAKE(); opt.seccomp = v; }
        else if (!strcmp(a, "--tmp")) { TAKE(); opt.tmp_bytes = strtoull(v, NULL, 10); }
        else if (!strcmp(a, "--uid")) { TAKE(); opt.uid = atol(v); }
        else if (!strcmp(a, "--gid")) { TAKE(); opt.gid = atol(v); }
        else if (!strcmp(a, "--nofile")) { TAKE(); opt.nofile = atol(v); }
        else if (!strcmp(a, "--nproc")) { TAKE(); opt.nproc = atol(v); }
        else if (!strcmp(a, "--netns")) { TAKE(); opt.netns = atol(v); }
        else if (!strcmp(a, "--userns")) opt.userns = 1;
        else if (!strcmp(a, "--net-none")) opt.net_none = 1;
        else if (!strcmp(a, "--control")) opt.control = 1;
        else if (!strcmp(a, "--exec-later")) opt.exec_later = 1;
        else if (!strcmp(a, "--ro") || !strcmp(a, "--mask") || !strcmp(a, "--cgroup")) {
            TAKE();
            int *n = !strcmp(a, "--ro") ? &opt.n_ro : !strcmp(a, "--mask") ? &opt.n_mask : &opt.n_cgroup;
            if (*n >= MAX_LIST) {
                errno = E2BIG;
                die("too many %s", a);
            }
            if (!strcmp(a, "--ro")) {
                char *eq = strchr(v, '=');
                if (eq) {
                    *eq = 0;
                    opt.ro[*n].dst = eq + 1;
                } else {
                    opt.ro[*n].dst = v;
                }
                opt.ro[*n].src = v;
            } else if (!strcmp(a, "--mask")) {
                opt.mask[*n] = v;
            } else {
                opt.cgroup[*n] = v;
            }
            (*n)++;
        } else {
            errno = EINVAL;
            die("unknown option %s", a);
        }
#undef TAKE
    }
    if ((i >= argc && !opt.exec_later) || !opt.root || (opt.exec_later && !opt.control)) {
        errno = EINVAL;
        die("usage: gust-sandbox --root DIR [options] -- PROGRAM [ARGS...] (or --control --exec-later)");
    }
    if (opt.netns >= 0 && (opt.net_none || opt.userns || (opt.netns == 0 && opt.control))) {
        errno = EINVAL;
        die("--netns goes with neither --net-none, --userns nor (as fd 0) --control");
    }
    opt.argv = i < argc ? argv + i : NULL;
}

int main(int argc, char **argv) {
    parse(argc, argv);
    uid_t uid = getuid();
    gid_t gid = getgid();
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    for (int i = 0; i < opt.n_cgroup; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cgroup.procs", opt.cgroup[i]);
        write_file(path, pid);
    }
    if (opt.seccomp) read_seccomp(opt.seccomp);
    if (opt.netns >= 0) {
        /* Before the other namespaces: the function's whole tree is inside. */
        if (setns((int)opt.netns, CLONE_NEWNET) < 0) die("setns (network namespace fd %ld)", opt.netns);
        if (opt.netns == 0) {
            int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (devnull < 0 || dup2(devnull, 0) < 0) die("/dev/null as stdin");
            close(devnull);
        } else {
            close((int)opt.netns);
        }
    }
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC;
    if (opt.userns) flags |= CLONE_NEWUSER;
    if (opt.net_none) flags |= CLONE_NEWNET;
    if (unshare(flags) < 0) die("unshare");
    if (opt.userns) map_ids(uid, gid);
    if (opt.net_none) loopback_up();
    int status[2];
    if (pipe2(status, O_CLOEXEC) < 0) die("pipe");
    pid_t init = fork();
    if (init < 0) die("fork");
    if (init == 0) {
        close(status[0]);
        build_root();
        run_init(status[1]);
    }
    close(status[1]);
    /* The waiter holds nothing of the instance's: its control socket and pipes are init's. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    forward_to = init;
    struct sigaction sa = {.sa_handler = forward};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int st = 0, init_st = 0;
    ssize_t got;
    do got = read(status[0], &st, sizeof st);
    while (got < 0 && errno == EINTR);
    while (waitpid(init, &init_st, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof st) st = init_st; /* init died before the function: report init's end */
    if (WIFSIGNALED(st)) {
        signal(WTERMSIG(st), SIG_DFL);
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        kill(getpid(), WTERMSIG(st));
        _exit(128 + WTERMSIG(st));
    }
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_SETUP);
}
