/*
 * test_client.c: the client library (lamina/client.h) against a fake
 * laminad on loopback in the same thread: the bytes of an ingress request,
 * answers good, refused and malformed, timeouts, and the control call's
 * framing and error handling (the fleet handshake on a second thread,
 * with the session layer's laminad end, ctl.h).  laminad's side of the
 * same protocols is covered by tests/integration/test_laminad.py and
 * test_trust.py; the session layer alone by test_ctl.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "ctl.h"
#include "lamina/client.h"

/* A listening socket on a free loopback port. */
static int listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static int read_all(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void put(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

/* An answer with one float tensor of shape 1x2 holding {1.5, -2}. */
static size_t good_answer(uint8_t *buf, uint64_t id, uint64_t nbytes)
{
	uint8_t *p = buf;
	uint32_t magic = LM_WIRE_MAGIC_ANSWER, len = 8 + 4 + 4 + 8 + 16 + 8 +
							  8, n = 1, dt = 1, rank = 2;
	int32_t status = 0;
	int64_t dims[2] = { 1, 2 };
	float v[2] = { 1.5f, -2.0f };
	put(&p, &magic, 4);
	put(&p, &len, 4);
	put(&p, &id, 8);
	put(&p, &status, 4);
	put(&p, &n, 4);
	put(&p, &dt, 4);
	put(&p, &rank, 4);
	put(&p, dims, 16);
	put(&p, &nbytes, 8);
	put(&p, v, 8);
	return (size_t)(p - buf);
}

TEST(request_bytes)
{
	uint16_t port;
	int l = listener(&port), s;
	lm_infer *c = NULL;
	lm_error e;
	float x[3] = { 1, 2, 3 };
	int64_t dims[2] = { 1, 3 };
	lm_tensor t = { 0 };
	uint8_t got[52 + 8 + 16 + 8 + 12];
	CHECK(l >= 0);
	CHECK(lm_infer_connect("127.0.0.1", port, 2000, &c, &e) == 0);
	CHECK((s = accept(l, NULL, NULL)) >= 0);
	lm_tensor_set_shape(&t, LM_DT_FLOAT, 2, dims);
	t.data = x;
	t.nbytes = sizeof(x);
	CHECK(lm_infer_send(c, "dep-1", 77, &t, 1, &e) == 0);
	CHECK(read_all(s, got, sizeof(got)) == 0);
	uint32_t u;
	uint64_t q;
	memcpy(&u, got, 4);
	CHECK(u == LM_WIRE_MAGIC_REQUEST);
	memcpy(&u, got + 4, 4);
	CHECK_EQ_I64(u, sizeof(got) - 8);
	memcpy(&q, got + 8, 8);
	CHECK_EQ_I64(q, 77);
	CHECK(!strcmp((char *)got + 16, "dep-1") && got[16 + 31] == 0);
	memcpy(&u, got + 48, 4);
	CHECK_EQ_I64(u, 1);
	memcpy(&u, got + 52, 4);
	CHECK_EQ_I64(u, LM_DT_FLOAT);
	memcpy(&u, got + 56, 4);
	CHECK_EQ_I64(u, 2);
	memcpy(&q, got + 68, 8);
	CHECK_EQ_I64(q, 3);
	memcpy(&q, got + 76, 8);
	CHECK_EQ_I64(q, 12);
	CHECK(!memcmp(got + 84, x, 12));
	/* ids too long are refused before anything is sent */
	CHECK(lm_infer_send(c, "0123456789012345678901234567890123", 1, &t,
			    1, &e) == -EINVAL);
	lm_infer_free(c);
	close(s);
	close(l);
}

TEST(answers)
{
	uint16_t port;
	int l = listener(&port), s;
	lm_infer *c = NULL;
	lm_error e;
	lm_tensor out[2];
	int n = -1;
	uint64_t id = 0;
	uint8_t buf[256];
	CHECK(l >= 0);
	CHECK(lm_infer_connect("127.0.0.1", port, 500, &c, &e) == 0);
	CHECK((s = accept(l, NULL, NULL)) >= 0);
	/* a good answer */
	CHECK(send(s, buf, good_answer(buf, 5, 8), 0) > 0);
	CHECK(lm_infer_recv(c, &id, out, 2, &n, &e) == 0);
	CHECK(id == 5 && n == 1 && out[0].rank == 2 && out[0].dims[1] == 2);
	CHECK(((float *)out[0].data)[0] == 1.5f);
	lm_tensor_free(&out[0]);
	/* a refusal: its status and message, the id still set */
	uint8_t *p = buf;
	uint32_t magic = LM_WIRE_MAGIC_ANSWER, len = 16 + 9, ml = 9;
	int32_t st = -EINVAL;
	uint64_t rid = 6;
	put(&p, &magic, 4);
	put(&p, &len, 4);
	put(&p, &rid, 8);
	put(&p, &st, 4);
	put(&p, &ml, 4);
	put(&p, "bad shape", 9);
	CHECK(send(s, buf, (size_t)(p - buf), 0) > 0);
	CHECK(lm_infer_recv(c, &id, out, 2, &n, &e) == -EINVAL);
	CHECK(id == 6 && n == 0 && !strcmp(e.msg, "bad shape"));
	/* nothing comes: a timeout */
	CHECK(lm_infer_recv(c, &id, out, 2, &n, &e) == -ETIMEDOUT);
	/* a tensor whose byte count disagrees with its shape */
	CHECK(send(s, buf, good_answer(buf, 7, 4), 0) > 0);
	CHECK(lm_infer_recv(c, &id, out, 2, &n, &e) == -EPROTO && n == 0);
	/* bad magic */
	memset(buf, 0x41, 8);
	CHECK(send(s, buf, 8, 0) > 0);
	CHECK(lm_infer_recv(c, &id, out, 2, &n, &e) == -EPROTO);
	/* the peer goes away */
	close(s);
	CHECK(lm_infer_recv(c, &id, out, 2, &n, &e) == -ECONNRESET);
	lm_infer_free(c);
	close(l);
}

/* laminad's end of the handshake, on a thread while lm_ctl_connect
 * waits: accept, greet, check the answer, welcome or refuse. */
struct fake_laminad {
	int l, s, rc;
	const lm_fleet_key *key;
	lm_ctl_session sess;
};

static void *fake_handshake(void *arg)
{
	struct fake_laminad *f = arg;
	uint8_t frame[LM_CTL_HELLO_FRAME], head[4], body[LM_CTL_HELLO_MAX];
	size_t len;
	lm_ctl_hs hs;
	lm_error e;
	f->rc = -EIO;
	if ((f->s = accept(f->l, NULL, NULL)) < 0)
		return NULL;
	lm_ctl_greet(&hs, f->key, "test", frame, &len);
	if (send(f->s, frame, len, 0) != (ssize_t)len ||
	    read_all(f->s, head, 4) || lm_ctl_frame_len(head) > sizeof(body) ||
	    read_all(f->s, body, lm_ctl_frame_len(head)))
		return NULL;
	f->rc = lm_ctl_accept(&hs, f->key, body, lm_ctl_frame_len(head),
			      &f->sess, frame, &len, &e);
	send(f->s, frame, len, 0);
	return NULL;
}

/* Connect with client_key to a fake laminad of key; its socket and
 * session in f.  The client's return code. */
static int fake_connect(struct fake_laminad *f, uint16_t port,
			const lm_fleet_key *key, const lm_fleet_key *client_key,
			lm_ctl **c, lm_error *e)
{
	pthread_t t;
	f->key = key;
	f->s = -1;
	if (pthread_create(&t, NULL, fake_handshake, f))
		return -EAGAIN;
	int rc = lm_ctl_connect("127.0.0.1", port, 2000, client_key, c, e);
	pthread_join(t, NULL);
	return rc;
}

/* Send a sealed reply on the server side. */
static int send_reply(struct fake_laminad *f, const Lamina__Reply *r)
{
	uint8_t buf[1024];
	size_t n = lamina__reply__pack(r, buf + LM_CTL_SEALED_HEAD);
	lm_ctl_seal(&f->sess, buf, n);
	n += LM_CTL_SEALED_HEAD + LM_CTL_TAG_BYTES;
	return send(f->s, buf, n, 0) == (ssize_t)n ? 0 : -1;
}

/* Seal raw body bytes (not a Reply) on the server side. */
static int send_sealed(struct fake_laminad *f, const void *body, size_t n)
{
	uint8_t buf[256];
	memcpy(buf + LM_CTL_SEALED_HEAD, body, n);
	lm_ctl_seal(&f->sess, buf, n);
	n += LM_CTL_SEALED_HEAD + LM_CTL_TAG_BYTES;
	return send(f->s, buf, n, 0) == (ssize_t)n ? 0 : -1;
}

TEST(control_call)
{
	uint16_t port;
	int l = listener(&port);
	struct fake_laminad f = { .l = l };
	lm_fleet_key key;
	lm_ctl *c = NULL;
	lm_error e;
	Lamina__Request q = LAMINA__REQUEST__INIT;
	Lamina__DescribeRequest dq = LAMINA__DESCRIBE_REQUEST__INIT;
	Lamina__Reply r = LAMINA__REPLY__INIT, *got = NULL;
	Lamina__Error err = LAMINA__ERROR__INIT;
	Lamina__Empty done = LAMINA__EMPTY__INIT;
	uint8_t sink[256], head[4];
	const uint8_t *body;
	size_t n;
	CHECK(l >= 0);
	memset(&key, 7, sizeof(key));
	CHECK(fake_connect(&f, port, &key, &key, &c, &e) == 0);
	CHECK(f.rc == 0 && f.sess.trusted && lm_ctl_trusted(c));
	q.body_case = LAMINA__REQUEST__BODY_DESCRIBE;
	q.describe = &dq;
	/* ids count from 1: the reply to the first call waits already */
	r.id = 1;
	r.body_case = LAMINA__REPLY__BODY_DONE;
	r.done = &done;
	CHECK(send_reply(&f, &r) == 0);
	CHECK(lm_ctl_call(c, &q, &got, &e) == 0 && got && got->id == 1);
	lamina__reply__free_unpacked(got, NULL);
	/* a refusal carries laminad's code and message */
	r.id = 2;
	r.body_case = LAMINA__REPLY__BODY__NOT_SET;
	err.code = -ENOENT;
	err.message = "no deployment 'x'";
	r.error = &err;
	CHECK(send_reply(&f, &r) == 0);
	CHECK(lm_ctl_call(c, &q, &got, &e) == -ENOENT && !got);
	CHECK(!strcmp(e.msg, "no deployment 'x'"));
	/* a reply to another request */
	r.id = 99;
	r.error = NULL;
	r.body_case = LAMINA__REPLY__BODY_DONE;
	CHECK(send_reply(&f, &r) == 0);
	CHECK(lm_ctl_call(c, &q, &got, &e) == -EPROTO);
	/* bytes that do not decode */
	CHECK(send_sealed(&f, "\xff\xff\xff", 3) == 0);
	CHECK(lm_ctl_call(c, &q, &got, &e) == -EPROTO);
	/* what the client sent: sealed Requests with their ids, 1 first */
	CHECK(read_all(f.s, head, 4) == 0 && lm_ctl_frame_len(head) < 256);
	CHECK(read_all(f.s, sink, lm_ctl_frame_len(head)) == 0);
	CHECK(lm_ctl_open(&f.sess, sink, lm_ctl_frame_len(head), &body, &n,
			  &e) == 0);
	Lamina__Request *sent = lamina__request__unpack(NULL, n, body);
	CHECK(sent && sent->id == 1 &&
	      sent->body_case == LAMINA__REQUEST__BODY_DESCRIBE);
	lamina__request__free_unpacked(sent, NULL);
	/* a reply with one bit flipped: its tag is wrong */
	uint8_t buf[256];
	r.id = 5;
	n = lamina__reply__pack(&r, buf + LM_CTL_SEALED_HEAD);
	lm_ctl_seal(&f.sess, buf, n);
	buf[LM_CTL_SEALED_HEAD] ^= 0x10;
	n += LM_CTL_SEALED_HEAD + LM_CTL_TAG_BYTES;
	CHECK(send(f.s, buf, n, 0) == (ssize_t)n);
	CHECK(lm_ctl_call(c, &q, &got, &e) == -EBADMSG && !got);
	CHECK(strstr(e.msg, "tag is wrong") != NULL);
	/* a length above the limit */
	CHECK(send(f.s, "\x7f\0\0\0", 4, 0) == 4);
	CHECK(lm_ctl_call(c, &q, &got, &e) == -EPROTO);
	lm_ctl_free(c);
	close(f.s);
	close(l);
}

/* A laminad of another fleet: refused at connect, with both
 * fingerprints; a laminad without a key: an anonymous session. */
TEST(control_keys)
{
	uint16_t port;
	int l = listener(&port);
	struct fake_laminad f = { .l = l };
	lm_fleet_key mine, theirs;
	char fp_mine[LM_FLEET_FP_CHARS + 1], fp_theirs[LM_FLEET_FP_CHARS + 1];
	lm_ctl *c = NULL;
	lm_error e;
	CHECK(l >= 0);
	memset(&mine, 1, sizeof(mine));
	memset(&theirs, 2, sizeof(theirs));
	lm_fleet_fingerprint(&mine, fp_mine);
	lm_fleet_fingerprint(&theirs, fp_theirs);
	CHECK(fake_connect(&f, port, &theirs, &mine, &c, &e) == -EACCES);
	CHECK(f.rc == -EACCES && !c);
	CHECK(strstr(e.msg, fp_mine) && strstr(e.msg, fp_theirs) &&
	      strstr(e.msg, "refuses this fleet key"));
	close(f.s);
	CHECK(fake_connect(&f, port, NULL, &mine, &c, &e) == 0);
	CHECK(f.rc == 0 && !f.sess.trusted && !lm_ctl_trusted(c));
	lm_ctl_free(c);
	close(f.s);
	/* no key on either side: anonymous too */
	CHECK(fake_connect(&f, port, &theirs, NULL, &c, &e) == 0);
	CHECK(f.rc == 0 && !f.sess.trusted && !lm_ctl_trusted(c));
	lm_ctl_free(c);
	close(f.s);
	close(l);
}

/* Something that does not greet: a bounded wait, then a clear error. */
TEST(control_no_greeting)
{
	uint16_t port;
	int l = listener(&port);
	lm_ctl *c = NULL;
	lm_error e;
	CHECK(l >= 0);
	CHECK(lm_ctl_connect("127.0.0.1", port, 300, NULL, &c, &e) ==
	      -ETIMEDOUT);
	CHECK(strstr(e.msg, "no greeting") != NULL);
	close(l);
}

TEST(refused_connection)
{
	uint16_t port;
	int l = listener(&port);
	lm_ctl *c = NULL;
	lm_error e;
	CHECK(l >= 0);
	close(l); /* nothing listens there now */
	CHECK(lm_ctl_connect("127.0.0.1", port, 500, NULL, &c, &e) ==
	      -ECONNREFUSED);
	CHECK(strstr(e.msg, "cannot connect") != NULL);
}

int main(void)
{
	RUN(request_bytes);
	RUN(answers);
	RUN(control_call);
	RUN(control_keys);
	RUN(control_no_greeting);
	RUN(refused_connection);
	return harness_done();
}
