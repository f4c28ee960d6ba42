/*
 * reliable.c: kept requests, re-send waits and de-duplication (see
 * reliable.h).
 */
#include "reliable.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct slot {
	void *copy;
	uint64_t t_sent;  /* 0: taken but not sent yet (never re-sent) */
	uint32_t ticket;  /* 0: the slot is free */
	unsigned tries;   /* re-sends so far */
	unsigned ahead;   /* requests in flight before it, at its send */
};

struct lm_rel {
	lm_rel_config cfg;
	struct slot *slot;
	unsigned *free_list, n_free;
	uint32_t next_ticket;
	/* answer times of requests sent once, in ticks: RFC 6298 */
	double srtt, rttvar;
	lm_rel_stats stats;
};

int lm_rel_create(const lm_rel_config *cfg, void *const *copies,
		  lm_rel **out)
{
	if (!cfg->slots || !cfg->retry_ms || cfg->ticks_per_us <= 0)
		return -EINVAL;
	lm_rel *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->slot = calloc(cfg->slots, sizeof(*r->slot));
	r->free_list = calloc(cfg->slots, sizeof(*r->free_list));
	if (!r->slot || !r->free_list) {
		lm_rel_free(r);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < cfg->slots; i++) {
		r->slot[i].copy = copies ? copies[i] : NULL;
		r->free_list[i] = cfg->slots - 1 - i; /* slot 0 first */
	}
	r->n_free = cfg->slots;
	*out = r;
	return 0;
}

void lm_rel_free(lm_rel *r)
{
	if (!r)
		return;
	free(r->slot);
	free(r->free_list);
	free(r);
}

int lm_rel_take(lm_rel *r, uint32_t *ticket)
{
	if (!r->n_free)
		return -1;
	unsigned i = r->free_list[--r->n_free];
	if (!++r->next_ticket)
		r->next_ticket = 1; /* 0 marks a free slot */
	r->slot[i].ticket = r->next_ticket;
	r->slot[i].tries = 0;
	r->slot[i].t_sent = 0;
	*ticket = r->next_ticket;
	return (int)i;
}

void lm_rel_release(lm_rel *r, unsigned slot)
{
	if (slot >= r->cfg.slots || !r->slot[slot].ticket)
		return;
	r->slot[slot].ticket = 0;
	r->free_list[r->n_free++] = slot;
}

void lm_rel_sent(lm_rel *r, unsigned slot, uint64_t now)
{
	struct slot *s = &r->slot[slot];
	if (s->t_sent)
		s->tries++;
	s->t_sent = now ? now : 1;
	s->ahead = r->cfg.slots - r->n_free - 1;
	if (s->tries)
		r->stats.resent++;
}

int lm_rel_answered(lm_rel *r, unsigned slot, uint32_t ticket, uint64_t now)
{
	if (slot >= r->cfg.slots || !ticket || r->slot[slot].ticket != ticket ||
	    !r->slot[slot].t_sent) {
		r->stats.dup_answers++;
		return 0;
	}
	struct slot *s = &r->slot[slot];
	/* one re-sent could be answered for either send: learn only from
	 * requests sent once */
	if (s->tries == 0 && now > s->t_sent) {
		double rtt = (double)(now - s->t_sent);
		if (r->srtt == 0) {
			r->srtt = rtt;
			r->rttvar = rtt / 2;
		} else {
			r->rttvar = 0.75 * r->rttvar +
				    0.25 * fabs(r->srtt - rtt);
			r->srtt = 0.875 * r->srtt + 0.125 * rtt;
		}
	}
	lm_rel_release(r, slot);
	return 1;
}

uint64_t lm_rel_wait(const lm_rel *r, unsigned slot)
{
	const struct slot *s = &r->slot[slot];
	double tpu = r->cfg.ticks_per_us;
	double floor = tpu * 1000.0 * r->cfg.retry_ms;
	/* before the first answer, thrice the floor: a first request also
	 * meets cold caches and first-touch page faults on every stage */
	double w = r->srtt ? r->srtt + 4 * r->rttvar : 3 * floor;
	/* its answer comes after those of the requests ahead of it: twice
	 * their time at the plan's period is always waited (the answer
	 * times of the first requests of a burst say nothing of the last's,
	 * which queue behind them) */
	double queue = 2.0 * (s->ahead + 1) * r->cfg.period_us * tpu;
	w = w > floor ? w : floor;
	w = w > queue ? w : queue;
	return (uint64_t)w << (s->tries < 6 ? s->tries : 6);
}

int lm_rel_due(lm_rel *r, uint64_t now, unsigned *cursor, int *what)
{
	for (; *cursor < r->cfg.slots; (*cursor)++) {
		unsigned i = *cursor;
		const struct slot *s = &r->slot[i];
		if (!s->ticket || !s->t_sent || now < s->t_sent ||
		    now - s->t_sent <= lm_rel_wait(r, i))
			continue;
		(*cursor)++;
		if (s->tries >= r->cfg.max_retries) {
			*what = LM_REL_GIVE_UP;
			r->stats.gave_up++;
		} else {
			*what = LM_REL_RESEND;
		}
		return (int)i;
	}
	return -1;
}

void *lm_rel_copy(const lm_rel *r, unsigned slot)
{
	return slot < r->cfg.slots ? r->slot[slot].copy : NULL;
}

unsigned lm_rel_in_use(const lm_rel *r)
{
	return r->cfg.slots - r->n_free;
}

int lm_rel_in_flight(const lm_rel *r, unsigned slot)
{
	return slot < r->cfg.slots && r->slot[slot].ticket &&
	       r->slot[slot].t_sent;
}

unsigned lm_rel_slots(const lm_rel *r)
{
	return r->cfg.slots;
}

const lm_rel_stats *lm_rel_get_stats(const lm_rel *r)
{
	return &r->stats;
}
