// Runs a program with no sandbox, for bench/languages.py: chroot into ROOT, chdir to
// /out, uid and gid UID, the environment given, and reports the program's own figures on
// stderr as "wall_s cpu_s maxrss_kib" (its rusage from wait4: forked from this small
// static process, so no memory of the caller's is counted).
//   bare ROOT UID COUNT VAR=VALUE... -- ARGV...     (as root; COUNT variables follow UID)
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 5) {
		fputs("usage: bare ROOT UID COUNT VAR=VALUE... ARGV...\n", stderr);
		return 125;
	}
	uid_t uid = (uid_t)atoi(argv[2]);
	int count = atoi(argv[3]);
	char **env = calloc((size_t)count + 1, sizeof *env);
	for (int i = 0; i < count; i++) env[i] = argv[4 + i];
	char **program = argv + 4 + count;
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pid_t pid = fork();
	if (pid == 0) {
		if (chroot(argv[1]) || chdir("/out") || setgroups(0, NULL) || setgid(uid) || setuid(uid)) _exit(126);
		execvpe(program[0], program, env);
		_exit(127);
	}
	int status;
	struct rusage usage;
	if (pid < 0 || wait4(pid, &status, 0, &usage) < 0) return 125;
	clock_gettime(CLOCK_MONOTONIC, &end);
	double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
	double cpu = (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
	             (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
	fprintf(stderr, "%.6f %.6f %ld\n", wall, cpu, usage.ru_maxrss);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
