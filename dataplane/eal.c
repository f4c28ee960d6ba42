/*
 * eal.c: EAL's arguments, the lcore map, the memory choice and NUMA facts
 * (what each is and why: eal.h).
 */
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eal.h"
#include "lamina/log.h"

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

int lm_dp_lcores_init(const struct lm_dp_eal_opts *o, struct lm_dp_lcores *lc,
		      lm_error *e)
{
	cpu_set_t set;
	unsigned allowed[LM_DP_MAX_LCORES], n_allowed = 0;
	int rc;
	memset(lc, 0, sizeof(*lc));
	lc->poll = o->poll;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return lm_fail(e, -errno, "cannot read the cpu affinity");
	for (int c = 0; c < CPU_SETSIZE && n_allowed < LM_DP_MAX_LCORES; c++)
		if (CPU_ISSET(c, &set))
			allowed[n_allowed++] = (unsigned)c;
	lc->n_online_cpus = n_allowed;
	if (o->cores) {
		if ((rc = parse_cpus(o->cores, &set, lc->worker_cpus,
				     &lc->n_worker_cpus, e)))
			return rc;
	} else {
		/* leave the first cpu to the main lcore and the system when
		 * there are enough; on small hosts workers may use all */
		unsigned skip = n_allowed >= 4 ? 1 : 0;
		for (unsigned i = skip; i < n_allowed; i++)
			lc->worker_cpus[lc->n_worker_cpus++] = allowed[i];
	}
	lc->n = 1;
	lc->l[0].cpu = allowed[0];
	for (unsigned k = 0; k < LM_DP_LCORES_PER_CPU; k++)
		for (unsigned i = 0; i < lc->n_worker_cpus &&
				     lc->n < LM_DP_MAX_LCORES; i++)
			lc->l[lc->n++].cpu = lc->worker_cpus[i];
	return 0;
}

/* EAL's --lcores map: main on every allowed cpu, workers pinned. */
static int lcore_map(const struct lm_dp_lcores *lc, char *out, size_t len,
		     lm_error *e)
{
	cpu_set_t set;
	size_t off = (size_t)snprintf(out, len, "0@(");
	int first = 1;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return lm_fail(e, -errno, "cannot read the cpu affinity");
	for (int c = 0; c < CPU_SETSIZE && off < len; c++)
		if (CPU_ISSET(c, &set)) {
			off += (size_t)snprintf(out + off, len - off, "%s%d",
						first ? "" : ",", c);
			first = 0;
		}
	off += (size_t)snprintf(out + off, len > off ? len - off : 0, ")");
	for (unsigned l = 1; l < lc->n && off < len; l++)
		off += (size_t)snprintf(out + off, len - off, ",%u@%u", l,
					lc->l[l].cpu);
	if (off >= len)
		return lm_fail(e, -E2BIG, "too many cpus for the lcore map");
	return 0;
}

int lm_dp_poll_busy(const struct lm_dp_lcores *lc)
{
	unsigned workers = 0, shared = 0;
	if (lc->poll != LM_DP_POLL_AUTO)
		return lc->poll == LM_DP_POLL_BUSY;
	for (unsigned l = 1; l < lc->n; l++) {
		if (!lc->l[l].used)
			continue;
		workers++;
		for (unsigned k = 1; k < l; k++)
			shared |= lc->l[k].used &&
				  lc->l[k].cpu == lc->l[l].cpu;
	}
	/* busy only with a cpu of its own per worker and one left over for
	 * the main lcore and everything else on the host */
	return !shared && workers + 1 < lc->n_online_cpus;
}

int lm_dp_main_spins(const struct lm_dp_lcores *lc)
{
	unsigned cpus[LM_DP_MAX_LCORES], n = 0;
	if (!lm_dp_poll_busy(lc))
		return 0;
	for (unsigned l = 1; l < lc->n; l++) {
		int seen = !lc->l[l].used;
		for (unsigned k = 0; k < n && !seen; k++)
			seen = cpus[k] == lc->l[l].cpu;
		if (!seen)
			cpus[n++] = lc->l[l].cpu;
	}
	/* the main lcore may run on every allowed cpu: spinning only costs
	 * nothing when one of them has no worker */
	return n < lc->n_online_cpus;
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

void lm_dp_eal_run_dir(const char *prefix, char *out, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0 || !xdg)
		snprintf(out, len, "%s/%s",
			 geteuid() == 0 ? "/var/run/dpdk" : "/tmp/dpdk",
			 prefix);
	else
		snprintf(out, len, "%s/dpdk/%s", xdg, prefix);
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

int lm_dp_eal_args(const struct lm_dp_eal_opts *o,
		   const struct lm_dp_lcores *lc, struct lm_dp_eal *x,
		   int *argc, char ***argv, lm_error *e)
{
	struct args a = { 0, NULL };
	char lcores[8192], num[32], mount[PATH_MAX];
	lm_error why;
	int rc;
	if ((rc = lcore_map(lc, lcores, sizeof(lcores), e)))
		return rc;
	snprintf(x->file_prefix, sizeof(x->file_prefix), "laminad-%u-%d",
		 o->control_port, (int)getpid());
	lm_dp_eal_run_dir(x->file_prefix, x->run_dir, sizeof(x->run_dir));
	/* root reserves pages of its own: free pages in the system pool
	 * may be another laminad's, reserved and not yet mapped (two
	 * laminads starting together took the same ones, and the second
	 * found no memory for its pools). Others use the system pool only
	 * when it holds all they need. */
	long page_kb = meminfo("Hugepagesize");
	long free_mb = page_kb > 0 ? meminfo("HugePages_Free") * page_kb / 1024
				   : 0;
	x->hugepages = 0;
	if (o->hugepages_auto && geteuid() == 0) {
		snprintf(mount, sizeof(mount), "%s/laminad-%u.huge",
			 o->state_dir, o->control_port);
		if (lm_huge_reserve(o->memory_mb, mount, &x->huge, &why) ==
		    0) {
			x->hugepages = 1;
			lm_log("hugepages: reserved %u of %u kB, mounted at %s",
			       x->huge.count, x->huge.page_kb, x->huge.mount);
		} else {
			lm_log("%s: running without (--no-huge)", why.msg);
		}
	} else if (o->hugepages_auto && free_mb >= (long)o->memory_mb &&
		   hugetlbfs_mounted()) {
		x->hugepages = 1;
	}
	rc = push(&a, "laminad");
	rc = rc ?: push(&a, "--lcores");
	rc = rc ?: push(&a, lcores);
	rc = rc ?: push(&a, "--main-lcore");
	rc = rc ?: push(&a, "0");
	rc = rc ?: push(&a, "--file-prefix");
	rc = rc ?: push(&a, x->file_prefix);
	rc = rc ?: push(&a, "--no-pci");
	rc = rc ?: push(&a, "--no-telemetry");
	if (!x->hugepages) {
		snprintf(num, sizeof(num), "%u", o->memory_mb);
		/* --no-huge implies legacy memory, which --in-memory refuses */
		rc = rc ?: push(&a, "--no-huge");
		rc = rc ?: push(&a, "--no-shconf");
		rc = rc ?: push(&a, "-m");
		rc = rc ?: push(&a, num);
	} else {
		/* hugepage files unlinked at once: nothing left after a crash */
		rc = rc ?: push(&a, "--in-memory");
		if (x->huge.mount[0]) {
			rc = rc ?: push(&a, "--huge-dir");
			rc = rc ?: push(&a, x->huge.mount);
		}
		/* the pages taken at start and kept: counted free in the
		 * system pool, reserved pages are anyone's until mapped (a
		 * second laminad took them, and a later pool of this one
		 * found none) */
		long mb = x->huge.count
				  ? (long)x->huge.count * x->huge.page_kb / 1024
				  : free_mb;
		mb = mb < (long)o->memory_mb ? mb : (long)o->memory_mb;
		snprintf(num, sizeof(num), "%ld", mb);
		rc = rc ?: push(&a, "--socket-mem");
		rc = rc ?: push(&a, num);
	}
	/* expert arguments last, so they win */
	if (o->extra) {
		char *copy = strdup(o->extra), *save = NULL;
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
