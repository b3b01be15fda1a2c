/*
 * isolette-probe: a static, shell-free test payload for isolette's
 * integration tests.  It is copied into test images as
 * /usr/local/bin/isolette-probe.
 *
 * Build:  gcc -O2 -Wall -Wextra -static -o isolette-probe probe.c
 *
 * Usage:  isolette-probe SUBCOMMAND [ARGS...]
 *
 *   exit N                 exit with code N
 *   kill-self SIG          die of signal SIG (number or name: ABRT, SIGSEGV, 9...)
 *   sleep S                sleep S seconds (fractions allowed), exit 0
 *   spin [N]               busy-loop forever in N processes (default 1)
 *   memhog N[K|M|G] [S]    mmap N bytes, touch every page, print "ok", hold S s;
 *                          "alloc-failed" on stderr + exit 3 if mmap fails
 *   forkbomb               fork forever (children fork too); sleeps 1 ms after
 *                          a failed fork; gives up (exit 5) only after fork has
 *                          failed continuously for FORKBOMB_GIVE_UP_SECS
 *   write-bytes N [FD]     write N bytes of 'x' to FD (default 1); exit 4 on
 *                          write error (SIGPIPE keeps its default disposition)
 *   id                     "uid=U gid=G euid=E egid=EG groups=N" then
 *                          "hostname=H"
 *   ls PATH                sorted directory entries, one per line
 *   cat PATH               copy file to stdout
 *   write-file PATH TEXT   create/truncate PATH, write TEXT (no newline added)
 *   pids                   numeric /proc entries, sorted, space-separated
 *   connect HOST PORT      IPv4 TCP connect, 1 s timeout: "connected"
 *   daemon [PATH]          double-fork + setsid daemon that sleeps 1000 s then
 *                          writes PATH (default /tmp/isolette-probe-daemon);
 *                          prints the daemon's pid and exits 0 at once
 *   stdin-echo             copy stdin to stdout until EOF
 *   try-syscall NAME       invoke NAME with harmless/invalid args; print "ok"
 *                          or "errno=N <strerror>"; exit 0 either way
 *   env                    environment, one K=V per line
 *   args [ARG...]          each ARG as it arrived, followed by a NUL byte
 *   mono                   CLOCK_MONOTONIC now, in nanoseconds (when the program started)
 *   pwd                    current working directory
 *   fds                    open fds (sorted, space-separated)
 *   syscall-loop N         N getppid() calls (for the seccomp overhead bench)
 *   int80                  a 32-bit getpid through int 0x80; prints "ok N"
 *   x32                    an x32-ABI getpid (nr | 0x40000000); "ok N" or errno
 *   mknod-block PATH       mknod a block device (8,0) at PATH; "ok" or error
 *   chroot-escape          chroot("/tmp") then chdir("..") x64 and chroot(".");
 *                          lists "/" afterwards
 *   setuid0                setuid(0) then setgid(0); "uid=U" and errors
 *   write-exe              open /proc/self/exe for writing; "ok" or error
 *   kill PID SIG           kill(PID, SIG); "ok" or error
 *   tiocsti                TIOCSTI on fd 0, 1, 2 and /dev/tty; "ok" or errors
 *
 * Exit codes: 0 success, 1 operation failed ("error: <strerror>" on stderr),
 * 2 usage error, 3 memhog allocation failure, 4 write error, 5 forkbomb gave up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_ALLOC 3
#define EXIT_WRITE 4
#define EXIT_GAVE_UP 5

#define FORKBOMB_GIVE_UP_SECS 30
#define DEFAULT_DAEMON_PATH "/tmp/isolette-probe-daemon"

extern char **environ;

static const char *prog = "isolette-probe";

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static int fail_errno(void)
{
	fprintf(stderr, "error: %s\n", strerror(errno));
	return EXIT_FAIL;
}

static void need_args(int argc, int n, const char *usage)
{
	if (argc < n)
		usage_error("usage: %s", usage);
}

/* Parse a non-negative integer with an optional K/M/G (powers of 1024) suffix. */
static uint64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	if (*s == '-' || !isdigit((unsigned char)*s))
		usage_error("invalid size: %s", s);
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		usage_error("invalid size: %s", s);
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: usage_error("invalid size: %s", s);
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end != '\0')
		usage_error("invalid size: %s", s);
	if (shift && v > (UINT64_MAX >> shift))
		usage_error("size too large: %s", s);
	return (uint64_t)v << shift;
}

static long parse_long(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0')
		usage_error("invalid number: %s", s);
	return v;
}

static void sleep_secs(double secs)
{
	if (!(secs > 0))
		return;
	struct timespec ts;
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write all of buf; returns 0 or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Copy fd `in` to stdout. Returns exit code. */
static int copy_fd(int in)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno();
		}
		if (n == 0)
			return 0;
		if (write_all(1, buf, (size_t)n) != 0) {
			fprintf(stderr, "error: %s\n", strerror(errno));
			return EXIT_WRITE;
		}
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static int is_number(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* Read numeric entries of a directory into a sorted array; -1 on opendir error.
 * If skip_own_fd, the directory's own fd is excluded. */
static int list_numeric(const char *path, int skip_own_fd, long **out, size_t *count)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int own = dirfd(d);
	size_t n = 0, cap = 64;
	long *v = malloc(cap * sizeof *v);
	if (!v) {
		closedir(d);
		errno = ENOMEM;
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!is_number(e->d_name))
			continue;
		long x = strtol(e->d_name, NULL, 10);
		if (skip_own_fd && x == own)
			continue;
		if (n == cap) {
			cap *= 2;
			long *nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				free(v);
				closedir(d);
				errno = ENOMEM;
				return -1;
			}
			v = nv;
		}
		v[n++] = x;
	}
	closedir(d);
	qsort(v, n, sizeof *v, cmp_long);
	*out = v;
	*count = n;
	return 0;
}

static void print_longs(const long *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf(i ? " %ld" : "%ld", v[i]);
	putchar('\n');
}

/* ---------------------------------------------------------------- signals */

static const struct {
	const char *name;
	int sig;
} signames[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},  {"ILL", SIGILL},
	{"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"IOT", SIGIOT},    {"BUS", SIGBUS},
	{"FPE", SIGFPE},   {"KILL", SIGKILL},     {"USR1", SIGUSR1},  {"SEGV", SIGSEGV},
	{"USR2", SIGUSR2}, {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},  {"TERM", SIGTERM},
#ifdef SIGSTKFLT
	{"STKFLT", SIGSTKFLT},
#endif
	{"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},  {"TSTP", SIGTSTP},
	{"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},    {"XCPU", SIGXCPU},
	{"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},  {"WINCH", SIGWINCH},
	{"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},    {"SYS", SIGSYS},
};

static int parse_signal(const char *s)
{
	if (isdigit((unsigned char)*s)) {
		long v = parse_long(s);
		if (v <= 0 || v >= NSIG)
			usage_error("invalid signal: %s", s);
		return (int)v;
	}
	const char *n = s;
	if (strncasecmp(n, "SIG", 3) == 0)
		n += 3;
	for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
		if (strcasecmp(n, signames[i].name) == 0)
			return signames[i].sig;
	usage_error("unknown signal: %s", s);
	return -1;
}

/* Die of a synchronous fault signal the way a crashing program does.  Faults
 * are force-delivered by the kernel, so this works even when the probe is
 * pid 1 of a pid namespace, where self-sent signals with default disposition
 * are silently dropped.  Returns only if no fault could be produced. */
static void trigger_fault(int sig)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	switch (sig) {
	case SIGSEGV: {
		volatile char *p = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			*p = 1;
		break;
	}
	case SIGBUS: {
		/* Touching a shared mapping beyond the end of a file. */
		int fd = memfd_create("isolette-probe-sigbus", MFD_CLOEXEC);
		if (fd >= 0) {
			volatile char *p = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED)
				(void)*p;
			close(fd);
		}
		break;
	}
#if defined(__x86_64__) || defined(__i386__)
	case SIGFPE: {
		volatile int a = 1, b = 0;
		a = a / b;
		break;
	}
	case SIGILL:
		__asm__ volatile("ud2");
		break;
	case SIGTRAP:
		__asm__ volatile("int3");
		break;
#elif defined(__aarch64__)
	case SIGILL:
		__asm__ volatile("udf #0");
		break;
	case SIGTRAP:
		__asm__ volatile("brk #0");
		break;
#endif
	default:
		break;
	}
}

static int cmd_kill_self(int sig)
{
	/* Don't litter the sandbox's cwd with core files; WTERMSIG is unaffected. */
	struct rlimit rl = {0, 0};
	setrlimit(RLIMIT_CORE, &rl);
	fflush(stdout);
	fflush(stderr);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL); /* fails harmlessly for KILL/STOP */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);

	if (sig == SIGABRT)
		abort(); /* as pid-namespace init, glibc's abort() ends in SIGSEGV */
	trigger_fault(sig);
	raise(sig);
	/* Signals whose default action is to ignore (CHLD, URG, WINCH), stop
	 * signals that were later continued, and anything non-fault when we are
	 * pid 1 of a pid namespace end up here. */
	if (getpid() == 1)
		fprintf(stderr, "%s: still alive after signal %d (pid 1 of a pid namespace ignores "
				"self-sent signals with default disposition)\n", prog, sig);
	else
		fprintf(stderr, "%s: still alive after signal %d\n", prog, sig);
	return EXIT_FAIL;
}

/* --------------------------------------------------------------- commands */

static void spin_forever(void)
{
	volatile unsigned long x = 0;
	for (;;)
		x++;
}

static int cmd_spin(int argc, char **argv)
{
	long n = argc > 2 ? parse_long(argv[2]) : 1;
	fflush(stdout);
	for (long i = 1; i < n; i++) {
		pid_t p = fork();
		if (p < 0)
			fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		if (p == 0)
			break;
	}
	spin_forever();
	return 0;
}

static int cmd_memhog(const char *arg, const char *hold)
{
	uint64_t want = parse_size(arg);
	if (want == 0) {
		puts("ok");
		return 0;
	}
	if (want > SIZE_MAX) {
		fprintf(stderr, "alloc-failed\n");
		return EXIT_ALLOC;
	}
	size_t len = (size_t)want;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "alloc-failed\n");
		return EXIT_ALLOC;
	}
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	for (size_t off = 0; off < len; off += page)
		((volatile char *)p)[off] = 1;
	((volatile char *)p)[len - 1] = 1;
	puts("ok");
	fflush(stdout);
	if (hold) {
		double secs = strtod(hold, NULL);
		struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int cmd_forkbomb(void)
{
	fflush(stdout);
	fflush(stderr);
	double failing_since = 0;
	for (;;) {
		pid_t p = fork();
		if (p >= 0) {
			/* Parent and child both keep forking. */
			failing_since = 0;
			continue;
		}
		double t = now_mono();
		if (failing_since == 0)
			failing_since = t;
		else if (t - failing_since >= FORKBOMB_GIVE_UP_SECS)
			_exit(EXIT_GAVE_UP);
		sleep_secs(0.001);
	}
}

static int cmd_write_bytes(int argc, char **argv)
{
	uint64_t n = parse_size(argv[2]);
	int fd = argc > 3 ? (int)parse_long(argv[3]) : 1;
	static char buf[65536];
	memset(buf, 'x', sizeof buf);
	while (n > 0) {
		size_t chunk = n < sizeof buf ? (size_t)n : sizeof buf;
		if (write_all(fd, buf, chunk) != 0) {
			fprintf(stderr, "error: %s\n", strerror(errno));
			return EXIT_WRITE;
		}
		n -= chunk;
	}
	return 0;
}

static int cmd_id(void)
{
	int ngroups = getgroups(0, NULL);
	struct utsname u;
	if (uname(&u) != 0)
		return fail_errno();
	printf("uid=%u gid=%u euid=%u egid=%u groups=%d\n", (unsigned)getuid(), (unsigned)getgid(),
	       (unsigned)geteuid(), (unsigned)getegid(), ngroups);
	printf("hostname=%s\n", u.nodename);
	return 0;
}

static int cmd_ls(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return fail_errno();
	size_t n = 0, cap = 64;
	char **names = malloc(cap * sizeof *names);
	struct dirent *e;
	errno = 0;
	while (names && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap *= 2;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn) {
				names = NULL;
				break;
			}
			names = nn;
		}
		if (!(names[n++] = strdup(e->d_name)))
			names = NULL;
	}
	if (!names) {
		errno = ENOMEM;
		return fail_errno();
	}
	if (errno != 0)
		return fail_errno();
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++)
		puts(names[i]);
	return 0;
}

static int cmd_cat(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno();
	int rc = copy_fd(fd);
	close(fd);
	return rc;
}

static int cmd_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail_errno();
	if (write_all(fd, text, strlen(text)) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return fail_errno();
	}
	if (close(fd) != 0)
		return fail_errno();
	return 0;
}

static int cmd_pids(void)
{
	long *v;
	size_t n;
	if (list_numeric("/proc", 0, &v, &n) != 0)
		return fail_errno();
	print_longs(v, n);
	return 0;
}

static int cmd_fds(void)
{
	long *v;
	size_t n;
	if (list_numeric("/proc/self/fd", 1, &v, &n) != 0)
		return fail_errno();
	print_longs(v, n);
	return 0;
}

static int cmd_connect(const char *host, const char *port_s)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	long port = parse_long(port_s);
	if (port < 0 || port > 65535)
		usage_error("invalid port: %s", port_s);
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		usage_error("invalid IPv4 address: %s", host);

	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail_errno();
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (errno != EINPROGRESS)
			return fail_errno();
		struct pollfd pfd = {.fd = s, .events = POLLOUT};
		double deadline = now_mono() + 1.0;
		int r;
		for (;;) {
			int ms = (int)((deadline - now_mono()) * 1000.0);
			if (ms < 0)
				ms = 0;
			r = poll(&pfd, 1, ms);
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		if (r < 0)
			return fail_errno();
		if (r == 0) {
			errno = ETIMEDOUT;
			return fail_errno();
		}
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			return fail_errno();
		if (err != 0) {
			errno = err;
			return fail_errno();
		}
	}
	close(s);
	puts("connected");
	return 0;
}

static int cmd_daemon(const char *path)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return fail_errno();
	fflush(stdout);
	fflush(stderr);
	pid_t p = fork();
	if (p < 0)
		return fail_errno();
	if (p == 0) {
		close(pfd[0]);
		setsid();
		pid_t q = fork();
		if (q < 0)
			_exit(EXIT_FAIL);
		if (q > 0) {
			/* Intermediate: report the daemon's pid and vanish. */
			int32_t pid = (int32_t)q;
			(void)!write(pfd[1], &pid, sizeof pid);
			_exit(0);
		}
		/* The daemon itself: detach from all inherited fds. */
		close(pfd[1]);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		if (chdir("/") != 0) {
			/* ignore */
		}
		for (int fd = 0; fd < 3; fd++)
			close(fd);
		close_range(3, ~0U, 0);
		int nul = open("/dev/null", O_RDWR);
		if (nul == 0) {
			dup2(0, 1);
			dup2(0, 2);
		}
		sleep_secs(1000);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			(void)!write(fd, "daemon survived\n", 16);
			close(fd);
		}
		_exit(0);
	}
	close(pfd[1]);
	int32_t pid = -1;
	ssize_t n;
	do
		n = read(pfd[0], &pid, sizeof pid);
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	int status;
	while (waitpid(p, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof pid) {
		fprintf(stderr, "error: daemon fork failed\n");
		return EXIT_FAIL;
	}
	printf("%d\n", (int)pid);
	return 0;
}

/* ------------------------------------------------------------ try-syscall */

static long try_syscall(const char *name, int *known)
{
	*known = 1;
	if (strcmp(name, "ptrace") == 0)
		/* No process 0 to peek at: ESRCH when allowed. */
		return syscall(SYS_ptrace, PTRACE_PEEKUSER, 0, 0, 0);
	if (strcmp(name, "mount") == 0)
		/* Nonexistent target: ENOENT when allowed. */
		return syscall(SYS_mount, "none", "/nonexistent-isolette-probe", "tmpfs", 0UL, NULL);
	if (strcmp(name, "unshare") == 0)
		/* No flags: a no-op, "ok" when allowed. */
		return syscall(SYS_unshare, 0);
	if (strcmp(name, "setns") == 0)
		/* Bad fd: EBADF when allowed. */
		return syscall(SYS_setns, -1, 0);
	if (strcmp(name, "bpf") == 0)
		/* Invalid command, no attr: EINVAL (or EPERM via sysctl) when allowed. */
		return syscall(SYS_bpf, -1, NULL, 0);
	if (strcmp(name, "perf_event_open") == 0)
		/* NULL attr: EFAULT when allowed. */
		return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0UL);
	if (strcmp(name, "io_uring_setup") == 0)
		/* NULL params: EFAULT (or EPERM via sysctl) when allowed. */
		return syscall(SYS_io_uring_setup, 0, NULL);
	if (strcmp(name, "userfaultfd") == 0) {
		/* UFFD_USER_MODE_ONLY (1) is permitted unprivileged: "ok" when allowed. */
		long r = syscall(SYS_userfaultfd, O_CLOEXEC | 1);
		if (r >= 0)
			close((int)r);
		return r;
	}
	if (strcmp(name, "kexec_load") == 0)
		/* Too many segments + bogus arch flags: EPERM/EINVAL, never loads. */
		return syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0xffff0000UL);
	if (strcmp(name, "keyctl") == 0)
		/* Invalid operation: EOPNOTSUPP when allowed. */
		return syscall(SYS_keyctl, 0x7fffffff, 0, 0, 0, 0);
	if (strcmp(name, "chroot") == 0)
		/* Nonexistent directory: ENOENT when allowed. */
		return syscall(SYS_chroot, "/nonexistent-isolette-probe");
	if (strcmp(name, "getppid") == 0)
		/* Control: always "ok" unless blocked. */
		return syscall(SYS_getppid);
	*known = 0;
	return -1;
}

static int cmd_try_syscall(const char *name)
{
	int known;
	errno = 0;
	long r = try_syscall(name, &known);
	if (!known)
		usage_error("unknown syscall for try-syscall: %s", name);
	if (r >= 0) {
		puts("ok");
	} else {
		int e = errno;
		printf("errno=%d %s\n", e, strerror(e));
	}
	return 0;
}

/* ------------------------------------------------------- hostile programs */

static int cmd_syscall_loop(const char *n_s)
{
	long n = parse_long(n_s);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	return 0;
}

static int cmd_int80(void)
{
	long ret;
	/* __NR_getpid is 20 on i386. */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	printf("ok %ld\n", ret);
	return 0;
}

static int cmd_x32(void)
{
	long r = syscall(0x40000000L | SYS_getpid);
	if (r < 0)
		printf("errno=%d %s\n", errno, strerror(errno));
	else
		printf("ok %ld\n", r);
	return 0;
}

static int report(long r)
{
	if (r < 0) {
		printf("error: %s\n", strerror(errno));
		return 1;
	}
	puts("ok");
	return 0;
}

static int cmd_mknod_block(const char *path)
{
	return report(mknod(path, S_IFBLK | 0600, makedev(8, 0)));
}

static int cmd_chroot_escape(void)
{
	if (chroot("/tmp") < 0) {
		printf("error: chroot: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < 64; i++)
		if (chdir("..") < 0)
			break;
	if (chroot(".") < 0) {
		printf("error: chroot .: %s\n", strerror(errno));
		return 1;
	}
	return cmd_ls("/");
}

static int cmd_setuid0(void)
{
	int r1 = setuid(0);
	int e1 = errno;
	int r2 = setgid(0);
	int e2 = errno;
	printf("uid=%u setuid=%s setgid=%s\n", getuid(), r1 == 0 ? "ok" : strerror(e1), r2 == 0 ? "ok" : strerror(e2));
	return r1 == 0 || r2 == 0 ? 0 : 1;
}

static int cmd_write_exe(void)
{
	return report(open("/proc/self/exe", O_WRONLY));
}

static int cmd_kill(const char *pid_s, const char *sig_s)
{
	return report(kill((pid_t)parse_long(pid_s), parse_signal(sig_s)));
}

static int cmd_tiocsti(void)
{
	int any = 0;
	char c = 'x';
	for (int fd = 0; fd <= 2; fd++) {
		if (ioctl(fd, TIOCSTI, &c) == 0) {
			printf("fd %d: ok\n", fd);
			any = 1;
		} else {
			printf("fd %d: %s\n", fd, strerror(errno));
		}
	}
	int t = open("/dev/tty", O_RDWR);
	if (t < 0) {
		printf("/dev/tty: %s\n", strerror(errno));
	} else if (ioctl(t, TIOCSTI, &c) == 0) {
		printf("/dev/tty: ok\n");
		any = 1;
	} else {
		printf("/dev/tty: %s\n", strerror(errno));
	}
	return any ? 0 : 1;
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (argc < 2)
		usage_error("usage: %s SUBCOMMAND [ARGS...]", "isolette-probe");
	const char *cmd = argv[1];

	if (strcmp(cmd, "exit") == 0) {
		need_args(argc, 3, "exit N");
		exit((int)parse_long(argv[2]));
	}
	if (strcmp(cmd, "kill-self") == 0) {
		need_args(argc, 3, "kill-self SIG");
		return cmd_kill_self(parse_signal(argv[2]));
	}
	if (strcmp(cmd, "sleep") == 0) {
		need_args(argc, 3, "sleep SECONDS");
		char *end;
		double s = strtod(argv[2], &end);
		if (end == argv[2] || *end != '\0' || s < 0)
			usage_error("invalid duration: %s", argv[2]);
		sleep_secs(s);
		return 0;
	}
	if (strcmp(cmd, "spin") == 0)
		return cmd_spin(argc, argv);
	if (strcmp(cmd, "memhog") == 0) {
		need_args(argc, 3, "memhog BYTES[K|M|G] [HOLD_SECS]");
		return cmd_memhog(argv[2], argc > 3 ? argv[3] : NULL);
	}
	if (strcmp(cmd, "forkbomb") == 0)
		return cmd_forkbomb();
	if (strcmp(cmd, "write-bytes") == 0) {
		need_args(argc, 3, "write-bytes N [FD]");
		return cmd_write_bytes(argc, argv);
	}
	if (strcmp(cmd, "id") == 0)
		return cmd_id();
	if (strcmp(cmd, "ls") == 0) {
		need_args(argc, 3, "ls PATH");
		return cmd_ls(argv[2]);
	}
	if (strcmp(cmd, "cat") == 0) {
		need_args(argc, 3, "cat PATH");
		return cmd_cat(argv[2]);
	}
	if (strcmp(cmd, "write-file") == 0) {
		need_args(argc, 4, "write-file PATH TEXT");
		return cmd_write_file(argv[2], argv[3]);
	}
	if (strcmp(cmd, "pids") == 0)
		return cmd_pids();
	if (strcmp(cmd, "connect") == 0) {
		need_args(argc, 4, "connect HOST PORT");
		return cmd_connect(argv[2], argv[3]);
	}
	if (strcmp(cmd, "daemon") == 0)
		return cmd_daemon(argc > 2 ? argv[2] : DEFAULT_DAEMON_PATH);
	if (strcmp(cmd, "stdin-echo") == 0)
		return copy_fd(0);
	if (strcmp(cmd, "try-syscall") == 0) {
		need_args(argc, 3, "try-syscall NAME");
		return cmd_try_syscall(argv[2]);
	}
	if (strcmp(cmd, "mono") == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
		return 0;
	}
	if (strcmp(cmd, "args") == 0) {
		for (int i = 2; i < argc; i++)
			if (write_all(1, argv[i], strlen(argv[i]) + 1) != 0)
				return EXIT_WRITE;
		return 0;
	}
	if (strcmp(cmd, "env") == 0) {
		for (char **e = environ; e && *e; e++)
			puts(*e);
		return 0;
	}
	if (strcmp(cmd, "pwd") == 0) {
		char buf[4096];
		if (!getcwd(buf, sizeof buf))
			return fail_errno();
		puts(buf);
		return 0;
	}
	if (strcmp(cmd, "syscall-loop") == 0) {
		need_args(argc, 3, "syscall-loop N");
		return cmd_syscall_loop(argv[2]);
	}
	if (strcmp(cmd, "int80") == 0)
		return cmd_int80();
	if (strcmp(cmd, "x32") == 0)
		return cmd_x32();
	if (strcmp(cmd, "mknod-block") == 0) {
		need_args(argc, 3, "mknod-block PATH");
		return cmd_mknod_block(argv[2]);
	}
	if (strcmp(cmd, "chroot-escape") == 0)
		return cmd_chroot_escape();
	if (strcmp(cmd, "setuid0") == 0)
		return cmd_setuid0();
	if (strcmp(cmd, "write-exe") == 0)
		return cmd_write_exe();
	if (strcmp(cmd, "kill") == 0) {
		need_args(argc, 4, "kill PID SIG");
		return cmd_kill(argv[2], argv[3]);
	}
	if (strcmp(cmd, "tiocsti") == 0)
		return cmd_tiocsti();
	if (strcmp(cmd, "fds") == 0)
		return cmd_fds();

	fprintf(stderr, "%s: unknown subcommand: %s\n", prog, cmd);
	return EXIT_USAGE;
}
