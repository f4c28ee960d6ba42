/*
 * test_reliable.c: reliable delivery across laminads (dataplane/
 * reliable.c) without EAL: slots and tickets, answers counted once, the
 * re-send wait as RFC 6298 learns it, the plan's period floor, doubling
 * per re-send and giving up.
 */
#include <errno.h>
#include <stdint.h>

#include "harness.h"
#include "reliable.h"

/* 1 tick per microsecond: waits read in us */
static lm_rel *make(unsigned slots, unsigned retry_ms, unsigned retries,
		    unsigned period_us)
{
	lm_rel_config c = { .slots = slots, .ticks_per_us = 1.0,
			    .retry_ms = retry_ms, .max_retries = retries,
			    .period_us = period_us };
	static int copies[16];
	void *p[16];
	for (int i = 0; i < 16; i++)
		p[i] = &copies[i];
	lm_rel *r = NULL;
	return lm_rel_create(&c, p, &r) ? NULL : r;
}

TEST(refuses_a_useless_table)
{
	lm_rel_config c = { .slots = 0, .ticks_per_us = 1, .retry_ms = 1 };
	lm_rel *r = NULL;
	CHECK_EQ_I64(lm_rel_create(&c, NULL, &r), -EINVAL);
	c.slots = 2;
	c.retry_ms = 0;
	CHECK_EQ_I64(lm_rel_create(&c, NULL, &r), -EINVAL);
}

TEST(slots_and_tickets)
{
	lm_rel *r = make(2, 10, 3, 0);
	uint32_t t1, t2, t3;
	CHECK(r);
	int a = lm_rel_take(r, &t1), b = lm_rel_take(r, &t2);
	CHECK(a >= 0 && b >= 0 && a != b && t1 && t2 && t1 != t2);
	CHECK_EQ_I64(lm_rel_take(r, &t3), -1); /* full */
	CHECK_EQ_I64(lm_rel_in_use(r), 2);
	CHECK(lm_rel_copy(r, (unsigned)a) != lm_rel_copy(r, (unsigned)b));
	/* an answer to a request not sent yet is not its answer */
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)a, t1, 5), 0);
	lm_rel_sent(r, (unsigned)a, 100);
	CHECK(lm_rel_in_flight(r, (unsigned)a));
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)a, t1 + 7, 150), 0);
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)a, t1, 150), 1);
	/* the second answer to the same request is dropped and counted */
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)a, t1, 160), 0);
	CHECK_EQ_I64(lm_rel_get_stats(r)->dup_answers, 3);
	CHECK_EQ_I64(lm_rel_in_use(r), 1);
	/* a slot reused gets a new ticket: an old answer cannot free it */
	int c = lm_rel_take(r, &t3);
	CHECK(c == a && t3 != t1);
	lm_rel_sent(r, (unsigned)c, 200);
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)c, t1, 210), 0);
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)c, t3, 210), 1);
	lm_rel_release(r, (unsigned)b);
	lm_rel_release(r, (unsigned)b); /* twice is harmless */
	CHECK_EQ_I64(lm_rel_in_use(r), 0);
	CHECK_EQ_I64(lm_rel_slots(r), 2);
	/* out-of-range slots from the wire are not answers */
	CHECK_EQ_I64(lm_rel_answered(r, 99, t3, 300), 0);
	lm_rel_free(r);
}

TEST(learns_the_wait_as_tcp_does)
{
	lm_rel *r = make(4, 1, 8, 0); /* floor 1 ms = 1000 ticks */
	uint32_t t;
	int s = lm_rel_take(r, &t);
	lm_rel_sent(r, (unsigned)s, 1000);
	/* nothing learnt: three times the floor */
	CHECK_EQ_I64(lm_rel_wait(r, (unsigned)s), 3000);
	CHECK_EQ_I64(lm_rel_answered(r, (unsigned)s, t, 1000 + 4000), 1);
	/* srtt 4000, rttvar 2000: 4000 + 4 x 2000 */
	s = lm_rel_take(r, &t);
	lm_rel_sent(r, (unsigned)s, 10000);
	CHECK_EQ_I64(lm_rel_wait(r, (unsigned)s), 12000);
	lm_rel_answered(r, (unsigned)s, t, 10000 + 4000);
	/* the same time again: rttvar shrinks by a quarter */
	s = lm_rel_take(r, &t);
	lm_rel_sent(r, (unsigned)s, 20000);
	CHECK_EQ_I64(lm_rel_wait(r, (unsigned)s), 4000 + 4 * 1500);
	lm_rel_free(r);
}

TEST(period_floor_and_doubling)
{
	/* 4 requests in flight at a period of 500 us: the last one's
	 * answer comes after the 3 ahead of it: at least 2 x 4 x 500 */
	lm_rel *r = make(4, 1, 2, 500);
	uint32_t t[4];
	int s[4];
	for (int i = 0; i < 4; i++) {
		s[i] = lm_rel_take(r, &t[i]);
		lm_rel_sent(r, (unsigned)s[i], 100);
	}
	CHECK_EQ_I64(lm_rel_wait(r, (unsigned)s[3]), 4000);
	CHECK_EQ_I64(lm_rel_wait(r, (unsigned)s[0]), 3000); /* 3 x floor */
	unsigned cur = 0;
	int what = 0;
	CHECK_EQ_I64(lm_rel_due(r, 100 + 2999, &cur, &what), -1);
	cur = 0;
	int d = lm_rel_due(r, 100 + 3001, &cur, &what);
	CHECK(d == s[0] && what == LM_REL_RESEND);
	lm_rel_sent(r, (unsigned)d, 3101);
	CHECK_EQ_I64(lm_rel_get_stats(r)->resent, 1);
	/* the wait doubles: ahead is now 3 (4 x 2 x 500 = 4000) doubled */
	CHECK_EQ_I64(lm_rel_wait(r, (unsigned)d), 8000);
	lm_rel_sent(r, (unsigned)d, 20000);
	/* two re-sends made: the next due gives up */
	cur = 0;
	int g = -1;
	while ((d = lm_rel_due(r, 1000000, &cur, &what)) >= 0)
		if (d == s[0])
			g = what;
	CHECK_EQ_I64(g, LM_REL_GIVE_UP);
	CHECK_EQ_I64(lm_rel_get_stats(r)->gave_up, 1);
	lm_rel_free(r);
}

int main(void)
{
	RUN(refuses_a_useless_table);
	RUN(slots_and_tickets);
	RUN(learns_the_wait_as_tcp_does);
	RUN(period_floor_and_doubling);
	return harness_done();
}
