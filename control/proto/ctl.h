/*
 * ctl.h: the control channel between `lamina` and laminad (internal to
 * lamina: it exposes the protobuf-c types of lamina.proto).
 *
 * On a TCP connection to laminad's control port every message is a frame:
 * a 4-byte big-endian length, then that many bytes.  Lengths above
 * LM_CONTROL_MAX_BYTES are refused.  ctl.c is the one framing and session
 * code of both ends: lm_ctl_connect/lm_ctl_call are the client;
 * lm_ctl_greet, lm_ctl_accept, lm_ctl_seal and lm_ctl_open what laminad's
 * non-blocking control port (dataplane/control.c) uses.  The session layer
 * touches no socket, so the unit tests drive it with byte buffers.
 *
 * The fleet handshake (three plain frames, each one encoded message):
 *
 *   laminad -> client  greeting: Reply{id 0, error, hello{protocol 1,
 *                      nonce Ns (32 random bytes), fingerprint, version}}
 *                      (the error tells a client older than the handshake
 *                      to update, which it reports as the answer to its
 *                      request: one clear error, never a hang)
 *   client -> laminad  answer: Request{id 0, hello{protocol 1, nonce Nc
 *                      (32 random bytes), proof Pc}}; no proof: anonymous
 *   laminad -> client  welcome: Reply{id 0, hello{protocol 1, proof Ps}},
 *                      or a refusal: Reply{id 0, error}, then it closes
 *
 * With K the fleet key (32 zero bytes in an anonymous session):
 *   M   = BLAKE2b-256(Ns || Nc, key K, personal "lamina-ctl-v1-ms")
 *   Pc, Ps, Kcs, Ksc = crypto_kdf_derive_from_key(32, id 1, 2, 3, 4,
 *                      context "laminact", M)
 * laminad checks Pc in constant time (crypto_verify_32), the client Ps.
 * Ns is fresh on every connection, so a recorded answer proves nothing on
 * another; Nc is fresh for the client's side likewise.
 *
 * Then every frame is sealed:
 *
 *   length (4, big-endian) = 8 + n + 32
 *   sequence (8, big-endian): 0, 1, 2, ... per direction
 *   body (n): one encoded Request (client to laminad) or Reply (back)
 *   tag (32) = BLAKE2b-256(direction || sequence || body, key Kcs from the
 *              client, Ksc from laminad), direction 0x01 client->laminad,
 *              0x02 laminad->client
 *
 * A frame whose tag is wrong (a bit flipped, truncated, another session's)
 * or whose sequence is not the next one (replayed, reordered, dropped) is
 * refused and the connection ends.  The channel is authenticated, not
 * encrypted: an observer reads the messages but can neither change,
 * replay nor forge one.  A Reply carries the id of the Request it answers.
 */
#ifndef LAMINA_CTL_H
#define LAMINA_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"
#include "lamina/fleet.h"
#include "lamina.pb-c.h"

#define LM_CONTROL_PORT 7700
#define LM_CONTROL_MAX_BYTES (16u << 20)
#define LM_CTL_FRAME_HEAD 4

#define LM_CTL_PROTOCOL 1
#define LM_CTL_NONCE_BYTES 32
#define LM_CTL_PROOF_BYTES 32
#define LM_CTL_SEQ_BYTES 8
#define LM_CTL_TAG_BYTES 32
/* where a sealed frame's body starts, and what sealing adds to a body */
#define LM_CTL_SEALED_HEAD (LM_CTL_FRAME_HEAD + LM_CTL_SEQ_BYTES)
#define LM_CTL_SEALED_EXTRA (LM_CTL_SEQ_BYTES + LM_CTL_TAG_BYTES)
/* a handshake frame's length at most, and a whole one's room */
#define LM_CTL_HELLO_MAX 1024
#define LM_CTL_HELLO_FRAME (LM_CTL_FRAME_HEAD + LM_CTL_HELLO_MAX)
/* a frame's length at most in an anonymous session (describe, stats) */
#define LM_CTL_ANON_MAX 4096

/** One side's keys of an established session. */
typedef struct lm_ctl_session {
	uint8_t tx_key[32], rx_key[32];
	uint8_t tx_dir, rx_dir;
	uint64_t tx_seq, rx_seq; /* the next to send, the next expected */
	int trusted;		 /* the peer proved the fleet key */
} lm_ctl_session;

/** The handshake in progress (either side). */
typedef struct lm_ctl_hs {
	uint8_t ns[LM_CTL_NONCE_BYTES], nc[LM_CTL_NONCE_BYTES];
	/* laminad: it has a key; client: it proves one */
	int keyed;
	char fp[LM_FLEET_FP_CHARS + 1]; /* laminad's fingerprint ("": none) */
	char version[32];		/* client: laminad's version */
	/* client: the Ps it expects, and the session once welcomed */
	uint8_t expect[LM_CTL_PROOF_BYTES];
	lm_ctl_session pending;
} lm_ctl_hs;

typedef struct lm_ctl lm_ctl;

/**
 * Connect to a laminad control port and make the fleet handshake.
 * @param host  numeric address or host name
 * @param timeout_ms  for the connection, the handshake and each reply
 * @param key   the fleet key to prove; NULL: an anonymous session (laminad
 *              answers describe and stats only)
 * @return 0; -ECONNREFUSED when nothing listens; -ETIMEDOUT (also when no
 *         greeting comes: a laminad older than the handshake); -EACCES
 *         when laminad refuses the key (the message gives both
 *         fingerprints) or does not prove it back; -EPROTO when the peer
 *         does not speak the handshake; other -errno.
 */
int lm_ctl_connect(const char *host, uint16_t port, int timeout_ms,
		   const lm_fleet_key *key, lm_ctl **out, lm_error *e);

/** Close the connection; safe on NULL. */
void lm_ctl_free(lm_ctl *c);

/** 1 when laminad took this connection's key (privileged requests pass). */
int lm_ctl_trusted(const lm_ctl *c);

/**
 * Send one request (its id is filled in) and wait for the reply.
 * @param reply  set to the decoded reply on success; free it with
 *               lamina__reply__free_unpacked(reply, NULL)
 * @return 0; the reply's error code with its message in e when laminad
 *         refused the request (-EACCES: it needs the fleet key);
 *         -EPROTO for a malformed reply; -EBADMSG for a reply whose tag or
 *         sequence is wrong; -errno.
 */
int lm_ctl_call(lm_ctl *c, Lamina__Request *req, Lamina__Reply **reply,
		lm_error *e);

/* ---- the session layer, without sockets ---- */

/**
 * laminad: a greeting for a new connection, with a fresh nonce in hs.
 * @param key  laminad's fleet key, NULL when it has none
 * @param frame  room for LM_CTL_HELLO_FRAME bytes; *len: its length
 */
void lm_ctl_greet(lm_ctl_hs *hs, const lm_fleet_key *key,
		  const char *version, uint8_t *frame, size_t *len);

/**
 * laminad: check the client's answer (a frame's body) and open the
 * session.  Either way *frame gets what to send (LM_CTL_HELLO_FRAME of
 * room): the welcome, or the refusal after which laminad closes.
 * @return 0 with s set (s->trusted when Pc was right); -EACCES for a
 *         proof that is wrong (another key, a replayed answer) or one this
 *         keyless laminad cannot check; -EPROTO for anything that is not
 *         an answer (an old client's request); e says which, for the log.
 */
int lm_ctl_accept(lm_ctl_hs *hs, const lm_fleet_key *key,
		  const uint8_t *body, size_t n, lm_ctl_session *s,
		  uint8_t *frame, size_t *len, lm_error *e);

/**
 * Client: answer laminad's greeting (a frame's body), proving key when
 * given and laminad has one.
 * @param frame  room for LM_CTL_HELLO_FRAME bytes; *len: its length
 * @return 0; -EPROTO when the body is not a greeting of protocol 1.
 */
int lm_ctl_answer(lm_ctl_hs *hs, const lm_fleet_key *key,
		  const uint8_t *body, size_t n, uint8_t *frame, size_t *len,
		  lm_error *e);

/**
 * Client: laminad's welcome or refusal (a frame's body).
 * @return 0 with s set; laminad's error code and message when it refused;
 *         -EACCES when it did not prove the key; -EPROTO.
 */
int lm_ctl_welcome(lm_ctl_hs *hs, const uint8_t *body, size_t n,
		   lm_ctl_session *s, lm_error *e);

/**
 * Seal the n-byte body at frame + LM_CTL_SEALED_HEAD: write the frame's
 * length, the next sequence number and the tag after the body (room for
 * LM_CTL_SEALED_HEAD + n + LM_CTL_TAG_BYTES bytes).  The caller keeps
 * n + LM_CTL_SEALED_EXTRA within LM_CONTROL_MAX_BYTES.
 */
void lm_ctl_seal(lm_ctl_session *s, uint8_t *frame, size_t n);

/**
 * Open a sealed frame: payload is the m bytes after its length.
 * @param body, n  set to the body (inside payload)
 * @return 0; -EBADMSG for a wrong tag (a changed or truncated frame, or
 *         another session's); -EPROTO for a frame too short to be sealed
 *         or out of sequence (replayed, reordered); e says which.
 */
int lm_ctl_open(lm_ctl_session *s, const uint8_t *payload, size_t m,
		const uint8_t **body, size_t *n, lm_error *e);

/** Overwrite a handshake's and a session's secrets (safe on NULL). */
void lm_ctl_wipe(lm_ctl_hs *hs, lm_ctl_session *s);

/** The length a frame head announces. */
static inline uint32_t lm_ctl_frame_len(const uint8_t p[LM_CTL_FRAME_HEAD])
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/** Write a frame head announcing n bytes. */
static inline void lm_ctl_frame_put(uint8_t p[LM_CTL_FRAME_HEAD], uint32_t n)
{
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

#endif
