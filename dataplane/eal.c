/*
 * eal.c: what laminad tells DPDK's EAL, so that users never do.
 *
 *  - lcores: lcore 0 is the main lcore (control port, ingress, egress),
 *    allowed on every cpu this process may use; lcores 1.. are worker
 *    slots, LM_DP_LCORES_PER_CPU per worker cpu, each pinned to one cpu
 *    (EAL's --lcores map).  A plan with more stages than cores still runs:
 *    its stages share cpus, and then poll adaptively.
 *  - one --file-prefix per instance (port and pid), --no-pci,
 *    --no-telemetry, and --in-memory (hugepages) or --no-shconf (no
 *    hugepages): several laminads coexist and leave no shared files.
 *  - memory: hugepages when the host has some free on a hugetlbfs mount;
 *    else, as root with --hugepages auto, reserve them (nr_hugepages) and
 *    mount hugetlbfs in laminad's run folder, recorded in the state file
 *    and given back on exit (lamina teardown gives them back after a
 *    crash); else --no-huge.
 *  - NUMA: a worker's node comes from libnuma; stages allocate on it.
 */
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lamina/fsutil.h"

#include "dp.h"

int lm_dp_cpu_node(unsigned cpu)
{
	int n = numa_available() >= 0 ? numa_node_of_cpu((int)cpu) : 0;
	return n < 0 ? 0 : n;
}

/* Parse "0-3,6" into cpus allowed by `allowed`. */
static int parse_cpus(const char *list, const cpu_set_t *allowed,
		      unsigned *cpus, unsigned *n, lm_error *e)
{
	const char *p = list;
	*n = 0;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b = a;
		if (end == p || a < 0 || a >= CPU_SETSIZE)
			goto bad;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a || b >= CPU_SETSIZE)
				goto bad;
		}
		for (long c = a; c <= b; c++) {
			if (!CPU_ISSET(c, allowed))
				return lm_fail(e, -EINVAL, "--cores %s: cpu %ld "
					       "is not one this process may "
					       "use", list, c);
			int dup = 0;
			for (unsigned k = 0; k < *n; k++)
				dup |= cpus[k] == (unsigned)c;
			if (!dup && *n < LM_DP_MAX_LCORES)
				cpus[(*n)++] = (unsigned)c;
		}
		if (*end && *end != ',')
			goto bad;
		p = *end ? end + 1 : end;
	}
	if (*n)
		return 0;
bad:
	return lm_fail(e, -EINVAL, "--cores needs a cpu list like 0-3,6, not "
		       "'%s'", list);
}

/* Worker cpus and the lcore map. */
static int lcore_map(struct lm_dp *dp, char *out, size_t len, lm_error *e)
{
	cpu_set_t set;
	unsigned allowed[LM_DP_MAX_LCORES], n_allowed = 0;
	int rc;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return lm_fail(e, -errno, "cannot read the cpu affinity");
	for (int c = 0; c < CPU_SETSIZE && n_allowed < LM_DP_MAX_LCORES; c++)
		if (CPU_ISSET(c, &set))
			allowed[n_allowed++] = (unsigned)c;
	dp->n_online_cpus = n_allowed;
	if (dp->cfg.cores) {
		if ((rc = parse_cpus(dp->cfg.cores, &set, dp->worker_cpus,
				     &dp->n_worker_cpus, e)))
			return rc;
	} else {
		/* leave the first cpu to the main lcore and the system when
		 * there are enough; on small hosts workers may use all */
		unsigned skip = n_allowed >= 4 ? 1 : 0;
		for (unsigned i = skip; i < n_allowed; i++)
			dp->worker_cpus[dp->n_worker_cpus++] = allowed[i];
	}
	size_t off = (size_t)snprintf(out, len, "0@(");
	for (unsigned i = 0; i < n_allowed && off < len; i++)
		off += (size_t)snprintf(out + off, len - off, "%s%u",
					i ? "," : "", allowed[i]);
	off += (size_t)snprintf(out + off, len > off ? len - off : 0, ")");
	dp->n_lcores = 1;
	dp->lcore[0].cpu = allowed[0];
	for (unsigned k = 0; k < LM_DP_LCORES_PER_CPU; k++)
		for (unsigned i = 0; i < dp->n_worker_cpus &&
				     dp->n_lcores < LM_DP_MAX_LCORES; i++) {
			unsigned l = dp->n_lcores++;
			dp->lcore[l].cpu = dp->worker_cpus[i];
			off += (size_t)snprintf(out + off,
						len > off ? len - off : 0,
						",%u@%u", l, dp->worker_cpus[i]);
		}
	if (off >= len)
		return lm_fail(e, -E2BIG, "too many cpus for the lcore map");
	return 0;
}

int lm_dp_poll_busy(const struct lm_dp *dp)
{
	unsigned workers = 0, shared = 0;
	if (dp->cfg.poll != LM_DP_POLL_AUTO)
		return dp->cfg.poll == LM_DP_POLL_BUSY;
	for (unsigned l = 1; l < dp->n_lcores; l++) {
		if (!dp->lcore[l].used)
			continue;
		workers++;
		for (unsigned k = 1; k < l; k++)
			shared |= dp->lcore[k].used &&
				  dp->lcore[k].cpu == dp->lcore[l].cpu;
	}
	/* busy only with a cpu of its own per worker and one left over for
	 * the main lcore and everything else on the host */
	return !shared && workers + 1 < dp->n_online_cpus;
}

int lm_dp_main_spins(const struct lm_dp *dp)
{
	unsigned cpus[LM_DP_MAX_LCORES], n = 0;
	if (!lm_dp_poll_busy(dp))
		return 0;
	for (unsigned l = 1; l < dp->n_lcores; l++) {
		int seen = !dp->lcore[l].used;
		for (unsigned k = 0; k < n && !seen; k++)
			seen = cpus[k] == dp->lcore[l].cpu;
		if (!seen)
			cpus[n++] = dp->lcore[l].cpu;
	}
	/* the main lcore may run on every allowed cpu: spinning only costs
	 * nothing when one of them has no worker */
	return n < dp->n_online_cpus;
}

/* ---- hugepages ---- */

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

static int hugetlbfs_mounted(void)
{
	FILE *f = fopen("/proc/mounts", "r");
	char line[1024];
	int found = 0;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, " hugetlbfs ") != NULL;
	if (f)
		fclose(f);
	return found;
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	int rc = fprintf(f, "%ld\n", v) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	return rc;
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

void lm_dp_hugepages_release(struct lm_dp *dp)
{
	if (dp->huge_mount[0]) {
		umount2(dp->huge_mount, MNT_DETACH);
		rmdir(dp->huge_mount);
		dp->huge_mount[0] = '\0';
	}
	if (dp->huge_count) {
		long now = read_long(NR_HUGEPAGES);
		if (now >= 0)
			write_long(NR_HUGEPAGES, now > (long)dp->huge_count
					       ? now - (long)dp->huge_count : 0);
		lm_dp_log("gave back %u hugepages of %u kB", dp->huge_count,
			  dp->huge_kb);
		dp->huge_count = 0;
	}
}

/* Reserve hugepages and mount them for this instance; 0 when done. */
static int hugepages_reserve(struct lm_dp *dp)
{
	long kb = meminfo("Hugepagesize");
	long cur = read_long(NR_HUGEPAGES);
	if (kb <= 0 || cur < 0 || geteuid() != 0)
		return -EPERM;
	long want = (long)dp->cfg.memory_mb * 1024 / kb;
	if (write_long(NR_HUGEPAGES, cur + want) != 0)
		return -EPERM;
	long got = read_long(NR_HUGEPAGES) - cur;
	dp->huge_kb = (unsigned)kb;
	dp->huge_count = got > 0 ? (unsigned)got : 0;
	if (got < want / 2) { /* too fragmented to be worth it */
		lm_dp_log("hugepages: asked for %ld, got %ld: using --no-huge",
			  want, got);
		lm_dp_hugepages_release(dp);
		return -ENOMEM;
	}
	snprintf(dp->huge_mount, sizeof(dp->huge_mount), "%s/laminad-%u.huge",
		 dp->cfg.state_dir, dp->cfg.control_port);
	if ((mkdir(dp->huge_mount, 0700) != 0 && errno != EEXIST) ||
	    mount("nodev", dp->huge_mount, "hugetlbfs", 0, NULL) != 0) {
		lm_dp_log("hugepages: cannot mount hugetlbfs at %s: %s",
			  dp->huge_mount, strerror(errno));
		rmdir(dp->huge_mount);
		dp->huge_mount[0] = '\0';
		lm_dp_hugepages_release(dp);
		return -EPERM;
	}
	lm_dp_log("hugepages: reserved %u of %u kB, mounted at %s",
		  dp->huge_count, dp->huge_kb, dp->huge_mount);
	return 0;
}

/* ---- the argument vector ---- */

struct args {
	int argc;
	char **argv;
};

static int push(struct args *a, const char *s)
{
	char **p = realloc(a->argv, (size_t)(a->argc + 2) * sizeof(char *));
	if (!p)
		return -ENOMEM;
	a->argv = p;
	if (!(a->argv[a->argc] = strdup(s)))
		return -ENOMEM;
	a->argv[++a->argc] = NULL;
	return 0;
}

void lm_dp_eal_args_free(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}

int lm_dp_eal_args(struct lm_dp *dp, int *argc, char ***argv, lm_error *e)
{
	struct args a = { 0, NULL };
	char lcores[8192], num[32];
	int rc;
	if ((rc = lcore_map(dp, lcores, sizeof(lcores), e)))
		return rc;
	snprintf(dp->file_prefix, sizeof(dp->file_prefix), "laminad-%u-%d",
		 dp->cfg.control_port, (int)getpid());
	long free_pages = meminfo("HugePages_Free");
	if (!dp->cfg.hugepages_auto)
		dp->hugepages = 0;
	else if (free_pages > 0 && hugetlbfs_mounted())
		dp->hugepages = 1;
	else
		dp->hugepages = hugepages_reserve(dp) == 0;
	rc = push(&a, "laminad");
	rc = rc ?: push(&a, "--lcores");
	rc = rc ?: push(&a, lcores);
	rc = rc ?: push(&a, "--main-lcore");
	rc = rc ?: push(&a, "0");
	rc = rc ?: push(&a, "--file-prefix");
	rc = rc ?: push(&a, dp->file_prefix);
	rc = rc ?: push(&a, "--no-pci");
	rc = rc ?: push(&a, "--no-telemetry");
	if (!dp->hugepages) {
		snprintf(num, sizeof(num), "%u", dp->cfg.memory_mb);
		/* --no-huge implies legacy memory, which --in-memory refuses */
		rc = rc ?: push(&a, "--no-huge");
		rc = rc ?: push(&a, "--no-shconf");
		rc = rc ?: push(&a, "-m");
		rc = rc ?: push(&a, num);
	} else {
		/* hugepage files unlinked at once: nothing left after a crash */
		rc = rc ?: push(&a, "--in-memory");
		if (dp->huge_mount[0]) {
			rc = rc ?: push(&a, "--huge-dir");
			rc = rc ?: push(&a, dp->huge_mount);
		}
	}
	/* expert arguments last, so they win */
	if (dp->cfg.eal) {
		char *copy = strdup(dp->cfg.eal), *save = NULL;
		if (!copy)
			rc = -ENOMEM;
		for (char *t = copy ? strtok_r(copy, " \t", &save) : NULL;
		     t && !rc; t = strtok_r(NULL, " \t", &save))
			rc = push(&a, t);
		free(copy);
	}
	if (rc) {
		lm_dp_eal_args_free(a.argc, a.argv);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	*argc = a.argc;
	*argv = a.argv;
	return 0;
}

void lm_dp_eal_rundir_remove(struct lm_dp *dp)
{
	if (dp->run_dir[0])
		lm_remove_tree(dp->run_dir);
}
