/*
 * deploy.h: putting a plan on its devices and taking it off again, the
 * procedures behind `lamina deploy` and `lamina teardown`.  Every action
 * is saved in the deployment record (record.h) before and after it is
 * made, so teardown can undo a deployment however far it got.
 */
#ifndef LAMINA_DEPLOY_H
#define LAMINA_DEPLOY_H

#include "record.h"

typedef struct lm_deploy_opts {
	const char *plan;      /**< plan.json */
	const char *model;     /**< slice folder; NULL: the plan's */
	const char *state_dir; /**< the state folder (lm_state_dir) */
	const char *laminad;   /**< executable; NULL: lm_agent_find */
	const char *poll;      /**< for a laminad we start: busy|adaptive */
	const char *hugepages; /**< for a laminad we start: auto|no */
	const char *name;      /**< clients' name; NULL: the model's stem
				    (made unique on its laminad) */
	long max_delay_us;     /**< a batch's wait to fill; -1: the plan's
				    period */
	long max_queue;        /**< requests queued at most; 0: laminad's
				    default */
	int progress;          /**< print what is done on stderr */
	volatile int *stop;    /**< set (by a signal) to give up and undo */
} lm_deploy_opts;

/**
 * Deploy a plan whose devices are all on this host: find (or start) the
 * laminad of each device, load every stage, start serving.  On failure
 * everything done is undone (lm_teardown) before returning.
 * @param out  the record of the running deployment
 * @return 0; -EINVAL for a plan this host cannot run (remote device,
 *         missing slices, too few cores), with the reason; errors of
 *         laminad; -EINTR when *stop was set.  When the undo itself failed,
 *         the message says which `lamina teardown` finishes it.
 */
int lm_deploy(const lm_deploy_opts *o, lm_record **out, lm_error *e);

#define LM_DRAIN_S 30.0 /* teardown's default wait for admitted requests */

/**
 * Undo deployment r: let its ingress answer what it admitted (for at most
 * drain_s seconds; new requests are refused meanwhile), tear its stages
 * down on every laminad, stop a laminad
 * it started (unless another deployment uses it: that one then owns it),
 * clean up after one that died, and remove the record.  Best effort: on
 * failure it goes on with the rest and keeps the record for another try.
 * @param state_dir  the state folder (other records are looked at there)
 * @return 0; the first error.
 */
int lm_teardown(lm_record *r, const char *state_dir, int progress,
		double drain_s, lm_error *e);

#endif
