/*
 * test_ctl.c: the control channel's session layer (control/proto/ctl.h)
 * without sockets: both ends of the fleet handshake driven with byte
 * buffers, then sealed frames each way.  A good handshake opens trusted
 * sessions; a wrong key, a replayed answer, a proof to a keyless laminad,
 * an old client's request and a welcome that proves nothing are refused;
 * a frame replayed, reordered, truncated, with any one bit flipped,
 * reflected back or from another session is refused.  The fleet key's
 * line read from a pipe (laminad --fleet-key -).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ctl.h"

/* Two ends of one connection: laminad's and the client's. */
struct pair {
	lm_ctl_hs lhs, chs;
	lm_ctl_session ls, cs;
	uint8_t greeting[LM_CTL_HELLO_FRAME], answer[LM_CTL_HELLO_FRAME];
	uint8_t welcome[LM_CTL_HELLO_FRAME];
	size_t greeting_len, answer_len, welcome_len;
	int accept_rc, welcome_rc;
	lm_error e;
};

#define BODY(frame) ((frame) + LM_CTL_FRAME_HEAD)
#define BODY_LEN(len) ((len) - LM_CTL_FRAME_HEAD)

/* The whole handshake; the return codes of accept and welcome in p. */
static int handshake(struct pair *p, const lm_fleet_key *laminad_key,
		     const lm_fleet_key *client_key)
{
	memset(p, 0, sizeof(*p));
	lm_ctl_greet(&p->lhs, laminad_key, "9.9.9", p->greeting,
		     &p->greeting_len);
	int rc = lm_ctl_answer(&p->chs, client_key, BODY(p->greeting),
			       BODY_LEN(p->greeting_len), p->answer,
			       &p->answer_len, &p->e);
	if (rc)
		return rc;
	p->accept_rc = lm_ctl_accept(&p->lhs, laminad_key, BODY(p->answer),
				     BODY_LEN(p->answer_len), &p->ls,
				     p->welcome, &p->welcome_len, &p->e);
	lm_error we;
	p->welcome_rc = lm_ctl_welcome(&p->chs, BODY(p->welcome),
				       BODY_LEN(p->welcome_len), &p->cs, &we);
	if (p->accept_rc == 0 && p->welcome_rc)
		p->e = we;
	return 0;
}

/* A sealed frame of body text from session s into buf; its length. */
static size_t seal(lm_ctl_session *s, const char *text, uint8_t *buf)
{
	size_t n = strlen(text);
	memcpy(buf + LM_CTL_SEALED_HEAD, text, n);
	lm_ctl_seal(s, buf, n);
	return LM_CTL_SEALED_HEAD + n + LM_CTL_TAG_BYTES;
}

/* Open a whole sealed frame with s; 0 when its body is text. */
static int open_frame(lm_ctl_session *s, const uint8_t *buf, size_t len,
		      const char *text, lm_error *e)
{
	const uint8_t *body;
	size_t n;
	if (len < LM_CTL_FRAME_HEAD ||
	    lm_ctl_frame_len(buf) != len - LM_CTL_FRAME_HEAD)
		return -EINVAL;
	int rc = lm_ctl_open(s, buf + LM_CTL_FRAME_HEAD,
			     len - LM_CTL_FRAME_HEAD, &body, &n, e);
	if (rc)
		return rc;
	return n == strlen(text) && !memcmp(body, text, n) ? 0 : -EILSEQ;
}

static void keys(lm_fleet_key *a, lm_fleet_key *b)
{
	memset(a, 0x11, sizeof(*a));
	memset(b, 0x11, sizeof(*b));
	b->bytes[31] ^= 1; /* one bit apart */
}

TEST(good_handshake)
{
	struct pair p;
	lm_fleet_key k, other;
	uint8_t buf[256];
	size_t len;
	lm_error e;
	keys(&k, &other);
	CHECK(handshake(&p, &k, &k) == 0);
	CHECK(p.accept_rc == 0 && p.welcome_rc == 0);
	CHECK(p.ls.trusted && p.cs.trusted);
	/* the greeting carries laminad's fingerprint and version */
	char fp[LM_FLEET_FP_CHARS + 1];
	lm_fleet_fingerprint(&k, fp);
	CHECK(strlen(fp) == LM_FLEET_FP_CHARS);
	Lamina__Reply *g = lamina__reply__unpack(NULL,
						 BODY_LEN(p.greeting_len),
						 BODY(p.greeting));
	CHECK(g && g->hello && g->error && g->id == 0);
	CHECK(!strcmp(g->hello->fingerprint, fp) &&
	      !strcmp(g->hello->version, "9.9.9") &&
	      g->hello->nonce.len == LM_CTL_NONCE_BYTES);
	/* what an old client prints: the greeting's error */
	CHECK(strstr(g->error->message, "fleet handshake") != NULL);
	lamina__reply__free_unpacked(g, NULL);
	/* frames both ways, several in sequence */
	for (int i = 0; i < 3; i++) {
		len = seal(&p.cs, "describe", buf);
		CHECK(open_frame(&p.ls, buf, len, "describe", &e) == 0);
		len = seal(&p.ls, "an answer", buf);
		CHECK(open_frame(&p.cs, buf, len, "an answer", &e) == 0);
	}
	CHECK(p.cs.tx_seq == 3 && p.ls.rx_seq == 3);
	/* an empty body seals too */
	len = seal(&p.cs, "", buf);
	CHECK(open_frame(&p.ls, buf, len, "", &e) == 0);
}

TEST(two_fingerprints)
{
	lm_fleet_key a, b;
	char fa[LM_FLEET_FP_CHARS + 1], fb[LM_FLEET_FP_CHARS + 1],
		fa2[LM_FLEET_FP_CHARS + 1];
	keys(&a, &b);
	lm_fleet_fingerprint(&a, fa);
	lm_fleet_fingerprint(&b, fb);
	lm_fleet_fingerprint(&a, fa2);
	CHECK(strcmp(fa, fb) != 0 && !strcmp(fa, fa2));
	for (int i = 0; i < LM_FLEET_FP_CHARS; i++)
		CHECK(strchr("0123456789abcdef", fa[i]) != NULL);
}

/* `laminad --fleet-key -`: the key's line from a pipe, read up to its
 * newline and no further; a short or non-hex line refused. */
TEST(key_from_pipe)
{
	lm_fleet_key a, b, got;
	char line[LM_FLEET_KEY_LINE], rest[8] = "";
	int fd[2];
	lm_error e;
	keys(&a, &b);
	lm_fleet_key_hex(&a, line);
	CHECK(strlen(line) == 2 * LM_FLEET_KEY_BYTES + 1 &&
	      line[2 * LM_FLEET_KEY_BYTES] == '\n');
	CHECK(pipe(fd) == 0);
	CHECK(write(fd[1], line, strlen(line)) == (ssize_t)strlen(line));
	CHECK(write(fd[1], "more", 4) == 4);
	close(fd[1]);
	CHECK(lm_fleet_key_read_fd(fd[0], "stdin", &got, &e) == 0);
	CHECK(!memcmp(got.bytes, a.bytes, LM_FLEET_KEY_BYTES));
	CHECK(read(fd[0], rest, sizeof(rest)) == 4 && !memcmp(rest, "more", 4));
	close(fd[0]);
	/* a line of another length, and non-hex digits */
	const char *bad[] = { "0123\n", "", NULL };
	char nonhex[LM_FLEET_KEY_LINE];
	memcpy(nonhex, line, sizeof(nonhex));
	nonhex[5] = 'g';
	for (int i = 0; i < 3; i++) {
		const char *l = i < 2 ? bad[i] : nonhex;
		CHECK(pipe(fd) == 0);
		CHECK(write(fd[1], l, strlen(l)) == (ssize_t)strlen(l));
		close(fd[1]);
		CHECK(lm_fleet_key_read_fd(fd[0], "stdin", &got, &e) ==
		      -EINVAL);
		CHECK(strstr(e.msg, "stdin does not hold 64 hex digits") !=
		      NULL);
		close(fd[0]);
	}
}

TEST(wrong_key)
{
	struct pair p;
	lm_fleet_key k, other;
	keys(&k, &other);
	CHECK(handshake(&p, &k, &other) == 0);
	CHECK(p.accept_rc == -EACCES);
	CHECK(strstr(p.e.msg, "does not match") != NULL);
	/* the refusal reaches the client as an error, not a session */
	CHECK(p.welcome_rc == -EACCES);
}

TEST(replayed_answer)
{
	struct pair first, again;
	lm_fleet_key k, other;
	lm_ctl_session s;
	uint8_t frame[LM_CTL_HELLO_FRAME];
	size_t len;
	lm_error e;
	keys(&k, &other);
	CHECK(handshake(&first, &k, &k) == 0 && first.accept_rc == 0);
	/* a new connection greets with a fresh nonce: the recorded answer
	 * proves nothing there */
	lm_ctl_greet(&again.lhs, &k, "9.9.9", again.greeting,
		     &again.greeting_len);
	CHECK(memcmp(again.lhs.ns, first.lhs.ns, LM_CTL_NONCE_BYTES) != 0);
	CHECK(lm_ctl_accept(&again.lhs, &k, BODY(first.answer),
			    BODY_LEN(first.answer_len), &s, frame, &len,
			    &e) == -EACCES);
	/* nor is the recorded answer's proof good for an anonymous one */
	Lamina__Reply *r = lamina__reply__unpack(NULL, BODY_LEN(len),
						 BODY(frame));
	CHECK(r && r->error && r->error->code == -EACCES && !r->hello);
	lamina__reply__free_unpacked(r, NULL);
}

TEST(anonymous)
{
	struct pair p;
	lm_fleet_key k, other;
	keys(&k, &other);
	/* a client without the key: a session, never trusted */
	CHECK(handshake(&p, &k, NULL) == 0);
	CHECK(p.accept_rc == 0 && p.welcome_rc == 0);
	CHECK(!p.ls.trusted && !p.cs.trusted);
	/* a laminad without a key: the client with one goes anonymous */
	CHECK(handshake(&p, NULL, &k) == 0);
	CHECK(p.accept_rc == 0 && p.welcome_rc == 0);
	CHECK(!p.ls.trusted && !p.cs.trusted);
	/* ... and a proof sent to it anyway is refused */
	lm_ctl_hs hs;
	uint8_t greet[LM_CTL_HELLO_FRAME], ans[LM_CTL_HELLO_FRAME];
	uint8_t out[LM_CTL_HELLO_FRAME];
	size_t gl, al, ol;
	lm_ctl_session s;
	lm_error e;
	lm_ctl_greet(&hs, &k, "9.9.9", greet, &gl); /* as if keyed */
	lm_ctl_hs chs;
	CHECK(lm_ctl_answer(&chs, &k, BODY(greet), BODY_LEN(gl), ans, &al,
			    &e) == 0);
	lm_ctl_hs keyless;
	lm_ctl_greet(&keyless, NULL, "9.9.9", greet, &gl);
	memcpy(keyless.ns, hs.ns, sizeof(hs.ns));
	CHECK(lm_ctl_accept(&keyless, NULL, BODY(ans), BODY_LEN(al), &s, out,
			    &ol, &e) == -EACCES);
	CHECK(strstr(e.msg, "has none") != NULL);
}

TEST(old_client)
{
	lm_ctl_hs hs;
	lm_ctl_session s;
	uint8_t greet[LM_CTL_HELLO_FRAME], out[LM_CTL_HELLO_FRAME], q[64];
	size_t gl, ol;
	lm_fleet_key k, other;
	lm_error e;
	keys(&k, &other);
	/* a request without the handshake: Request{id 7, describe {}} */
	Lamina__Request r = LAMINA__REQUEST__INIT;
	Lamina__DescribeRequest d = LAMINA__DESCRIBE_REQUEST__INIT;
	r.id = 7;
	r.body_case = LAMINA__REQUEST__BODY_DESCRIBE;
	r.describe = &d;
	size_t n = lamina__request__pack(&r, q);
	lm_ctl_greet(&hs, &k, "9.9.9", greet, &gl);
	CHECK(lm_ctl_accept(&hs, &k, q, n, &s, out, &ol, &e) == -EPROTO);
	CHECK(strstr(e.msg, "before the fleet handshake") != NULL);
	/* bytes that are no message at all */
	CHECK(lm_ctl_accept(&hs, &k, (const uint8_t *)"\xff\xff\xff", 3, &s,
			    out, &ol, &e) == -EPROTO);
	/* and a client given something that is not a greeting */
	lm_ctl_hs chs;
	CHECK(lm_ctl_answer(&chs, &k, q, n, out, &ol, &e) == -EPROTO);
}

TEST(impostor_laminad)
{
	struct pair p;
	lm_fleet_key k, other;
	keys(&k, &other);
	CHECK(handshake(&p, &k, &k) == 0 && p.accept_rc == 0);
	/* the same welcome with one bit of its proof flipped */
	lm_ctl_hs chs;
	lm_ctl_session s;
	lm_error e;
	uint8_t ans[LM_CTL_HELLO_FRAME];
	size_t al;
	CHECK(lm_ctl_answer(&chs, &k, BODY(p.greeting),
			    BODY_LEN(p.greeting_len), ans, &al, &e) == 0);
	Lamina__Reply *w = lamina__reply__unpack(NULL, BODY_LEN(p.welcome_len),
						 BODY(p.welcome));
	CHECK(w && w->hello && w->hello->proof.len == LM_CTL_PROOF_BYTES);
	/* a welcome for another client nonce: not this session's proof */
	CHECK(lm_ctl_welcome(&chs, BODY(p.welcome), BODY_LEN(p.welcome_len),
			     &s, &e) == -EACCES);
	CHECK(strstr(e.msg, "did not prove") != NULL);
	lamina__reply__free_unpacked(w, NULL);
}

TEST(replayed_frame)
{
	struct pair p;
	lm_fleet_key k, other;
	uint8_t a[256], b[256];
	size_t la, lb;
	lm_error e;
	keys(&k, &other);
	CHECK(handshake(&p, &k, &k) == 0 && p.accept_rc == 0);
	la = seal(&p.cs, "teardown d-1", a);
	CHECK(open_frame(&p.ls, a, la, "teardown d-1", &e) == 0);
	/* the same frame again, sequence 0 where 1 is due */
	CHECK(open_frame(&p.ls, a, la, "teardown d-1", &e) == -EPROTO);
	CHECK(strstr(e.msg, "out of sequence") != NULL);
	/* out of order: 2 before 1 */
	la = seal(&p.cs, "one", a);
	lb = seal(&p.cs, "two", b);
	CHECK(open_frame(&p.ls, b, lb, "two", &e) == -EPROTO);
	CHECK(open_frame(&p.ls, a, la, "one", &e) == 0);
	CHECK(open_frame(&p.ls, b, lb, "two", &e) == 0);
}

TEST(tampered_frame)
{
	struct pair p, q;
	lm_fleet_key k, other;
	uint8_t a[256], t[256];
	size_t la;
	lm_error e;
	keys(&k, &other);
	CHECK(handshake(&p, &k, &k) == 0 && p.accept_rc == 0);
	la = seal(&p.cs, "stop d-1", a);
	/* every single bit flipped after the length: refused, and the
	 * session still takes the genuine frame afterwards */
	for (size_t i = LM_CTL_FRAME_HEAD; i < la; i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(t, a, la);
			t[i] ^= (uint8_t)(1u << bit);
			CHECK(open_frame(&p.ls, t, la, "stop d-1", &e) ==
			      -EBADMSG);
		}
	/* truncated: a byte short (the length says so too), or shorter than
	 * a sealed frame can be */
	memcpy(t, a, la);
	lm_ctl_frame_put(t, (uint32_t)(la - 1 - LM_CTL_FRAME_HEAD));
	CHECK(open_frame(&p.ls, t, la - 1, "stop d-1", &e) == -EBADMSG);
	const uint8_t *body;
	size_t n;
	CHECK(lm_ctl_open(&p.ls, a + LM_CTL_FRAME_HEAD,
			  LM_CTL_SEALED_EXTRA - 1, &body, &n, &e) == -EPROTO);
	CHECK(open_frame(&p.ls, a, la, "stop d-1", &e) == 0);
	/* reflected: laminad's own frame sent back to it */
	la = seal(&p.ls, "done", a);
	CHECK(open_frame(&p.ls, a, la, "done", &e) == -EBADMSG);
	/* another session with the same key: its frames do not open here */
	CHECK(handshake(&q, &k, &k) == 0 && q.accept_rc == 0);
	la = seal(&q.cs, "teardown d-1", a);
	CHECK(open_frame(&p.ls, a, la, "teardown d-1", &e) == -EBADMSG);
	/* an anonymous session's frames do not open in a trusted one */
	CHECK(handshake(&q, &k, NULL) == 0 && q.accept_rc == 0);
	la = seal(&q.cs, "teardown d-1", a);
	CHECK(open_frame(&p.ls, a, la, "teardown d-1", &e) == -EBADMSG);
}

int main(void)
{
	RUN(good_handshake);
	RUN(two_fingerprints);
	RUN(key_from_pipe);
	RUN(wrong_key);
	RUN(replayed_answer);
	RUN(anonymous);
	RUN(old_client);
	RUN(impostor_laminad);
	RUN(replayed_frame);
	RUN(tampered_frame);
	return harness_done();
}
