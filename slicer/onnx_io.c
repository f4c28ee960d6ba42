/*
 * onnx_io.c: ONNX models in and out, through protobuf-c.
 *
 * Reading: the file is mapped, not read.  The ModelProto and GraphProto are
 * decoded by protobuf-c without their initializers (the field walker in
 * pbwire.c leaves those out), and each initializer is decoded alone: once at
 * load for its name, type and shape (small ones keep their data), and again
 * whenever its data is needed.  The mapping is then dropped from memory, so
 * slicing a model costs little more than the largest slice.
 *
 * Writing: a slice is a new ModelProto whose nodes are the source's own
 * NodeProtos (attributes we do not interpret survive untouched), whose
 * initializers are built from the constants it reads, and whose inputs,
 * outputs and value_info come from the inferred shapes.
 */
#include "lamina/slicer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "pbwire.h"

/* ONNX opsets of the default domain this reader understands. */
#define OPSET_MIN 7
#define OPSET_MAX 21
/* Initializers up to this size keep their data from load on: shape
 * inference and folding read them. */
#define EAGER_BYTES (64 * 1024)

enum { MODEL_GRAPH = 7, GRAPH_INITIALIZER = 5 };

struct range {
	size_t off, len;
};

struct lm_onnx_model {
	char *path;
	char *dir_real;            /* resolved folder of the model */
	uint8_t *map;
	size_t map_len;
	int mapped;                /* map is our mmap (else a caller's buffer) */
	Onnx__ModelProto *meta;    /* without its graph */
	Onnx__GraphProto *gmeta;   /* without its initializers */
	struct range *inits;
	size_t n_inits;
	lm_graph *g;
	lm_batch batch;            /* where the batch is (lm_onnx_prepare) */
	char batch_name[64];       /* its symbolic name, or "batch" */
};

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* ---- external data ---- */

/*
 * Resolve an external-data location against the model's folder.  Refuses
 * absolute paths, ".." components and anything whose real path (after
 * symlinks) leaves the folder.
 */
static int resolve_external(const lm_onnx_model *m, const char *tensor,
			    const char *loc, char *out, size_t outlen,
			    lm_error *e)
{
	char joined[PATH_MAX], real[PATH_MAX];
	if (!m->dir_real)
		return lm_fail(e, -ENOTSUP, "initializer '%s': external data "
			       "needs the model's file and folder", tensor);
	if (!loc || !loc[0])
		return lm_fail(e, -EINVAL, "initializer '%s': external data "
			       "has no location", tensor);
	if (loc[0] == '/')
		return lm_fail(e, -EPERM, "initializer '%s': external data "
			       "path '%s' is absolute; it must be relative to "
			       "the model's folder", tensor, loc);
	for (const char *p = loc; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return lm_fail(e, -EPERM, "initializer '%s': external "
				       "data path '%s' leaves the model's "
				       "folder", tensor, loc);
		p += n;
		p += *p == '/';
	}
	if (snprintf(joined, sizeof(joined), "%s/%s", m->dir_real, loc) >=
	    (int)sizeof(joined))
		return lm_fail(e, -ENAMETOOLONG, "initializer '%s': external "
			       "data path too long", tensor);
	if (!realpath(joined, real))
		return lm_fail(e, -ENOENT, "initializer '%s': external data "
			       "file '%s' not found", tensor, loc);
	size_t dl = strlen(m->dir_real);
	if (strncmp(real, m->dir_real, dl) != 0 || real[dl] != '/')
		return lm_fail(e, -EPERM, "initializer '%s': external data "
			       "file '%s' resolves outside the model's folder "
			       "(symlink to %s)", tensor, loc, real);
	snprintf(out, outlen, "%s", real);
	return 0;
}

struct ext_ref {
	char path[PATH_MAX];
	uint64_t offset;
	uint64_t length;
	int has_length;
};

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -EINVAL;
	*v = x;
	return 0;
}

static int external_ref(const lm_onnx_model *m, const Onnx__TensorProto *t,
			struct ext_ref *r, lm_error *e)
{
	const char *loc = NULL;
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < t->n_external_data; i++) {
		const Onnx__StringStringEntryProto *kv = t->external_data[i];
		if (!kv->key || !kv->value)
			continue;
		if (strcmp(kv->key, "location") == 0) {
			loc = kv->value;
		} else if (strcmp(kv->key, "offset") == 0) {
			if (parse_u64(kv->value, &r->offset))
				return lm_fail(e, -EINVAL, "initializer '%s': "
					       "bad external data offset '%s'",
					       t->name, kv->value);
		} else if (strcmp(kv->key, "length") == 0) {
			if (parse_u64(kv->value, &r->length))
				return lm_fail(e, -EINVAL, "initializer '%s': "
					       "bad external data length '%s'",
					       t->name, kv->value);
			r->has_length = 1;
		}
	}
	return resolve_external(m, t->name, loc, r->path, sizeof(r->path), e);
}

/* Check an external tensor's file holds the bytes it claims; read them
 * into *data when data is non-NULL. */
static int external_read(const lm_onnx_model *m, const Onnx__TensorProto *t,
			 size_t nbytes, void **data, lm_error *e)
{
	struct ext_ref r;
	int rc = external_ref(m, t, &r, e);
	if (rc)
		return rc;
	if (r.has_length && r.length != nbytes)
		return lm_fail(e, -EINVAL, "initializer '%s': external data "
			       "length %llu, but its shape needs %zu bytes",
			       t->name, (unsigned long long)r.length, nbytes);
	int fd = open(r.path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return lm_fail(e, -ENOENT, "initializer '%s': cannot open "
			       "external data file %s", t->name, r.path);
	}
	if (r.offset > (uint64_t)st.st_size ||
	    nbytes > (uint64_t)st.st_size - r.offset) {
		close(fd);
		return lm_fail(e, -EINVAL, "initializer '%s': external data "
			       "file %s is too short (%lld bytes, need %llu)",
			       t->name, base_name(r.path), (long long)st.st_size,
			       (unsigned long long)(r.offset + nbytes));
	}
	if (data) {
		char *buf = malloc(nbytes ? nbytes : 1);
		size_t got = 0;
		while (buf && got < nbytes) {
			ssize_t k = pread(fd, buf + got, nbytes - got,
					  (off_t)(r.offset + got));
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		if (!buf || got < nbytes) {
			free(buf);
			close(fd);
			return lm_fail(e, -EIO, "initializer '%s': cannot read "
				       "external data from %s", t->name,
				       r.path);
		}
		*data = buf;
	}
	close(fd);
	return 0;
}

/* ---- tensors ---- */

static int tensor_shape(const Onnx__TensorProto *t, const char *what,
			int *rank, int64_t *dims, size_t *nbytes, lm_error *e)
{
	size_t es = lm_dtype_size((lm_dtype)t->data_type);
	if (t->data_type == LM_DT_STRING || es == 0)
		return lm_fail(e, -ENOTSUP, "%s '%s': element type %d is not "
			       "supported", what, t->name ? t->name : "",
			       t->data_type);
	if (t->n_dims > LM_MAX_RANK)
		return lm_fail(e, -ENOTSUP, "%s '%s': rank %zu exceeds %d",
			       what, t->name, t->n_dims, LM_MAX_RANK);
	uint64_t n = 1;
	for (size_t i = 0; i < t->n_dims; i++) {
		if (t->dims[i] < 0 ||
		    (t->dims[i] > 0 && n > (UINT64_MAX / es) /
					       (uint64_t)t->dims[i]))
			return lm_fail(e, -EINVAL, "%s '%s': bad dim %lld",
				       what, t->name, (long long)t->dims[i]);
		n *= (uint64_t)t->dims[i];
		dims[i] = t->dims[i];
	}
	*rank = (int)t->n_dims;
	*nbytes = (size_t)(n * es);
	return 0;
}

/*
 * The contents of a decoded tensor as raw little-endian bytes, whichever
 * field holds them.  External data is read from its file.
 */
static int tensor_bytes(const lm_onnx_model *m, const Onnx__TensorProto *t,
			const char *what, void **data, size_t nbytes,
			lm_error *e)
{
	size_t es = lm_dtype_size((lm_dtype)t->data_type);
	size_t n = es ? nbytes / es : 0;
	if (t->has_data_location &&
	    t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
		if (!m)
			return lm_fail(e, -ENOTSUP, "%s '%s': external data "
				       "is not supported here", what, t->name);
		return external_read(m, t, nbytes, data, e);
	}
	/* How many bytes or values the file holds, checked against the
	 * shape before anything is allocated. */
	size_t have;
	if (t->has_raw_data)
		have = t->raw_data.len == nbytes ? n : SIZE_MAX;
	else if (t->data_type == LM_DT_FLOAT)
		have = t->n_float_data;
	else if (t->data_type == LM_DT_DOUBLE)
		have = t->n_double_data;
	else if (t->data_type == LM_DT_INT64)
		have = t->n_int64_data;
	else if (t->data_type == LM_DT_UINT64 || t->data_type == LM_DT_UINT32)
		have = t->n_uint64_data;
	else if (es == 1 || es == 2 || t->data_type == LM_DT_INT32)
		have = t->n_int32_data;
	else
		have = SIZE_MAX;
	if (have != n)
		return lm_fail(e, -EINVAL, "%s '%s': data does not match its "
			       "shape (%zu bytes expected)", what,
			       t->name ? t->name : "", nbytes);
	char *buf = malloc(nbytes ? nbytes : 1);
	if (!buf)
		return lm_fail(e, -ENOMEM, "out of memory");
	if (n == 0) {
		/* empty tensor: nothing to copy */
	} else if (t->has_raw_data) {
		memcpy(buf, t->raw_data.data, nbytes);
	} else if (t->data_type == LM_DT_FLOAT) {
		memcpy(buf, t->float_data, nbytes);
	} else if (t->data_type == LM_DT_DOUBLE) {
		memcpy(buf, t->double_data, nbytes);
	} else if (t->data_type == LM_DT_INT64) {
		memcpy(buf, t->int64_data, nbytes);
	} else if (t->data_type == LM_DT_UINT64 ||
		   t->data_type == LM_DT_UINT32) {
		for (size_t i = 0; i < n; i++) {
			if (es == 8)
				((uint64_t *)buf)[i] = t->uint64_data[i];
			else
				((uint32_t *)buf)[i] =
					(uint32_t)t->uint64_data[i];
		}
	} else {
		/* int32_data carries int32, and every narrower type widened */
		for (size_t i = 0; i < n; i++) {
			int32_t v = t->int32_data[i];
			if (es == 1)
				((uint8_t *)buf)[i] = (uint8_t)v;
			else if (es == 2)
				((uint16_t *)buf)[i] = (uint16_t)v;
			else
				((int32_t *)buf)[i] = v;
		}
	}
	*data = buf;
	return 0;
}

static Onnx__TensorProto *unpack_init(const lm_onnx_model *m, size_t i)
{
	return onnx__tensor_proto__unpack(NULL, m->inits[i].len,
					  m->map + m->inits[i].off);
}

/* Let the kernel drop the mapped pages of [off, off+len): they are file
 * pages, read again if ever needed. */
static void release_pages(const lm_onnx_model *m, size_t off, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t start = (off + page - 1) / page * page, end = (off + len) / page *
							     page;
	if (m->mapped && end > start)
		madvise(m->map + start, end - start, MADV_DONTNEED);
}

/* lm_data_loader for initializers left in the file. */
static int load_initializer(void *ctx, lm_graph *g, lm_value *v, lm_error *e)
{
	lm_onnx_model *m = ctx;
	int rc;
	(void)g;
	if (v->src >= m->n_inits)
		return lm_fail(e, -EINVAL, "initializer '%s' has no source",
			       v->name);
	Onnx__TensorProto *t = unpack_init(m, v->src);
	if (!t)
		return lm_fail(e, -EINVAL, "%s: initializer '%s' is malformed",
			       base_name(m->path), v->name);
	if (t->has_raw_data && t->raw_data.len == v->nbytes && v->nbytes &&
	    !(t->has_data_location && t->data_location ==
				ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)) {
		/* Take protobuf-c's copy (malloc'd by its default allocator)
		 * rather than copying a large weight once more. */
		v->data = t->raw_data.data;
		t->raw_data.data = NULL;
		t->raw_data.len = 0;
		rc = 0;
	} else {
		rc = tensor_bytes(m, t, "initializer", &v->data, v->nbytes, e);
	}
	onnx__tensor_proto__free_unpacked(t, NULL);
	release_pages(m, m->inits[v->src].off, m->inits[v->src].len);
	return rc;
}

/* ---- building the IR ---- */

static int type_from_valueinfo(lm_value *v, const Onnx__ValueInfoProto *vi,
			       int is_input, lm_error *e)
{
	const Onnx__TypeProto *tp = vi->type;
	if (!tp) {
		if (is_input)
			return lm_fail(e, -EINVAL, "input '%s' has no type",
				       vi->name);
		return 0;
	}
	if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
	    !tp->tensor_type)
		return lm_fail(e, -ENOTSUP, "'%s' is not a tensor (sequences, "
			       "maps and optionals are not supported)",
			       vi->name);
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	if (tt->has_elem_type)
		v->dtype = (lm_dtype)tt->elem_type;
	if (!tt->shape)
		return 0;
	if (tt->shape->n_dim > LM_MAX_RANK)
		return lm_fail(e, -ENOTSUP, "'%s' has rank %zu; lamina supports "
			       "up to %d", vi->name, tt->shape->n_dim,
			       LM_MAX_RANK);
	v->rank = (int)tt->shape->n_dim;
	for (int i = 0; i < v->rank; i++) {
		const Onnx__TensorShapeProto__Dimension *d =
			tt->shape->dim[i];
		v->dims[i] = -1;
		free(v->dim_param[i]);
		v->dim_param[i] = NULL;
		if (d->value_case ==
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
		    d->dim_value < 0)
			return lm_fail(e, -EINVAL, "'%s' declares dim %d as %lld: "
				       "a dim is a size or a name, never "
				       "negative", vi->name, i,
				       (long long)d->dim_value);
		if (d->value_case ==
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
			v->dims[i] = d->dim_value;
		else if (d->value_case ==
				 ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
			 d->dim_param)
			v->dim_param[i] = strdup(d->dim_param);
	}
	return 0;
}

static int convert_attr(lm_node *n, const Onnx__AttributeProto *ap,
			lm_error *e)
{
	int type = ap->has_type ? (int)ap->type : 0;
	if (!type) {
		/* IR < 3 files may omit the type; infer it from the field */
		if (ap->n_ints) type = LM_ATTR_INTS;
		else if (ap->n_floats) type = LM_ATTR_FLOATS;
		else if (ap->n_strings) type = LM_ATTR_STRINGS;
		else if (ap->t) type = LM_ATTR_TENSOR;
		else if (ap->g) type = LM_ATTR_GRAPH;
		else if (ap->has_s) type = LM_ATTR_STRING;
		else if (ap->has_f) type = LM_ATTR_FLOAT;
		else type = LM_ATTR_INT;
	}
	lm_attr *a = lm_node_add_attr(n, ap->name ? ap->name : "",
				      (lm_attr_type)type);
	if (!a)
		return lm_fail(e, -ENOMEM, "out of memory");
	switch (type) {
	case LM_ATTR_FLOAT: a->f = ap->f; break;
	case LM_ATTR_INT: a->i = ap->i; break;
	case LM_ATTR_STRING:
		a->s = malloc(ap->s.len + 1);
		if (!a->s)
			return lm_fail(e, -ENOMEM, "out of memory");
		if (ap->s.len)
			memcpy(a->s, ap->s.data, ap->s.len);
		a->s[ap->s.len] = '\0';
		break;
	case LM_ATTR_FLOATS:
		a->n = (int)ap->n_floats;
		a->floats = malloc((ap->n_floats + 1) * sizeof(float));
		if (!a->floats)
			return lm_fail(e, -ENOMEM, "out of memory");
		if (ap->n_floats)
			memcpy(a->floats, ap->floats,
			       ap->n_floats * sizeof(float));
		break;
	case LM_ATTR_INTS:
		a->n = (int)ap->n_ints;
		a->ints = malloc((ap->n_ints + 1) * sizeof(int64_t));
		if (!a->ints)
			return lm_fail(e, -ENOMEM, "out of memory");
		if (ap->n_ints)
			memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
		break;
	case LM_ATTR_STRINGS:
		a->strings = calloc(ap->n_strings + 1, sizeof(char *));
		if (!a->strings)
			return lm_fail(e, -ENOMEM, "out of memory");
		for (size_t i = 0; i < ap->n_strings; i++) {
			a->strings[i] = malloc(ap->strings[i].len + 1);
			if (!a->strings[i])
				return lm_fail(e, -ENOMEM, "out of memory");
			if (ap->strings[i].len)
				memcpy(a->strings[i], ap->strings[i].data,
				       ap->strings[i].len);
			a->strings[i][ap->strings[i].len] = '\0';
			a->n = (int)i + 1;
		}
		break;
	case LM_ATTR_TENSOR: {
		if (!ap->t)
			return lm_fail(e, -EINVAL, "node '%s': tensor attribute "
				       "'%s' is empty", n->name, a->name);
		lm_tensor *t = calloc(1, sizeof(*t));
		if (!t)
			return lm_fail(e, -ENOMEM, "out of memory");
		a->t = t;
		int rank;
		int64_t dims[LM_MAX_RANK];
		size_t nbytes;
		int rc = tensor_shape(ap->t, "attribute", &rank, dims, &nbytes,
				      e);
		if (rc)
			return lm_fail_prefix(e, rc, "node '%s'", n->name);
		lm_tensor_set_shape(t, (lm_dtype)ap->t->data_type, rank, dims);
		rc = tensor_bytes(NULL, ap->t, "attribute", &t->data, nbytes,
				  e);
		if (rc)
			return lm_fail_prefix(e, rc, "node '%s'", n->name);
		t->nbytes = nbytes;
		t->owned = 1;
		break;
	}
	default:
		/* graphs, sparse tensors, type protos: kept in the source
		 * NodeProto, not interpreted here */
		break;
	}
	return 0;
}

static int add_initializers(lm_onnx_model *m, lm_error *e)
{
	lm_graph *g = m->g;
	for (size_t i = 0; i < m->n_inits; i++) {
		Onnx__TensorProto *t = unpack_init(m, i);
		if (!t)
			return lm_fail(e, -EINVAL, "initializer %zu is "
				       "malformed", i);
		int rank, rc;
		int64_t dims[LM_MAX_RANK];
		size_t nbytes;
		const char *name = t->name ? t->name : "";
		if (!name[0]) {
			rc = lm_fail(e, -EINVAL, "initializer %zu has no name",
				     i);
			goto next;
		}
		rc = tensor_shape(t, "initializer", &rank, dims, &nbytes, e);
		if (rc)
			goto next;
		rc = lm_graph_add_value(g, name, LM_VAL_INITIALIZER, e);
		if (rc < 0)
			goto next;
		lm_value *v = &g->values[rc];
		lm_value_set_shape(v, (lm_dtype)t->data_type, rank, dims);
		v->nbytes = nbytes;
		v->src = (uint32_t)i;
		int external = t->has_data_location &&
			       t->data_location ==
				       ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
		/* Small tensors are read now (shape inference reads them);
		 * external files are checked now so errors come early. */
		if (nbytes <= EAGER_BYTES)
			rc = tensor_bytes(m, t, "initializer", &v->data, nbytes,
					  e);
		else if (external)
			rc = external_read(m, t, nbytes, NULL, e);
		else if (!t->has_raw_data && tensor_bytes(m, t, "initializer",
							  &v->data, nbytes, e))
			rc = -EINVAL;
		else
			rc = 0;
		if (!t->has_raw_data && !external && v->data &&
		    nbytes > EAGER_BYTES) {
			/* typed-field data was checked above; it is cheap to
			 * read again when needed */
			free(v->data);
			v->data = NULL;
		}
next:
		onnx__tensor_proto__free_unpacked(t, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int build_graph(lm_onnx_model *m, lm_error *e)
{
	const Onnx__GraphProto *gp = m->gmeta;
	int rc;
	m->g = lm_graph_create(gp->name);
	if (!m->g)
		return lm_fail(e, -ENOMEM, "out of memory");
	lm_graph *g = m->g;
	g->loader = load_initializer;
	g->loader_ctx = m;
	g->ir_version = m->meta->has_ir_version ? m->meta->ir_version : 0;

	for (size_t i = 0; i < m->meta->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *op = m->meta->opset_import[i];
		if (!op->domain || !op->domain[0] ||
		    strcmp(op->domain, "ai.onnx") == 0)
			g->opset = op->version;
	}
	if (g->opset == 0)
		return lm_fail(e, -ENOTSUP, "the model imports no ai.onnx "
			       "opset");
	if (g->opset < OPSET_MIN || g->opset > OPSET_MAX)
		return lm_fail(e, -ENOTSUP, "opset %lld of ai.onnx is not "
			       "supported (lamina reads opsets %d to %d)",
			       (long long)g->opset, OPSET_MIN, OPSET_MAX);
	if (gp->n_sparse_initializer)
		return lm_fail(e, -ENOTSUP, "sparse initializers are not "
			       "supported");

	rc = add_initializers(m, e);
	if (rc)
		return rc;
	for (size_t i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vi = gp->input[i];
		if (!vi->name || !vi->name[0])
			return lm_fail(e, -EINVAL, "graph input %zu has no "
				       "name", i);
		if (lm_graph_find(g, vi->name) >= 0)
			continue; /* IR < 4: initializers are listed as inputs */
		rc = lm_graph_add_value(g, vi->name, LM_VAL_INPUT, e);
		if (rc < 0)
			return rc;
		if ((rc = type_from_valueinfo(&g->values[rc], vi, 1, e)))
			return rc;
		lm_graph_add_input(g, lm_graph_find(g, vi->name));
	}
	/* Node outputs first, so nodes may appear in any order in the file;
	 * lm_graph_sort puts them in order afterwards. */
	for (size_t i = 0; i < gp->n_node; i++) {
		const Onnx__NodeProto *np = gp->node[i];
		for (size_t o = 0; o < np->n_output; o++) {
			if (!np->output[o][0])
				continue;
			if (lm_graph_find(g, np->output[o]) >= 0)
				return lm_fail(e, -EINVAL, "tensor '%s' is "
					       "produced twice (node %zu, %s)",
					       np->output[o], i,
					       np->op_type ? np->op_type : "?");
			rc = lm_graph_add_value(g, np->output[o], LM_VAL_NODE,
						e);
			if (rc < 0)
				return rc;
		}
	}
	for (size_t i = 0; i < gp->n_node; i++) {
		Onnx__NodeProto *np = gp->node[i];
		if (!np->op_type || !np->op_type[0])
			return lm_fail(e, -EINVAL, "node %zu has no op_type", i);
		if (!np->name || !np->name[0]) {
			/* Name it so tables and manifests can refer to it; the
			 * slice files carry the same name. */
			char buf[256], *old = np->name;
			snprintf(buf, sizeof(buf), "%s_%zu", np->op_type, i);
			np->name = strdup(buf);
			if (old != protobuf_c_empty_string)
				free(old);
			if (!np->name)
				return lm_fail(e, -ENOMEM, "out of memory");
		}
		if (np->n_input > INT_MAX / 2 || np->n_output > INT_MAX / 2)
			return lm_fail(e, -EINVAL, "node '%s' has too many "
				       "inputs", np->name);
		rc = lm_graph_add_node(g, np->name, np->op_type, np->domain,
				       (const char *const *)np->input,
				       (int)np->n_input,
				       (const char *const *)np->output,
				       (int)np->n_output, e);
		if (rc < 0)
			return rc;
		lm_node *n = &g->nodes[rc];
		n->src = np;
		for (size_t a = 0; a < np->n_attribute; a++)
			if ((rc = convert_attr(n, np->attribute[a], e)))
				return rc;
	}
	/* Shapes the file declares: used for ops lamina cannot infer. */
	for (size_t i = 0; i < gp->n_value_info; i++) {
		if (!gp->value_info[i]->name)
			continue;
		int v = lm_graph_find(g, gp->value_info[i]->name);
		if (v >= 0 && g->values[v].kind == LM_VAL_NODE &&
		    (rc = type_from_valueinfo(&g->values[v],
					      gp->value_info[i], 0, e)))
			return rc;
	}
	for (size_t i = 0; i < gp->n_output; i++) {
		const Onnx__ValueInfoProto *vi = gp->output[i];
		int v = vi->name ? lm_graph_find(g, vi->name) : -1;
		if (v < 0)
			return lm_fail(e, -EINVAL, "graph output '%s' is "
				       "produced by no node",
				       vi->name ? vi->name : "");
		if (g->values[v].kind == LM_VAL_NODE &&
		    (rc = type_from_valueinfo(&g->values[v], vi, 0, e)))
			return rc;
		lm_graph_add_output(g, v);
	}
	if (g->n_outputs == 0)
		return lm_fail(e, -EINVAL, "the graph has no outputs");
	return lm_graph_sort(g, e);
}

/* ---- loading ---- */

/* Copy every top-level field of buf except those numbered `skip`. */
static uint8_t *strip_field(const uint8_t *buf, size_t len, uint32_t skip,
			    size_t *out_len, struct range **ranges,
			    size_t *n_ranges, size_t base)
{
	uint8_t *out = malloc(len ? len : 1);
	size_t pos = 0, o = 0, cap = 0;
	struct pb_field f;
	int rc;
	if (!out)
		return NULL;
	while ((rc = pb_next(buf, len, &pos, &f)) == 1) {
		if (f.number != skip) {
			memcpy(out + o, buf + f.start, f.end - f.start);
			o += f.end - f.start;
			continue;
		}
		if (!ranges)
			continue;
		if (f.wire_type != PB_BYTES)
			goto fail;
		if (*n_ranges == cap) {
			cap = cap ? cap * 2 : 64;
			struct range *r = realloc(*ranges, cap * sizeof(*r));
			if (!r)
				goto fail;
			*ranges = r;
		}
		(*ranges)[(*n_ranges)++] =
			(struct range){ base + f.data_off, f.data_len };
	}
	if (rc < 0)
		goto fail;
	*out_len = o;
	return out;
fail:
	free(out);
	return NULL;
}

static int parse_model(lm_onnx_model *m, lm_error *e)
{
	const char *notonnx = "not an ONNX model, or truncated";
	size_t pos = 0, graph_off = 0, graph_len = 0, stripped_len;
	int n_graphs = 0, rc;
	struct pb_field f;

	while ((rc = pb_next(m->map, m->map_len, &pos, &f)) == 1) {
		if (f.number == MODEL_GRAPH) {
			if (f.wire_type != PB_BYTES)
				return lm_fail(e, -EINVAL, "%s", notonnx);
			graph_off = f.data_off;
			graph_len = f.data_len;
			n_graphs++;
		}
	}
	if (rc < 0)
		return lm_fail(e, -EINVAL, "%s (bad protobuf at byte %zu)",
			       notonnx, f.start);
	if (n_graphs == 0)
		return lm_fail(e, -EINVAL, "%s (no graph)", notonnx);
	if (n_graphs > 1)
		return lm_fail(e, -ENOTSUP, "the model has %d graph fields; "
			       "lamina reads one", n_graphs);

	uint8_t *meta = strip_field(m->map, m->map_len, MODEL_GRAPH,
				    &stripped_len, NULL, NULL, 0);
	if (!meta)
		return lm_fail(e, -ENOMEM, "out of memory");
	m->meta = onnx__model_proto__unpack(NULL, stripped_len, meta);
	free(meta);
	if (!m->meta)
		return lm_fail(e, -EINVAL, "%s (ModelProto does not decode)",
			       notonnx);

	uint8_t *gbuf = strip_field(m->map + graph_off, graph_len,
				    GRAPH_INITIALIZER, &stripped_len,
				    &m->inits, &m->n_inits, graph_off);
	if (!gbuf)
		return lm_fail(e, -EINVAL, "%s (GraphProto is malformed)",
			       notonnx);
	m->gmeta = onnx__graph_proto__unpack(NULL, stripped_len, gbuf);
	free(gbuf);
	if (!m->gmeta)
		return lm_fail(e, -EINVAL, "%s (GraphProto does not decode)",
			       notonnx);
	return build_graph(m, e);
}

int lm_onnx_load(const char *path, lm_onnx_model **out, lm_error *e)
{
	char dir[PATH_MAX];
	struct stat st;
	int rc;
	*out = NULL;
	lm_onnx_model *m = calloc(1, sizeof(*m));
	if (m)
		m->batch.stop = -1;
	if (!m)
		return lm_fail(e, -ENOMEM, "%s: out of memory", path);
	m->path = strdup(path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		lm_onnx_free(m);
		return lm_fail(e, rc, "%s: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		lm_onnx_free(m);
		return lm_fail(e, -EINVAL, "%s: not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		lm_onnx_free(m);
		return lm_fail(e, -EINVAL, "%s: empty file, not an ONNX model",
			       path);
	}
	m->map_len = (size_t)st.st_size;
	m->map = mmap(NULL, m->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		lm_onnx_free(m);
		return lm_fail(e, -EIO, "%s: cannot map the file", path);
	}
	m->mapped = 1;
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	m->dir_real = realpath(dir, NULL);
	if (!m->path || !m->dir_real) {
		lm_onnx_free(m);
		return lm_fail(e, -ENOMEM, "%s: cannot resolve its folder",
			       path);
	}
	rc = parse_model(m, e);
	if (rc) {
		lm_onnx_free(m);
		return lm_fail_prefix(e, rc, "%s", path);
	}
	/* The weights stay in the file until asked for; let the kernel drop
	 * the pages we touched while reading the metadata. */
	madvise(m->map, m->map_len, MADV_DONTNEED);
	*out = m;
	return 0;
}

int lm_onnx_load_memory(const void *buf, size_t len, const char *name,
			lm_onnx_model **out, lm_error *e)
{
	*out = NULL;
	lm_onnx_model *m = calloc(1, sizeof(*m));
	if (m)
		m->batch.stop = -1;
	if (!m || !(m->path = strdup(name))) {
		free(m);
		return lm_fail(e, -ENOMEM, "%s: out of memory", name);
	}
	if (len == 0) {
		lm_onnx_free(m);
		return lm_fail(e, -EINVAL, "%s: empty, not an ONNX model",
			       name);
	}
	m->map = (uint8_t *)buf;
	m->map_len = len;
	int rc = parse_model(m, e);
	if (rc) {
		lm_onnx_free(m);
		return lm_fail_prefix(e, rc, "%s", name);
	}
	*out = m;
	return 0;
}

void lm_onnx_free(lm_onnx_model *m)
{
	if (!m)
		return;
	lm_graph_free(m->g);
	lm_batch_clear(&m->batch);
	if (m->gmeta)
		onnx__graph_proto__free_unpacked(m->gmeta, NULL);
	if (m->meta)
		onnx__model_proto__free_unpacked(m->meta, NULL);
	if (m->mapped)
		munmap(m->map, m->map_len);
	free(m->inits);
	free(m->dir_real);
	free(m->path);
	free(m);
}

lm_graph *lm_onnx_graph(lm_onnx_model *m)
{
	return m->g;
}

const char *lm_onnx_path(const lm_onnx_model *m)
{
	return m->path;
}

int lm_input_shape_parse(const char *arg, lm_input_shape *s, lm_error *e)
{
	const char *eq = strrchr(arg, '=');
	memset(s, 0, sizeof(*s));
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(s->name))
		return lm_fail(e, -EINVAL, "--input-shape '%s': expected "
			       "NAME=D0,D1,...", arg);
	memcpy(s->name, arg, (size_t)(eq - arg));
	const char *p = eq + 1;
	while (*p) {
		char *end;
		errno = 0;
		long long d = strtoll(p, &end, 10);
		if (end == p || errno || d < 0 || d > (1LL << 40) ||
		    s->rank == LM_MAX_RANK || (*end && *end != ','))
			return lm_fail(e, -EINVAL, "--input-shape '%s': dims "
				       "must be up to %d non-negative "
				       "integers separated by commas", arg,
				       LM_MAX_RANK);
		s->dims[s->rank++] = d;
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* Fold the shape subgraphs and infer every shape; an error that may come
 * from a symbolic dim taken as 1 says so. */
static int fold_and_infer(lm_onnx_model *m, const lm_value *first,
			  lm_error *e)
{
	lm_graph *g = m->g;
	int rc = lm_graph_fold_constants(g, e);
	if (rc >= 0)
		rc = lm_graph_infer_shapes(g, e);
	if (rc < 0 && first && e) {
		/* the error may well come from the assumed dims: say so */
		char shape[96];
		lm_fail_prefix(e, rc, "%s", m->path);
		size_t len = strlen(e->msg);
		snprintf(e->msg + len, sizeof(e->msg) - len,
			 " (its symbolic input dims were taken as 1, input "
			 "'%s' as %s: give the real shape with --input-shape "
			 "%s=D0,D1,...)", first->name,
			 lm_shape_str(first->rank, first->dims, shape,
				      sizeof(shape)),
			 first->name);
		return rc;
	}
	if (rc < 0)
		return lm_fail_prefix(e, rc, "%s", m->path);
	return 0;
}

static int batchish(const char *name)
{
	return strcasestr(name, "batch") || !strcmp(name, "N") ||
	       !strcmp(name, "B") || !strcasecmp(name, "bs");
}

/*
 * The model's symbolic batch, from the dims its inputs declare: a name
 * that says batch ("batch", "N", "B", "bs"), else the one on the lowest
 * axis.
 * Fills m->batch_name and, per input (in[]) and per output (out[]) that
 * declares it, where (with factors, for the "4*batch" of a slice).
 * Returns 1 when the model has one, else 0.
 */
static int symbolic_batch(lm_onnx_model *m, lm_batch_pos *in,
			  lm_batch_pos *out)
{
	lm_graph *g = m->g;
	char name[sizeof(m->batch_name)], best[sizeof(m->batch_name)] = "";
	int best_rank = 3, best_axis = LM_MAX_RANK;
	int64_t o, i;
	for (int k = 0; k < g->n_inputs; k++) {
		const lm_value *v = &g->values[g->inputs[k]];
		for (int d = 0; d < v->rank && d < LM_MAX_RANK; d++) {
			if (!v->dim_param[d] ||
			    lm_batch_dim_parse(v->dim_param[d], name,
					       sizeof(name), &o, &i))
				continue;
			int rank = batchish(name) ? 0 : 1;
			if (rank < best_rank ||
			    (rank == best_rank && d < best_axis)) {
				snprintf(best, sizeof(best), "%s", name);
				best_rank = rank;
				best_axis = d;
			}
		}
	}
	if (!best[0])
		return 0;
	snprintf(m->batch_name, sizeof(m->batch_name), "%s", best);
	for (int side = 0; side < 2; side++) {
		int n = side ? g->n_outputs : g->n_inputs;
		const int *list = side ? g->outputs : g->inputs;
		lm_batch_pos *pos = side ? out : in;
		for (int k = 0; k < n; k++) {
			const lm_value *v = &g->values[list[k]];
			pos[k] = lm_batch_none();
			for (int d = 0; d < v->rank && d < LM_MAX_RANK; d++)
				if (v->dim_param[d] &&
				    !lm_batch_dim_parse(v->dim_param[d], name,
							sizeof(name), &o, &i) &&
				    !strcmp(name, best)) {
					pos[k] = (lm_batch_pos){ d, o, i };
					break;
				}
		}
	}
	return 1;
}

/* Set the batch dim of every input that holds one to `batch`. */
static void set_batch(lm_graph *g, const lm_batch_pos *in, int64_t batch)
{
	for (int k = 0; k < g->n_inputs; k++)
		if (in[k].axis >= 0)
			g->values[g->inputs[k]].dims[in[k].axis] =
				in[k].outer * batch * in[k].inner;
}

/* After preparing a symbolic model at `batch`: the outputs that declare
 * the batch must come out with it. */
static int check_outputs(lm_onnx_model *m, const lm_batch_pos *out,
			 int64_t batch, lm_error *e)
{
	lm_graph *g = m->g;
	char shape[128];
	int declared = 0;
	for (int j = 0; j < g->n_outputs; j++) {
		const lm_value *y = &g->values[g->outputs[j]];
		if (out[j].axis < 0)
			continue;
		declared = 1;
		if (out[j].axis < y->rank &&
		    y->dims[out[j].axis] == out[j].outer * batch * out[j].inner)
			continue;
		return lm_fail(e, -EINVAL, "%s: cannot run at batch %lld: "
			       "output '%s' comes out as %s%s%s", m->path,
			       (long long)batch, y->name,
			       lm_shape_str(y->rank, y->dims, shape,
					    sizeof(shape)),
			       m->batch.stop >= 0 ? "; " : "",
			       m->batch.stop >= 0 ? m->batch.why : "");
	}
	if (!declared && m->batch.stop >= 0)
		return lm_fail(e, -EINVAL, "%s: cannot run at batch %lld: %s",
			       m->path, (long long)batch, m->batch.why);
	return 0;
}

/* A model with a batch of numbers, prepared at its own: at `batch` when
 * its samples stay apart, its literal batches rewritten. */
static int rebatch(lm_onnx_model *m, int64_t batch, lm_error *e)
{
	lm_graph *g = m->g;
	lm_batch_pos *in = calloc((size_t)g->n_inputs + 1, sizeof(*in));
	lm_batch nb;
	int64_t own = m->batch.size;
	int rc;
	if (!in)
		return lm_fail(e, -ENOMEM, "out of memory");
	if (m->batch.stop >= 0 || !m->batch.n) {
		free(in);
		return lm_fail(e, -EINVAL, "%s: cannot run at batch %lld: %s; "
			       "the model runs at batch %lld only", m->path,
			       (long long)batch,
			       m->batch.n ? m->batch.why
					  : "its inputs have no batch dim",
			       (long long)own);
	}
	for (int k = 0; k < g->n_inputs; k++)
		in[k] = lm_batch_of(&m->batch, g->inputs[k]);
	set_batch(g, in, batch);
	if (!(rc = fold_and_infer(m, NULL, e)) &&
	    !(rc = lm_batch_find(g, batch, in, &nb, e))) {
		if (nb.stop >= 0)
			rc = lm_fail(e, -EINVAL, "%s: cannot run at batch %lld: "
				     "%s; the model runs at batch %lld", m->path,
				     (long long)batch, nb.why, (long long)own);
		lm_batch_clear(&m->batch);
		m->batch = nb;
	}
	free(in);
	return rc;
}

int lm_onnx_prepare_at(lm_onnx_model *m, const lm_input_shape *shapes,
		       int n_shapes, int64_t batch, int *defaulted,
		       lm_error *e)
{
	lm_graph *g = m->g;
	int nd = 0, rc = 0;
	for (int s = 0; s < n_shapes; s++) {
		int v = lm_graph_find(g, shapes[s].name);
		if (v < 0 || g->values[v].kind != LM_VAL_INPUT)
			return lm_fail(e, -EINVAL, "--input-shape: the model "
				       "has no input '%s'", shapes[s].name);
		lm_value *val = &g->values[v];
		if (val->rank >= 0 && val->rank != shapes[s].rank)
			return lm_fail(e, -EINVAL, "--input-shape: input '%s' "
				       "has rank %d, not %d", val->name,
				       val->rank, shapes[s].rank);
		val->rank = shapes[s].rank;
		for (int i = 0; i < val->rank; i++)
			val->dims[i] = shapes[s].dims[i];
	}
	lm_batch_pos *in = calloc((size_t)g->n_inputs + 1, sizeof(*in));
	lm_batch_pos *out = calloc((size_t)g->n_outputs + 1, sizeof(*out));
	if (!in || !out) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto done;
	}
	snprintf(m->batch_name, sizeof(m->batch_name), "batch");
	int symbolic = symbolic_batch(m, in, out);
	if (symbolic && batch > 0)
		set_batch(g, in, batch);
	const lm_value *first = NULL; /* the first input given dims of 1 */
	for (int i = 0; i < g->n_inputs; i++) {
		lm_value *v = &g->values[g->inputs[i]];
		if (v->rank < 0) {
			rc = lm_fail(e, -EINVAL, "input '%s' declares no "
				     "shape; give one with --input-shape "
				     "%s=D0,D1,...", v->name, v->name);
			goto done;
		}
		for (int d = 0; d < v->rank; d++)
			if (v->dims[d] < 0) {
				v->dims[d] = 1;
				nd++;
				first = first ? first : v;
			}
	}
	if (defaulted)
		*defaulted = nd;
	if ((rc = fold_and_infer(m, first, e)))
		goto done;

	/* where the batch is, at which size; literal batches rewritten */
	lm_batch_clear(&m->batch);
	if (symbolic) {
		int64_t size = 0;
		for (int k = 0; k < g->n_inputs; k++) {
			const lm_value *v = &g->values[g->inputs[k]];
			if (in[k].axis < 0)
				continue;
			int64_t f = in[k].outer * in[k].inner;
			int64_t b = v->dims[in[k].axis] / f;
			if (b < 1 || b * f != v->dims[in[k].axis] ||
			    (size && b != size)) {
				rc = lm_fail(e, -EINVAL, "%s: input '%s' does "
					     "not hold a batch of %lld on axis "
					     "%d ('%s')", m->path, v->name,
					     (long long)(size ? size : b),
					     in[k].axis, m->batch_name);
				goto done;
			}
			size = b;
		}
		rc = lm_batch_find(g, size, in, &m->batch, e);
	} else {
		rc = lm_batch_guess(g, &m->batch, e);
	}
	if (!rc && m->batch.stop < 0 && m->batch.n)
		rc = lm_batch_literals(g, &m->batch, e);
	if (rc < 0) {
		lm_fail_prefix(e, rc, "%s", m->path);
		goto done;
	}
	rc = 0;
	if (batch > 0 && symbolic)
		rc = check_outputs(m, out, batch, e);
	else if (batch > 0 && batch != m->batch.size)
		rc = rebatch(m, batch, e);
done:
	free(in);
	free(out);
	return rc;
}

int lm_onnx_prepare(lm_onnx_model *m, const lm_input_shape *shapes,
		    int n_shapes, int *defaulted, lm_error *e)
{
	return lm_onnx_prepare_at(m, shapes, n_shapes, 0, defaulted, e);
}

int lm_onnx_prepare_batch(lm_onnx_model *m, int64_t batch, lm_error *e)
{
	return lm_onnx_prepare_at(m, NULL, 0, batch, NULL, e);
}

const lm_batch *lm_onnx_batch(const lm_onnx_model *m)
{
	return &m->batch;
}

const char *lm_onnx_batch_name(const lm_onnx_model *m)
{
	return m->batch_name;
}

/* ---- writing ---- */

/* Small allocations made while building one output model, freed at once. */
struct scratch {
	void **p;
	size_t n, cap;
};

static void *scratch_alloc(struct scratch *s, size_t size)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		void **p = realloc(s->p, cap * sizeof(*p));
		if (!p)
			return NULL;
		s->p = p;
		s->cap = cap;
	}
	void *mem = calloc(1, size ? size : 1);
	if (mem)
		s->p[s->n++] = mem;
	return mem;
}

static void scratch_free(struct scratch *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->p[i]);
	free(s->p);
}

/*
 * The ValueInfoProto of a tensor: its shape, the batch axis as the
 * model's symbolic batch (lm_batch_dim_name: "batch", "batch*4") when the
 * model follows any batch, so that one slicing serves every batch size.
 */
static Onnx__ValueInfoProto *make_valueinfo(struct scratch *s,
					    const lm_onnx_model *m,
					    const lm_value *v)
{
	lm_batch_pos bp = m->batch.stop < 0
				  ? lm_batch_of(&m->batch,
						(int)(v - m->g->values))
				  : lm_batch_none();
	Onnx__ValueInfoProto *vi = scratch_alloc(s, sizeof(*vi));
	Onnx__TypeProto *tp = scratch_alloc(s, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = scratch_alloc(s, sizeof(*tt));
	Onnx__TensorShapeProto *sh = scratch_alloc(s, sizeof(*sh));
	int rank = v->rank > 0 ? v->rank : 0;
	Onnx__TensorShapeProto__Dimension **dims =
		scratch_alloc(s, (size_t)(rank + 1) * sizeof(*dims));
	if (!vi || !tp || !tt || !sh || !dims)
		return NULL;
	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	for (int i = 0; i < rank; i++) {
		Onnx__TensorShapeProto__Dimension *d =
			scratch_alloc(s, sizeof(*d));
		if (!d)
			return NULL;
		onnx__tensor_shape_proto__dimension__init(d);
		d->value_case =
			ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		d->dim_value = v->dims[i];
		if (i == bp.axis) {
			char name[96];
			lm_batch_dim_name(m->batch_name, bp.outer, bp.inner,
					  name, sizeof(name));
			if (!(d->dim_param = scratch_alloc(s, strlen(name) + 1)))
				return NULL;
			strcpy(d->dim_param, name);
			d->value_case =
				ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
		}
		dims[i] = d;
	}
	sh->n_dim = (size_t)rank;
	sh->dim = dims;
	tt->has_elem_type = 1;
	tt->elem_type = (int32_t)v->dtype;
	tt->shape = v->rank >= 0 ? sh : NULL;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	vi->name = v->name;
	vi->type = tp;
	return vi;
}

/* A TensorProto holding a constant's bytes.  Data loaded only for this
 * write is recorded in *loaded so the caller can release it afterwards. */
static Onnx__TensorProto *make_tensor(struct scratch *s, lm_onnx_model *m,
				      lm_value *v, void **loaded, lm_error *e)
{
	Onnx__TensorProto *t = scratch_alloc(s, sizeof(*t));
	int64_t *dims = scratch_alloc(s, (size_t)(v->rank + 1) *
					      sizeof(int64_t));
	if (!t || !dims) {
		lm_fail(e, -ENOMEM, "out of memory");
		return NULL;
	}
	*loaded = NULL;
	const void *data = v->data;
	if (!data && v->nbytes) {
		if (load_initializer(m, m->g, v, e))
			return NULL;
		data = *loaded = v->data;
		v->data = NULL;
	}
	onnx__tensor_proto__init(t);
	for (int i = 0; i < v->rank; i++)
		dims[i] = v->dims[i];
	t->n_dims = (size_t)(v->rank > 0 ? v->rank : 0);
	t->dims = dims;
	t->has_data_type = 1;
	t->data_type = (int32_t)v->dtype;
	t->name = v->name;
	t->has_raw_data = 1;
	t->raw_data.len = v->nbytes;
	t->raw_data.data = (uint8_t *)data;
	return t;
}

/*
 * The source NodeProto of a node, as it is unless folding pointed one of its
 * inputs at another tensor (an Identity of a weight, say); then a shallow
 * copy that names the inputs the IR now has.
 */
static Onnx__NodeProto *node_proto(struct scratch *s, lm_graph *g,
				   const lm_node *n)
{
	Onnx__NodeProto *src = (Onnx__NodeProto *)n->src;
	int same = src->n_input == (size_t)n->n_inputs;
	for (int k = 0; same && k < n->n_inputs; k++) {
		const char *want = n->inputs[k] >= 0
					   ? g->values[n->inputs[k]].name
					   : "";
		same = strcmp(src->input[k], want) == 0;
	}
	if (same)
		return src;
	Onnx__NodeProto *copy = scratch_alloc(s, sizeof(*copy));
	char **inputs = scratch_alloc(s, ((size_t)n->n_inputs + 1) *
						 sizeof(char *));
	if (!copy || !inputs)
		return NULL;
	*copy = *src;
	for (int k = 0; k < n->n_inputs; k++)
		inputs[k] = n->inputs[k] >= 0 ? g->values[n->inputs[k]].name
					      : (char *)"";
	copy->n_input = (size_t)n->n_inputs;
	copy->input = inputs;
	return copy;
}

struct file_buffer {
	ProtobufCBuffer base;
	FILE *f;
	int failed;
};

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	struct file_buffer *fb = (struct file_buffer *)b;
	if (!fb->failed && fwrite(data, 1, len, fb->f) != len)
		fb->failed = 1;
}

int lm_onnx_write_range(lm_onnx_model *m, const lm_slice *sl,
			const char *path, lm_error *e)
{
	lm_graph *g = m->g;
	struct scratch s = { 0 };
	int n_nodes = sl->last_node - sl->first_node + 1, rc = 0;
	int legacy_inputs = g->ir_version > 0 && g->ir_version < 4;
	int n_in = sl->n_inputs + (legacy_inputs ? sl->n_consts : 0);
	Onnx__NodeProto **nodes = scratch_alloc(&s, (size_t)n_nodes *
							    sizeof(void *));
	Onnx__TensorProto **inits = scratch_alloc(&s, (size_t)(sl->n_consts +
							       1) *
							      sizeof(void *));
	void **loaded = scratch_alloc(&s, (size_t)(sl->n_consts + 1) *
						  sizeof(void *));
	Onnx__ValueInfoProto **ins = scratch_alloc(&s, (size_t)(n_in + 1) *
							       sizeof(void *));
	Onnx__ValueInfoProto **outs = scratch_alloc(
		&s, (size_t)(sl->n_outputs + 1) * sizeof(void *));
	Onnx__ValueInfoProto **vinfo = NULL;
	size_t n_vinfo = 0, cap_vinfo = 0;
	char gname[512];
	if (!nodes || !inits || !loaded || !ins || !outs) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n_nodes; i++) {
		const lm_node *n = &g->nodes[sl->first_node + i];
		nodes[i] = node_proto(&s, g, n);
		if (!nodes[i]) {
			rc = lm_fail(e, -ENOMEM, "out of memory");
			goto out;
		}
		for (int o = 0; o < n->n_outputs; o++)
			cap_vinfo += n->outputs[o] >= 0;
	}
	vinfo = scratch_alloc(&s, (cap_vinfo + 1) * sizeof(void *));
	if (!vinfo) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < sl->n_consts; i++) {
		inits[i] = make_tensor(&s, m, &g->values[sl->consts[i]],
				       &loaded[i], e);
		if (!inits[i]) {
			rc = -EINVAL;
			goto out;
		}
	}
	for (int i = 0; i < sl->n_inputs; i++)
		ins[i] = make_valueinfo(&s, m, &g->values[sl->inputs[i]]);
	for (int i = 0; legacy_inputs && i < sl->n_consts; i++)
		ins[sl->n_inputs + i] =
			make_valueinfo(&s, m, &g->values[sl->consts[i]]);
	for (int i = 0; i < sl->n_outputs; i++)
		outs[i] = make_valueinfo(&s, m, &g->values[sl->outputs[i]]);
	for (int i = 0; i < n_nodes; i++) {
		const lm_node *n = &g->nodes[sl->first_node + i];
		for (int o = 0; o < n->n_outputs; o++) {
			lm_value *v = lm_node_out(g, n, o);
			int is_out = 0;
			if (!v)
				continue;
			for (int k = 0; k < sl->n_outputs; k++)
				is_out |= &g->values[sl->outputs[k]] == v;
			if (!is_out)
				vinfo[n_vinfo++] = make_valueinfo(&s, m, v);
		}
	}
	for (int i = 0; i < n_in; i++)
		if (!ins[i])
			rc = -ENOMEM;
	for (int i = 0; i < sl->n_outputs; i++)
		if (!outs[i])
			rc = -ENOMEM;
	for (size_t i = 0; i < n_vinfo; i++)
		if (!vinfo[i])
			rc = -ENOMEM;
	if (rc) {
		rc = lm_fail(e, rc, "out of memory");
		goto out;
	}

	Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
	snprintf(gname, sizeof(gname), "%s_nodes_%d_%d",
		 g->name ? g->name : "graph", sl->first_node, sl->last_node);
	gp.name = gname;
	gp.n_node = (size_t)n_nodes;
	gp.node = nodes;
	gp.n_initializer = (size_t)sl->n_consts;
	gp.initializer = inits;
	gp.n_input = (size_t)n_in;
	gp.input = ins;
	gp.n_output = (size_t)sl->n_outputs;
	gp.output = outs;
	gp.n_value_info = n_vinfo;
	gp.value_info = vinfo;

	Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
	mp.has_ir_version = m->meta->has_ir_version;
	mp.ir_version = m->meta->ir_version;
	mp.n_opset_import = m->meta->n_opset_import;
	mp.opset_import = m->meta->opset_import;
	mp.producer_name = "lamina";
	mp.producer_version = "0.1.0";
	mp.domain = m->meta->domain;
	mp.has_model_version = m->meta->has_model_version;
	mp.model_version = m->meta->model_version;
	mp.n_functions = m->meta->n_functions;
	mp.functions = m->meta->functions;
	mp.graph = &gp;

	struct file_buffer fb = { { file_append }, fopen(path, "wb"), 0 };
	if (!fb.f) {
		rc = lm_fail(e, -errno, "%s: cannot create: %s", path,
			     strerror(errno));
		goto out;
	}
	protobuf_c_message_pack_to_buffer(&mp.base, &fb.base);
	if (fclose(fb.f) != 0 || fb.failed)
		rc = lm_fail(e, -EIO, "%s: write failed (disk full?)", path);
out:
	for (int i = 0; loaded && i < sl->n_consts; i++)
		free(loaded[i]);
	scratch_free(&s);
	return rc;
}
