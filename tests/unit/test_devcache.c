/*
 * test_devcache.c: the devices cache (control/devcache.c): a missing file
 * is an empty cache, saved and loaded back unchanged, devices added by
 * hand (and URLs that could read as ssh options or shell words refused),
 * removed, what answers merged in (a hand-added host answering under its
 * laminad's name), what a host added by hand offers (`laminad
 * --describe-host` over ssh) kept for it until its laminad answers, the
 * age-out, and damaged files refused naming the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devcache.h"
#include "discover.h"
#include "harness.h"

static char dir[64];

static const char *file(const char *name)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void write_text(const char *name, const char *text)
{
	FILE *f = fopen(file(name), "w");
	fputs(text, f);
	fclose(f);
}

static lm_found found(const char *name, const char *addr, int port,
		      unsigned cores_free)
{
	lm_found f;
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "%s", name);
	snprintf(f.address, sizeof(f.address), "%s", addr);
	f.port = (uint16_t)port;
	snprintf(f.txt.version, sizeof(f.txt.version), "0.2.0");
	snprintf(f.txt.cpu, sizeof(f.txt.cpu), "Test CPU");
	f.txt.cores = 4;
	f.txt.cores_free = cores_free;
	f.txt.mem = 1ull << 34;
	f.txt.mem_free = 1ull << 33;
	return f;
}

static lm_known *get(lm_devcache *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->dev[i].name, name))
			return &c->dev[i];
	return NULL;
}

TEST(missing_is_empty)
{
	lm_devcache c = { 0 };
	lm_error e;
	CHECK_EQ_I64(lm_devcache_load(file("none.json"), &c, &e), 0);
	CHECK_EQ_I64(c.n, 0);
	lm_devcache_free(&c);
}

TEST(round_trip)
{
	lm_devcache c = { 0 }, d = { 0 };
	lm_found f[2] = { found("nodeA", "10.0.0.1", 7700, 3),
			  found("nodeB", "10.0.0.2", 7710, 0) };
	lm_error e;
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://alice@host3:2222", &e), 0);
	CHECK_EQ_I64(lm_devcache_merge(&c, f, 2, 1000, &e), 0);
	lm_devcache_sort(&c);
	CHECK_EQ_I64(lm_devcache_save(file("c.json"), &c, &e), 0);
	CHECK_EQ_I64(access(file("c.json"), R_OK), 0);
	CHECK_EQ_I64(lm_devcache_load(file("c.json"), &d, &e), 0);
	CHECK_EQ_I64(d.n, 3);
	for (int i = 0; i < 3; i++) {
		lm_known *a = &c.dev[i], *b = &d.dev[i];
		CHECK(!strcmp(a->name, b->name));
		CHECK(!strcmp(a->address, b->address));
		CHECK(!strcmp(a->ssh, b->ssh));
		CHECK_EQ_I64(a->port, b->port);
		CHECK_EQ_I64(a->last_seen, b->last_seen);
		CHECK_EQ_I64(a->has_txt, b->has_txt);
		CHECK(!memcmp(&a->txt, &b->txt, sizeof(a->txt)));
		CHECK_EQ_I64(b->answering, 0); /* not saved */
	}
	lm_known *h = get(&d, "host3");
	CHECK(h && !h->has_txt && h->last_seen == 0 &&
	      !strcmp(h->ssh, "ssh://alice@host3:2222"));
	lm_known *b = get(&d, "nodeB");
	CHECK(b && b->port == 7710 && b->txt.cores_free == 0 &&
	      b->txt.mem == 1ull << 34 && !strcmp(b->txt.cpu, "Test CPU"));
	lm_devcache_free(&c);
	lm_devcache_free(&d);
}

TEST(add_and_remove)
{
	lm_devcache c = { 0 };
	lm_error e;
	static const char *const good[] = {
		"ssh://host1", "ssh://bob@10.0.0.9", "ssh://h-2.example.com:22",
		"ssh://[fe80::1]:2222", "ssh://u_s.e-r@h",
	};
	static const char *const bad[] = {
		"host1", "ssh://", "ssh://@host", "ssh://-oProxyCommand=x",
		"ssh://host;rm", "ssh://ho st", "ssh://host:0",
		"ssh://host:65536", "ssh://host:22x", "ssh://us;er@host",
		"ssh://host/path", "ssh://[fe80::1", "ssh://[zz]:22",
		"http://host", "ssh://.host", "ssh://ho_st",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK_EQ_I64(lm_devcache_add(&c, good[i], &e), 0);
	CHECK_EQ_I64(c.n, 5);
	CHECK(get(&c, "fe80::1") && get(&c, "10.0.0.9") && get(&c, "h"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		CHECK_EQ_I64(lm_devcache_add(&c, bad[i], &e), -EINVAL);
		CHECK(e.msg[0] != '\0');
	}
	CHECK_EQ_I64(c.n, 5);
	/* the same host again: its URL changes, no second entry */
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://carol@host1:2200", &e), 0);
	CHECK_EQ_I64(c.n, 5);
	CHECK(!strcmp(get(&c, "host1")->ssh, "ssh://carol@host1:2200"));
	/* as remote.h and devices.json's "ssh" take it */
	char dest[64];
	CHECK_EQ_I64(lm_devcache_ssh_dest(get(&c, "host1"), dest,
					  sizeof(dest)), 0);
	CHECK(!strcmp(dest, "carol@host1:2200"));
	CHECK_EQ_I64(lm_devcache_ssh_dest(get(&c, "fe80::1"), dest,
					  sizeof(dest)), 0);
	CHECK(!strcmp(dest, "[fe80::1]:2222"));
	CHECK_EQ_I64(lm_devcache_ssh_dest(get(&c, "host1"), dest, 8),
		     -ENAMETOOLONG);
	CHECK(dest[0] == '\0');
	CHECK_EQ_I64(lm_devcache_remove(&c, "host1"), 0);
	CHECK_EQ_I64(lm_devcache_remove(&c, "host1"), -ENOENT);
	CHECK_EQ_I64(c.n, 4);
	lm_devcache_free(&c);
}

TEST(merge_and_age_out)
{
	lm_devcache c = { 0 };
	lm_error e;
	lm_found f[3] = { found("nodeA", "10.0.0.1", 7700, 3),
			  found("nodeB", "10.0.0.2", 7700, 1),
			  found("gpu1", "10.0.0.7", 7700, 2) };
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://10.0.0.7", &e), 0);
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://lost", &e), 0);
	CHECK_EQ_I64(lm_devcache_merge(&c, f, 3, 1000, &e), 0);
	/* the host added by hand answers under its laminad's name */
	CHECK_EQ_I64(c.n, 4);
	lm_known *g = get(&c, "gpu1");
	CHECK(g && g->answering && !strcmp(g->ssh, "ssh://10.0.0.7") &&
	      g->last_seen == 1000 && g->txt.cores_free == 2);
	CHECK(get(&c, "lost") && !get(&c, "lost")->answering);
	/* later only nodeA answers, with other figures */
	f[0].txt.cores_free = 1;
	f[0].port = 7800;
	CHECK_EQ_I64(lm_devcache_merge(&c, f, 1, 1500, &e), 0);
	lm_known *a = get(&c, "nodeA"), *b = get(&c, "nodeB");
	CHECK(a->answering && a->txt.cores_free == 1 && a->port == 7800 &&
	      a->last_seen == 1500);
	CHECK(!b->answering && b->last_seen == 1000 && b->has_txt);
	/* 600 s after its last answer nodeB is still kept, past it not; the
	 * devices added by hand stay however old */
	lm_devcache_age_out(&c, 1600, 600);
	CHECK(get(&c, "nodeB") != NULL);
	lm_devcache_age_out(&c, 1601, 600);
	CHECK(get(&c, "nodeB") == NULL);
	lm_devcache_age_out(&c, 100000, 600);
	CHECK(get(&c, "nodeA") == NULL);
	CHECK(get(&c, "gpu1") && get(&c, "lost"));
	CHECK_EQ_I64(c.n, 2);
	/* one answering now is heard from now */
	CHECK_EQ_I64(lm_devcache_merge(&c, f + 1, 1, 100000, &e), 0);
	lm_devcache_age_out(&c, 100000, 600);
	CHECK(get(&c, "nodeB") != NULL);
	lm_devcache_free(&c);
}

/* A host with several laminads: `add` gives the URL to each (all are
 * reached through it), `remove HOST` takes them all out. */
TEST(add_to_busy_host)
{
	lm_devcache c = { 0 };
	lm_error e;
	lm_found f[3] = { found("a-old", "10.0.0.2", 7792, 1),
			  found("b-now", "10.0.0.2", 7790, 1),
			  found("other", "10.0.0.3", 7790, 1) };
	CHECK_EQ_I64(lm_devcache_merge(&c, f, 3, 1000, &e), 0);
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://u@10.0.0.2", &e), 0);
	CHECK_EQ_I64(c.n, 3);
	CHECK(!strcmp(get(&c, "a-old")->ssh, "ssh://u@10.0.0.2"));
	CHECK(!strcmp(get(&c, "b-now")->ssh, "ssh://u@10.0.0.2"));
	CHECK(!get(&c, "other")->ssh[0]);
	/* a device's name wins over addresses */
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://other", &e), 0);
	CHECK(!strcmp(get(&c, "other")->ssh, "ssh://other"));
	CHECK_EQ_I64(lm_devcache_remove(&c, "10.0.0.2"), 0);
	CHECK_EQ_I64(c.n, 1);
	CHECK(get(&c, "other") != NULL);
	CHECK_EQ_I64(lm_devcache_remove(&c, "10.0.0.2"), -ENOENT);
	lm_devcache_free(&c);
}

/* A host added by hand is described before any laminad runs there: its
 * record and the control port lamina will start laminad on stay across
 * saves; a device of the same URL that answered keeps its own record. */
TEST(describe_added_host)
{
	lm_devcache c = { 0 }, d = { 0 };
	lm_error e;
	lm_found seen = found("nodeB", "10.0.0.2", 7790, 1);
	lm_found probe = found("-", "-", 0, 6);
	probe.txt.cores = 6;
	CHECK_EQ_I64(lm_devcache_merge(&c, &seen, 1, 1000, &e), 0);
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://u@10.0.0.2", &e), 0);
	CHECK_EQ_I64(lm_devcache_add(&c, "ssh://u@10.0.0.5", &e), 0);
	CHECK_EQ_I64(lm_devcache_describe(&c, "ssh://u@10.0.0.5", 7810,
					  &probe.txt), 1);
	CHECK_EQ_I64(lm_devcache_describe(&c, "ssh://u@10.0.0.2", 7811,
					  &probe.txt), 0);
	CHECK_EQ_I64(lm_devcache_describe(&c, "ssh://nobody", 7811,
					  &probe.txt), 0);
	lm_devcache_sort(&c);
	CHECK_EQ_I64(lm_devcache_save(file("d.json"), &c, &e), 0);
	CHECK_EQ_I64(lm_devcache_load(file("d.json"), &d, &e), 0);
	lm_known *h = get(&d, "10.0.0.5"), *b = get(&d, "nodeB");
	CHECK(h && h->has_txt && h->port == 7810 && h->last_seen == 0 &&
	      h->txt.cores == 6 && h->txt.mem_free == 1ull << 33 &&
	      !strcmp(h->txt.cpu, "Test CPU"));
	CHECK(b && b->port == 7790 && b->txt.cores == 4 &&
	      b->txt.cores_free == 1);
	lm_devcache_free(&c);
	lm_devcache_free(&d);
}

TEST(damaged_files)
{
	static const char *const bad[] = {
		"{",
		"[]",
		"{\"format\": \"lamina-plan\", \"version\": 1, \"devices\": []}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 2, "
		"\"devices\": []}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": {}}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": [{\"name\": \"a\"}]}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": [{\"name\": \"a\", \"address\": \"x\", "
		"\"port\": 70000, \"last_seen\": 1}]}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": [{\"name\": \"a\", \"address\": \"x\", "
		"\"port\": 1, \"last_seen\": 1, \"extra\": 1}]}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": [{\"name\": \"a\", \"address\": \"x\", "
		"\"port\": 1, \"last_seen\": 1, \"txt\": {\"cores\": \"x\"}}]}",
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": [{\"name\": \"a\", \"address\": \"x\", "
		"\"port\": 1, \"last_seen\": 1, \"txt\": {\"cores\": 3}}]}",
		/* an ssh URL that would read as an option to ssh */
		"{\"format\": \"lamina-devices-cache\", \"version\": 1, "
		"\"devices\": [{\"name\": \"a\", \"address\": \"x\", "
		"\"port\": 1, \"last_seen\": 1, "
		"\"ssh\": \"ssh://-oProxyCommand=x\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lm_devcache c = { 0 };
		lm_error e = { "" };
		write_text("bad.json", bad[i]);
		CHECK_EQ_I64(lm_devcache_load(file("bad.json"), &c, &e),
			     -EINVAL);
		CHECK(strstr(e.msg, "bad.json") != NULL);
		CHECK_EQ_I64(c.n, 0);
	}
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/lamina-devcache-%d", (int)getpid());
	if (mkdir(dir, 0700) != 0)
		return 1;
	RUN(missing_is_empty);
	RUN(round_trip);
	RUN(add_and_remove);
	RUN(merge_and_age_out);
	RUN(add_to_busy_host);
	RUN(describe_added_host);
	RUN(damaged_files);
	static const char *const names[] = { "c.json", "d.json", "bad.json" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(file(names[i]));
	rmdir(dir);
	return harness_done();
}
