/*
 * ctl.c: the control channel's framing and session layer (see ctl.h) and
 * its client end.  The handshake and sealing functions work on byte
 * buffers only, for laminad's non-blocking control port and the unit
 * tests; the client uses blocking sockets, every wait bounded by the
 * connection's timeout.  Cryptography is libsodium's: BLAKE2b (keyed, for
 * the session's master key and every frame's tag), its KDF, randombytes
 * and constant-time comparison.
 */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "lamina/sock.h"

#define DIR_TO_LAMINAD 0x01
#define DIR_TO_CLIENT 0x02

static const uint8_t personal_master[crypto_generichash_blake2b_PERSONALBYTES] =
	"lamina-ctl-v1-ms";
static const char kdf_context[crypto_kdf_CONTEXTBYTES + 1] = "laminact";
enum { KDF_PC = 1, KDF_PS, KDF_CS, KDF_SC };

static void put_u64(uint8_t p[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t p[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Everything a session needs from the key (zeros: anonymous) and both
 * nonces: the two proofs and the two directions' keys. */
struct derived {
	uint8_t pc[32], ps[32], kcs[32], ksc[32];
};

static void derive(const lm_fleet_key *key, const uint8_t *ns,
		   const uint8_t *nc, struct derived *d)
{
	static const uint8_t zero[LM_FLEET_KEY_BYTES];
	uint8_t in[2 * LM_CTL_NONCE_BYTES], m[crypto_kdf_KEYBYTES];
	memcpy(in, ns, LM_CTL_NONCE_BYTES);
	memcpy(in + LM_CTL_NONCE_BYTES, nc, LM_CTL_NONCE_BYTES);
	crypto_generichash_blake2b_salt_personal(
		m, sizeof(m), in, sizeof(in), key ? key->bytes : zero,
		LM_FLEET_KEY_BYTES, NULL, personal_master);
	crypto_kdf_derive_from_key(d->pc, 32, KDF_PC, kdf_context, m);
	crypto_kdf_derive_from_key(d->ps, 32, KDF_PS, kdf_context, m);
	crypto_kdf_derive_from_key(d->kcs, 32, KDF_CS, kdf_context, m);
	crypto_kdf_derive_from_key(d->ksc, 32, KDF_SC, kdf_context, m);
	sodium_memzero(m, sizeof(m));
}

static void session_set(lm_ctl_session *s, const struct derived *d,
			int laminad, int trusted)
{
	memcpy(s->tx_key, laminad ? d->ksc : d->kcs, 32);
	memcpy(s->rx_key, laminad ? d->kcs : d->ksc, 32);
	s->tx_dir = laminad ? DIR_TO_CLIENT : DIR_TO_LAMINAD;
	s->rx_dir = laminad ? DIR_TO_LAMINAD : DIR_TO_CLIENT;
	s->tx_seq = s->rx_seq = 0;
	s->trusted = trusted;
}

/* A frame's tag: BLAKE2b-256 keyed with the direction's key over the
 * direction, the sequence (as sent, big-endian) and the body. */
static void tag(const uint8_t key[32], uint8_t dir, const uint8_t seq[8],
		const uint8_t *body, size_t n, uint8_t out[LM_CTL_TAG_BYTES])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, key, 32, LM_CTL_TAG_BYTES);
	crypto_generichash_update(&st, &dir, 1);
	crypto_generichash_update(&st, seq, LM_CTL_SEQ_BYTES);
	crypto_generichash_update(&st, body, n);
	crypto_generichash_final(&st, out, LM_CTL_TAG_BYTES);
}

void lm_ctl_seal(lm_ctl_session *s, uint8_t *frame, size_t n)
{
	uint8_t *seq = frame + LM_CTL_FRAME_HEAD;
	lm_ctl_frame_put(frame, (uint32_t)(n + LM_CTL_SEALED_EXTRA));
	put_u64(seq, s->tx_seq++);
	tag(s->tx_key, s->tx_dir, seq, frame + LM_CTL_SEALED_HEAD, n,
	    frame + LM_CTL_SEALED_HEAD + n);
}

int lm_ctl_open(lm_ctl_session *s, const uint8_t *payload, size_t m,
		const uint8_t **body, size_t *n, lm_error *e)
{
	uint8_t want[LM_CTL_TAG_BYTES];
	if (m < LM_CTL_SEALED_EXTRA)
		return lm_fail(e, -EPROTO, "a frame of %zu bytes, too short to "
			       "be sealed", m);
	size_t len = m - LM_CTL_SEALED_EXTRA;
	tag(s->rx_key, s->rx_dir, payload, payload + LM_CTL_SEQ_BYTES, len,
	    want);
	if (crypto_verify_32(want, payload + m - LM_CTL_TAG_BYTES) != 0)
		return lm_fail(e, -EBADMSG, "a frame whose tag is wrong "
			       "(changed, truncated or of another session)");
	uint64_t seq = get_u64(payload);
	if (seq != s->rx_seq)
		return lm_fail(e, -EPROTO, "a frame out of sequence: %llu "
			       "where %llu was due (replayed or reordered)",
			       (unsigned long long)seq,
			       (unsigned long long)s->rx_seq);
	s->rx_seq++;
	*body = payload + LM_CTL_SEQ_BYTES;
	*n = len;
	return 0;
}

void lm_ctl_wipe(lm_ctl_hs *hs, lm_ctl_session *s)
{
	if (hs)
		sodium_memzero(hs, sizeof(*hs));
	if (s)
		sodium_memzero(s, sizeof(*s));
}

/* ---- the handshake ---- */

/* A plain frame of one Reply or Request.  Handshake messages are small:
 * ids, a hello of two 32-byte fields and strings of at most an lm_error's
 * 512 bytes, well within LM_CTL_HELLO_MAX. */
static void plain_reply(const Lamina__Reply *r, uint8_t *frame, size_t *len)
{
	size_t n = lamina__reply__get_packed_size(r);
	if (n > LM_CTL_HELLO_MAX)
		abort(); /* our own message: the sizes above bound it */
	lm_ctl_frame_put(frame, (uint32_t)n);
	lamina__reply__pack(r, frame + LM_CTL_FRAME_HEAD);
	*len = LM_CTL_FRAME_HEAD + n;
}

void lm_ctl_greet(lm_ctl_hs *hs, const lm_fleet_key *key,
		  const char *version, uint8_t *frame, size_t *len)
{
	Lamina__Reply r = LAMINA__REPLY__INIT;
	Lamina__Error err = LAMINA__ERROR__INIT;
	Lamina__Hello h = LAMINA__HELLO__INIT;
	char msg[200];
	memset(hs, 0, sizeof(*hs));
	lm_fleet_init(NULL);
	randombytes_buf(hs->ns, sizeof(hs->ns));
	hs->keyed = key != NULL;
	if (key)
		lm_fleet_fingerprint(key, hs->fp);
	snprintf(msg, sizeof(msg), "laminad %.32s authenticates its control "
		 "channel (the fleet handshake) and this client does not: use "
		 "lamina %.32s", version, version);
	err.code = -EPROTO;
	err.message = msg;
	h.protocol = LM_CTL_PROTOCOL;
	h.nonce.data = hs->ns;
	h.nonce.len = sizeof(hs->ns);
	h.fingerprint = hs->fp;
	h.version = (char *)version;
	r.error = &err;
	r.hello = &h;
	plain_reply(&r, frame, len);
}

static int refusal(int code, uint8_t *frame, size_t *len, lm_error *e,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refusal(int code, uint8_t *frame, size_t *len, lm_error *e,
		   const char *fmt, ...)
{
	Lamina__Reply r = LAMINA__REPLY__INIT;
	Lamina__Error err = LAMINA__ERROR__INIT;
	lm_error mine;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(mine.msg, sizeof(mine.msg), fmt, ap);
	va_end(ap);
	err.code = code;
	err.message = mine.msg;
	r.error = &err;
	plain_reply(&r, frame, len);
	return lm_fail(e, code, "%s", mine.msg);
}

int lm_ctl_accept(lm_ctl_hs *hs, const lm_fleet_key *key,
		  const uint8_t *body, size_t n, lm_ctl_session *s,
		  uint8_t *frame, size_t *len, lm_error *e)
{
	Lamina__Reply r = LAMINA__REPLY__INIT;
	Lamina__Hello h = LAMINA__HELLO__INIT;
	struct derived d;
	int rc = 0;
	Lamina__Request *q = lamina__request__unpack(NULL, n, body);
	const Lamina__Hello *a = q ? q->hello : NULL;
	if (!a) {
		rc = refusal(-EPROTO, frame, len, e, "%s before the fleet "
			     "handshake (a lamina older than this laminad?)",
			     q ? "a request" : "bytes that are not a request");
		goto out;
	}
	if (a->protocol != LM_CTL_PROTOCOL || q->id != 0 ||
	    q->body_case != LAMINA__REQUEST__BODY__NOT_SET ||
	    a->nonce.len != LM_CTL_NONCE_BYTES ||
	    (a->proof.len != 0 && a->proof.len != LM_CTL_PROOF_BYTES)) {
		rc = refusal(-EPROTO, frame, len, e, "a handshake answer of "
			     "protocol %u that is not well formed (this "
			     "laminad speaks protocol %d)", a->protocol,
			     LM_CTL_PROTOCOL);
		goto out;
	}
	memcpy(hs->nc, a->nonce.data, LM_CTL_NONCE_BYTES);
	if (a->proof.len && !hs->keyed) {
		rc = refusal(-EACCES, frame, len, e, "a proof of a fleet key, "
			     "but this laminad has none (start it with "
			     "--fleet-key)");
		goto out;
	}
	derive(a->proof.len ? key : NULL, hs->ns, hs->nc, &d);
	if (a->proof.len && crypto_verify_32(d.pc, a->proof.data) != 0) {
		rc = refusal(-EACCES, frame, len, e, "the fleet key does not "
			     "match this laminad's (fingerprint %s)", hs->fp);
		goto out;
	}
	session_set(s, &d, 1, a->proof.len != 0);
	h.protocol = LM_CTL_PROTOCOL;
	if (s->trusted) {
		h.proof.data = d.ps;
		h.proof.len = sizeof(d.ps);
	}
	r.hello = &h;
	plain_reply(&r, frame, len);
out:
	sodium_memzero(&d, sizeof(d));
	lamina__request__free_unpacked(q, NULL);
	return rc;
}

int lm_ctl_answer(lm_ctl_hs *hs, const lm_fleet_key *key,
		  const uint8_t *body, size_t n, uint8_t *frame, size_t *len,
		  lm_error *e)
{
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__Hello h = LAMINA__HELLO__INIT;
	struct derived d;
	int rc;
	memset(hs, 0, sizeof(*hs));
	if ((rc = lm_fleet_init(e)))
		return rc;
	Lamina__Reply *r = lamina__reply__unpack(NULL, n, body);
	const Lamina__Hello *g = r ? r->hello : NULL;
	if (!g || r->id != 0 || g->nonce.len != LM_CTL_NONCE_BYTES) {
		lamina__reply__free_unpacked(r, NULL);
		return lm_fail(e, -EPROTO, "it does not greet as a laminad "
			       "(not lamina's control port?)");
	}
	if (g->protocol != LM_CTL_PROTOCOL) {
		unsigned p = g->protocol;
		lamina__reply__free_unpacked(r, NULL);
		return lm_fail(e, -EPROTO, "it speaks control protocol %u, "
			       "this lamina %d: use matching versions", p,
			       LM_CTL_PROTOCOL);
	}
	memcpy(hs->ns, g->nonce.data, LM_CTL_NONCE_BYTES);
	snprintf(hs->fp, sizeof(hs->fp), "%s",
		 g->fingerprint ? g->fingerprint : "");
	snprintf(hs->version, sizeof(hs->version), "%s",
		 g->version ? g->version : "");
	lamina__reply__free_unpacked(r, NULL);
	randombytes_buf(hs->nc, sizeof(hs->nc));
	/* a laminad without a key can check no proof: anonymous */
	hs->keyed = key && hs->fp[0];
	derive(hs->keyed ? key : NULL, hs->ns, hs->nc, &d);
	session_set(&hs->pending, &d, 0, hs->keyed);
	memcpy(hs->expect, d.ps, sizeof(hs->expect));
	h.protocol = LM_CTL_PROTOCOL;
	h.nonce.data = hs->nc;
	h.nonce.len = sizeof(hs->nc);
	if (hs->keyed) {
		h.proof.data = d.pc;
		h.proof.len = sizeof(d.pc);
	}
	q.hello = &h;
	size_t m = lamina__request__get_packed_size(&q);
	lm_ctl_frame_put(frame, (uint32_t)m);
	lamina__request__pack(&q, frame + LM_CTL_FRAME_HEAD);
	*len = LM_CTL_FRAME_HEAD + m;
	sodium_memzero(&d, sizeof(d));
	return 0;
}

int lm_ctl_welcome(lm_ctl_hs *hs, const uint8_t *body, size_t n,
		   lm_ctl_session *s, lm_error *e)
{
	Lamina__Reply *r = lamina__reply__unpack(NULL, n, body);
	int rc = 0;
	if (r && r->error) {
		rc = r->error->code < 0 ? r->error->code : -EACCES;
		lm_fail(e, rc, "%s", r->error->message && *r->error->message
					     ? r->error->message
					     : "refused");
	} else if (!r || !r->hello || r->id != 0) {
		rc = lm_fail(e, -EPROTO, "its answer to the handshake is not a "
			     "welcome");
	} else if (hs->keyed &&
		   (r->hello->proof.len != LM_CTL_PROOF_BYTES ||
		    crypto_verify_32(hs->expect, r->hello->proof.data) != 0)) {
		rc = lm_fail(e, -EACCES, "it did not prove the fleet key (not "
			     "a laminad of this fleet)");
	} else {
		*s = hs->pending;
	}
	lamina__reply__free_unpacked(r, NULL);
	sodium_memzero(hs, sizeof(*hs));
	return rc;
}

/* ---- the client ---- */

struct lm_ctl {
	int fd, timeout_ms;
	uint64_t next_id;
	lm_ctl_session s;
	char peer[300]; /* "laminad at HOST:PORT", for messages */
};

/* One frame of at most max bytes into a malloc'd buffer. */
static int read_frame(lm_ctl *c, uint32_t max, uint8_t **out, size_t *len,
		      lm_error *e)
{
	uint8_t head[LM_CTL_FRAME_HEAD];
	int rc = lm_sock_read(c->fd, head, sizeof(head), c->timeout_ms,
			      "laminad", e);
	*out = NULL;
	if (rc)
		return rc;
	uint32_t m = lm_ctl_frame_len(head);
	if (m > max)
		return lm_fail(e, -EPROTO, "%s sent a frame of %u bytes (at "
			       "most %u here)", c->peer, m, max);
	uint8_t *buf = malloc(m ? m : 1);
	if (!buf)
		return lm_fail(e, -ENOMEM, "out of memory");
	if ((rc = lm_sock_read(c->fd, buf, m, c->timeout_ms, "laminad", e))) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = m;
	return 0;
}

static int handshake(lm_ctl *c, const lm_fleet_key *key, lm_error *e)
{
	lm_ctl_hs hs;
	uint8_t frame[LM_CTL_HELLO_FRAME], *in = NULL;
	size_t n = 0, len;
	int rc = read_frame(c, LM_CTL_HELLO_MAX, &in, &n, e);
	if (rc == -ETIMEDOUT)
		return lm_fail(e, rc, "%s sent no greeting within %d ms (a "
			       "laminad older than the fleet handshake, or "
			       "busy?)", c->peer, c->timeout_ms);
	if (rc)
		return lm_fail_prefix(e, rc, "%s, waiting for its greeting",
				      c->peer);
	rc = lm_ctl_answer(&hs, key, in, n, frame, &len, e);
	free(in);
	if (rc)
		return lm_fail_prefix(e, rc, "%s", c->peer);
	struct iovec iov = { frame, len };
	if ((rc = lm_sock_writev(c->fd, &iov, 1, "laminad", e)) ||
	    (rc = read_frame(c, LM_CTL_HELLO_MAX, &in, &n, e)))
		return lm_fail_prefix(e, rc, "%s, in the handshake", c->peer);
	char theirs[LM_FLEET_FP_CHARS + 1];
	snprintf(theirs, sizeof(theirs), "%s", hs.fp);
	int keyed = hs.keyed;
	rc = lm_ctl_welcome(&hs, in, n, &c->s, e);
	free(in);
	if (rc == -EACCES && keyed) {
		char ours[LM_FLEET_FP_CHARS + 1];
		lm_fleet_fingerprint(key, ours);
		if (strcmp(ours, theirs))
			return lm_fail(e, rc, "%s refuses this fleet key: it "
				       "belongs to the fleet of key %s, this "
				       "lamina's is %s (lamina fleet key)",
				       c->peer, theirs, ours);
	}
	if (rc)
		return lm_fail_prefix(e, rc, "%s", c->peer);
	return 0;
}

int lm_ctl_connect(const char *host, uint16_t port, int timeout_ms,
		   const lm_fleet_key *key, lm_ctl **out, lm_error *e)
{
	lm_ctl *c = calloc(1, sizeof(*c));
	int rc;
	if (!c)
		return lm_fail(e, -ENOMEM, "out of memory");
	c->timeout_ms = timeout_ms;
	snprintf(c->peer, sizeof(c->peer), "laminad at %s:%u", host, port);
	if ((rc = lm_sock_connect(host, port, timeout_ms, &c->fd, e))) {
		free(c);
		return rc;
	}
	if ((rc = handshake(c, key, e))) {
		lm_ctl_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void lm_ctl_free(lm_ctl *c)
{
	if (!c)
		return;
	close(c->fd);
	sodium_memzero(&c->s, sizeof(c->s));
	free(c);
}

int lm_ctl_trusted(const lm_ctl *c)
{
	return c->s.trusted;
}

int lm_ctl_call(lm_ctl *c, Lamina__Request *req, Lamina__Reply **reply,
		lm_error *e)
{
	int rc;
	*reply = NULL;
	req->id = ++c->next_id;
	size_t n = lamina__request__get_packed_size(req);
	if (n > LM_CONTROL_MAX_BYTES - LM_CTL_SEALED_EXTRA)
		return lm_fail(e, -EMSGSIZE, "control request of %zu bytes "
			       "(limit %u)", n,
			       LM_CONTROL_MAX_BYTES - LM_CTL_SEALED_EXTRA);
	uint8_t *buf = malloc(LM_CTL_SEALED_HEAD + n + LM_CTL_TAG_BYTES);
	if (!buf)
		return lm_fail(e, -ENOMEM, "out of memory");
	lamina__request__pack(req, buf + LM_CTL_SEALED_HEAD);
	lm_ctl_seal(&c->s, buf, n);
	struct iovec iov = { buf, LM_CTL_SEALED_HEAD + n + LM_CTL_TAG_BYTES };
	rc = lm_sock_writev(c->fd, &iov, 1, "laminad", e);
	free(buf);
	size_t m = 0;
	if (rc || (rc = read_frame(c, LM_CONTROL_MAX_BYTES, &buf, &m, e)))
		return rc;
	const uint8_t *body;
	size_t len;
	if ((rc = lm_ctl_open(&c->s, buf, m, &body, &len, e))) {
		free(buf);
		return lm_fail_prefix(e, rc == -EBADMSG ? rc : -EPROTO,
				      "%s sent", c->peer);
	}
	Lamina__Reply *r = lamina__reply__unpack(NULL, len, body);
	free(buf);
	if (!r)
		return lm_fail(e, -EPROTO, "laminad sent a reply that does not "
			       "decode");
	if (r->id != req->id && !(r->id == 0 && r->error)) {
		unsigned long long got = (unsigned long long)r->id;
		lamina__reply__free_unpacked(r, NULL);
		return lm_fail(e, -EPROTO, "reply to request %llu while waiting "
			       "for %llu", got, (unsigned long long)req->id);
	}
	if (r->error) {
		rc = r->error->code < 0 ? r->error->code : -EIO;
		lm_fail(e, rc, "%s", r->error->message ? r->error->message
						       : "refused");
		lamina__reply__free_unpacked(r, NULL);
		return rc;
	}
	*reply = r;
	return 0;
}
