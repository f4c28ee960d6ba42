/*
 * ship.h: shipping a stage's model files into a laminad's store over the
 * control channel (StoreQuery, PushFile: lamina.proto), for `lamina
 * deploy` and the test driver.  A file is named by its SHA-256 (computed
 * here once), sent only when the store lacks it, in chunks of
 * LM_SHIP_CHUNK, in order; laminad checks the hash of what arrived.
 */
#ifndef LAMINA_SHIP_H
#define LAMINA_SHIP_H

#include <limits.h>
#include <stdint.h>

#include "ctl.h"
#include "lamina.pb-c.h"

#define LM_SHIP_CHUNK (4u << 20)
#define LM_SHIP_HASH 32

typedef struct lm_ship_file {
	char name[256];	     /**< as the manifest names it */
	char path[PATH_MAX]; /**< where it is here */
	uint64_t size;
	uint8_t sha256[LM_SHIP_HASH];
	int hashed;
} lm_ship_file;

/**
 * The files of a stage of slice folder dir: manifest.json and the files
 * of slices first..last, appended to *files (grown; *n counts them).
 * @return 0; the manifest's errors; -ENOMEM.
 */
int lm_ship_stage_files(const char *dir, int first, int last,
			lm_ship_file **files, int *n, lm_error *e);

/**
 * Make sure the laminad of c holds every file: hash those not hashed yet,
 * ask its store, push what it lacks.  *pushed (may be NULL) adds the bytes
 * sent.
 * @return 0; -errno naming the file; laminad's refusals.
 */
int lm_ship(lm_ctl *c, lm_ship_file *files, int n, uint64_t *pushed,
	    lm_error *e);

/**
 * The LoadStage `files` field for these files: ModelFile structs in
 * `store` (n of them) pointed to by `list`.
 */
void lm_ship_model_files(const lm_ship_file *files, int n,
			 Lamina__ModelFile *store, Lamina__ModelFile **list);

#endif
