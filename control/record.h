/*
 * record.h: deployment records, the control plane's memory of what a
 * deployment did, read by `deploy`, `infer`, `status` and `teardown`.
 * record.c is the only code that reads or writes them.
 *
 * One JSON file per deployment, STATE/<id>.json, in the state folder
 * (--state-dir, else $LAMINA_STATE_DIR, else $XDG_STATE_HOME/lamina, else
 * ~/.local/state/lamina).  `lamina deploy` saves the record before and
 * after every action (a laminad started, a stage loading, loaded, the
 * pipeline started), so `lamina teardown` can undo all of it even when
 * deploy, or laminad, died half-way.  Files are replaced atomically
 * (written beside under a name of their own and renamed).
 *
 *   {"format": "lamina-deployment", "version": 2, "id", "name", "status",
 *    "plan", "model", "batch", "created", "created_unix",
 *    "devices": [{"name", "address", "laminad"}],
 *    "laminads": [{"host", "control_port", "ingress_port", "http_port",
 *                  "started", "ssh", "exe", "pid"}],
 *    "stages": [{"stage", "device", "laminad", "slices": [first, last],
 *                "replicas", "cores": [...], "status"}]}
 *
 * A record names no file: what a laminad took is in its own state file,
 * STATE/laminad-<control_port>.json (dataplane/state.h), found from the
 * state folder and the port, and given back by `laminad --cleanup`.  So
 * a damaged or hostile record cannot make teardown remove anything
 * outside the state folder.
 */
#ifndef LAMINA_RECORD_H
#define LAMINA_RECORD_H

#include <limits.h>

#include "lamina/common.h"
#include "lamina/optimizer.h"

#define LM_REC_ID_MAX 32 /* bytes of an id, NUL included */
#define LM_REC_MAX_LAMINADS 16
#define LM_REC_MAX_CORES 64 /* replicas of one stage */

/** A laminad one or more of the plan's devices run on. */
typedef struct lm_rec_laminad {
	char host[LM_ADDR_MAX]; /**< numeric address it listens on */
	int control_port, ingress_port;
	int http_port; /**< its HTTP front; 0: none (or not known) */
	int started; /**< 1: this deployment started it and must stop it */
	char ssh[LM_ADDR_MAX]; /**< started over ssh at this destination */
	char exe[256];         /**< the laminad it ran there ("": on PATH) */
	int pid;     /**< last seen; 0 while unknown */
} lm_rec_laminad;

typedef enum lm_stage_status {
	LM_STAGE_PLANNED, /**< nothing sent yet */
	LM_STAGE_LOADING, /**< LoadStage sent, no answer recorded */
	LM_STAGE_LOADED,
} lm_stage_status;

typedef struct lm_rec_stage {
	char device[LM_NAME_MAX];
	int laminad; /**< index into laminads */
	int first, last;
	int replicas;
	int n_cores;
	int cores[LM_REC_MAX_CORES];
	lm_stage_status status;
} lm_rec_stage;

typedef struct lm_rec_device {
	char name[LM_NAME_MAX];
	char address[LM_ADDR_MAX]; /**< as the plan gives it */
	int laminad;
} lm_rec_device;

typedef struct lm_record {
	char id[LM_REC_ID_MAX];
	char name[LM_REC_ID_MAX]; /**< clients' name for it (HTTP's model) */
	char file[PATH_MAX];   /**< where it is saved */
	char status[32];       /**< deploying, running, failed, tearing-down */
	char plan[PATH_MAX];
	char model[PATH_MAX];  /**< the slice folder */
	int batch;
	char created[32];      /**< UTC, ISO 8601 */
	double created_unix;
	int n_devices;
	lm_rec_device *devices;
	int n_laminads;
	lm_rec_laminad laminads[LM_REC_MAX_LAMINADS];
	int n_stages;
	lm_rec_stage *stages;
} lm_record;

/**
 * The state folder: dir when given, else the environment (see the top of
 * this file), created (0700) when missing.
 * @return 0; -errno naming the folder when it cannot be made.
 */
int lm_state_dir(const char *dir, char *out, size_t len, lm_error *e);

/**
 * A new record with a fresh id ("d-" and 8 hex digits) in state folder
 * dir, with room for n_devices devices and n_stages stages, created now.
 * Not saved yet.
 * @return 0, -ENOMEM, or -errno when no randomness is available.
 */
int lm_record_create(const char *dir, int n_devices, int n_stages,
		     lm_record **out, lm_error *e);

/**
 * Read the record of deployment id from state folder dir.
 * @return 0; -ENOENT when there is none; -EINVAL for an id that is not
 *         one, or naming the file and the field when it is damaged.
 */
int lm_record_load(const char *dir, const char *id, lm_record **out,
		   lm_error *e);

/** Write the record to r->file (temporary file, then rename). */
int lm_record_save(const lm_record *r, lm_error *e);

/** Remove the record's file; a missing file is not an error. */
int lm_record_remove(const lm_record *r, lm_error *e);

/** Free; safe on NULL. */
void lm_record_free(lm_record *r);

/**
 * The URL of r's model on its ingress laminad's HTTP front,
 * "http://HOST:PORT/v2/models/NAME".
 * @return 1; 0 (and "") when that laminad has no HTTP front.
 */
int lm_record_http_url(const lm_record *r, char *buf, size_t len);

/**
 * Ids of the deployments recorded in dir, sorted.
 * @param ids  set to a malloc'd array of n ids (free with free())
 * @return 0, -ENOMEM, -errno when dir cannot be read (-ENOENT: no ids).
 */
int lm_record_list(const char *dir, char (**ids)[LM_REC_ID_MAX], int *n,
		   lm_error *e);

/** 1 when id has the shape of a deployment id (no path in it). */
int lm_record_id_ok(const char *id);

#endif
