/*
 * The audit log's line encoder in C: the same bytes as kzai_guard/audit/lines.py, faster.
 *
 * A line is the RFC 8785 canonical JSON of {"prev", "rec", "sealed"?, "seq"}; its leaf hash is
 * SHA-256(0x00 || line) (format 1) or SHA-256(0x00 || SHA-256(line)) (format 2), and it
 * chains to the next line's "prev". Per record this writes "rec" (the record's members in
 * sorted order, None left out), seals the personal fields with AES-256-GCM under the owner's
 * key, and hashes the line, all without a Python call.
 *
 * It handles exactly what the Python encoder's fast path handles: members that are str (or a
 * str subclass such as a StrEnum member), int (not bool) or None, and text that is valid
 * UTF-8. Anything else raises TypeError, ValueError or OverflowError, and lines.py then
 * encodes the chunk in Python, which owns every other case (lone surrogates, other types).
 * The test suite checks that both give the same bytes.
 *
 * A call reads the records with the GIL held (the UTF-8 of their strings, which the call keeps
 * references to), then writes, seals and hashes the lines without it, so that the request
 * threads run meanwhile, and makes the bytes objects with it again. It keeps no state between
 * calls other than what its constructor set, so an encoder may be used by several threads.
 *
 * The log's writer does it in two steps, as lines.py does: Encoder.bodies() seals a batch
 * before the writer holds the log (the lines without "prev" and "seq", nothing hashed), and
 * chain() makes the lines and their leaf hashes once the head is known. record_refs() makes
 * the per-record references the sealed lines name their keys by (see shredding.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#define NONCE_SIZE 12
#define TAG_SIZE 16
#define KEY_SIZE 32
#define DIGEST_SIZE 32
#define PREV_SIZE 64

/* -- a growable byte buffer, usable without the GIL (PyMem_Raw*; errors are return codes) -- */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (extra < 0 || extra > PY_SSIZE_T_MAX - b->len) {
        return -1;
    }
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *data = PyMem_RawRealloc(b->data, (size_t)cap);
    if (data == NULL) {
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define BUF_LITERAL(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static const char HEX[] = "0123456789abcdef";

/* A JSON string as RFC 8785 (and orjson) write it: '"' and '\' escaped, the control
 * characters as \b \t \n \f \r or \u00xx, everything else as it is (UTF-8). */
static int
buf_json_string(Buf *b, const char *s, Py_ssize_t n)
{
    /* at most 6 bytes per input byte, and the quotes */
    if (n > (PY_SSIZE_T_MAX - 2) / 6 || buf_reserve(b, n * 6 + 2) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 0xF];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

/* The decimal form of ``v``, as Python's str(int) writes it. */
static int
buf_int(Buf *b, long long v)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp), *p = end;
    /* the magnitude as unsigned, so that LLONG_MIN has one too */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *--p = '-';
    }
    return buf_put(b, p, end - p);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding and no newline, as binascii.b2a_base64(newline=False). */
static int
buf_b64(Buf *b, const unsigned char *d, Py_ssize_t n)
{
    if (buf_reserve(b, (n + 2) / 3 * 4) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = B64[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0);
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    b->len = out - b->data;
    return 0;
}

/* -- what one chunk is made of, gathered with the GIL held --------------------------------- */

typedef enum { ABSENT, TEXT, NUMBER } Kind;

typedef struct {
    Kind kind;
    const char *text; /* UTF-8 of a str the chunk holds a reference to */
    Py_ssize_t len;
    long long number;
} Value;

typedef struct {
    Value *members;             /* one per name of all_names */
    int sealed;                 /* its personal fields are sealed */
    const unsigned char *key;   /* KEY_SIZE bytes */
    const unsigned char *nonce; /* NONCE_SIZE bytes */
    const char *ref;
    Py_ssize_t ref_len;
    int numbered;
    long long number;
} Row;

/* Everything phase two reads, and the references that keep it alive. */
typedef struct {
    Py_ssize_t count;
    Row *rows;
    Value *values;
    Py_ssize_t *offsets; /* where the chunk's slotted record type keeps each member */
    PyObject **refs;
    Py_ssize_t nrefs, refs_cap;
} Chunk;

static int
chunk_keep(Chunk *c, PyObject *obj)
{
    if (c->nrefs == c->refs_cap) {
        Py_ssize_t cap = c->refs_cap ? c->refs_cap * 2 : 64;
        PyObject **refs = PyMem_Realloc(c->refs, (size_t)cap * sizeof(PyObject *));
        if (refs == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->refs = refs;
        c->refs_cap = cap;
    }
    c->refs[c->nrefs++] = obj;
    return 0;
}

static void
chunk_free(Chunk *c)
{
    for (Py_ssize_t i = 0; i < c->nrefs; i++) {
        Py_DECREF(c->refs[i]);
    }
    PyMem_Free(c->refs);
    PyMem_Free(c->rows);
    PyMem_Free(c->values);
    PyMem_Free(c->offsets);
}

/* A member value as phase two writes it; raises TypeError (or a UnicodeEncodeError, a
 * ValueError, or OverflowError) for what only the Python encoder writes. */
static int
read_value(PyObject *value, Value *out)
{
    if (value == Py_None) {
        out->kind = ABSENT;
        return 0;
    }
    if (PyUnicode_Check(value)) {
        out->text = PyUnicode_AsUTF8AndSize(value, &out->len);
        out->kind = TEXT;
        return out->text == NULL ? -1 : 0;
    }
    if (PyLong_Check(value) && !PyBool_Check(value)) {
        out->number = PyLong_AsLongLong(value);
        out->kind = NUMBER;
        return out->number == -1 && PyErr_Occurred() ? -1 : 0;
    }
    PyErr_Format(PyExc_TypeError, "audit record member of type %.100s",
                 Py_TYPE(value)->tp_name);
    return -1;
}

/* -- the encoder --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *all_names;  /* tuple of str: every member, sorted */
    PyObject *keys_all;   /* tuple of bytes: '"name":' for each of all_names */
    Py_ssize_t *open;     /* the positions in all_names of the members that are not personal */
    Py_ssize_t nopen;
    Py_ssize_t id, subject, reviewer, detail; /* positions in all_names */
    Py_ssize_t *sealed;   /* the positions of the sealed members, in the order they are sealed */
    Py_ssize_t nsealed;
    PyObject *aad_prefix; /* bytes */
    EVP_MD *sha256;
    EVP_CIPHER *gcm;
    int leaf_format; /* 1: the leaf commits to the line; 2: to SHA-256(line) */
    int ready; /* configured by a successful __init__; never changed after */
} Encoder;

static PyObject *
member_keys(PyObject *names)
{
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        Buf b = {0};
        Py_ssize_t len;
        const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL;
        if (s == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "member names must be str");
            }
            Py_DECREF(out);
            return NULL;
        }
        if (buf_json_string(&b, s, len) < 0 || BUF_LITERAL(&b, ":") < 0) {
            PyMem_RawFree(b.data);
            Py_DECREF(out);
            PyErr_NoMemory();
            return NULL;
        }
        PyObject *key = PyBytes_FromStringAndSize(b.data, b.len);
        PyMem_RawFree(b.data);
        if (key == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, key);
    }
    return out;
}

static Py_ssize_t
position(PyObject *names, const char *name)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(names, i), name) == 0) {
            return i;
        }
    }
    PyErr_Format(PyExc_ValueError, "all_names has no %s", name);
    return -1;
}

static int
Encoder_init(Encoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"all_names", "open_names", "aad_prefix", "sealed_names", "leaf_format",
                             NULL};
    PyObject *all_names, *open_names, *aad_prefix, *sealed_names = NULL;
    int leaf_format = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!S|O!i", kwlist, &PyTuple_Type, &all_names,
                                     &PyTuple_Type, &open_names, &aad_prefix, &PyTuple_Type,
                                     &sealed_names, &leaf_format)) {
        return -1;
    }
    if (self->ready) {
        /* another thread may be encoding with this configuration, without the GIL */
        PyErr_SetString(PyExc_TypeError, "an Encoder is configured once");
        return -1;
    }
    if (leaf_format != 1 && leaf_format != 2) {
        PyErr_Format(PyExc_ValueError, "unknown leaf format %d", leaf_format);
        return -1;
    }
    self->leaf_format = leaf_format;
    /* every name is checked to be str before any is compared */
    Py_XSETREF(self->keys_all, member_keys(all_names));
    if (self->keys_all == NULL) {
        return -1;
    }
    Py_ssize_t nopen = PyTuple_GET_SIZE(open_names);
    Py_ssize_t *open = PyMem_Malloc((size_t)(nopen ? nopen : 1) * sizeof(Py_ssize_t));
    if (open == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < nopen; i++) {
        PyObject *name = PyTuple_GET_ITEM(open_names, i);
        const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (s == NULL || (open[i] = position(all_names, s)) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "member names must be str");
            }
            PyMem_Free(open);
            return -1;
        }
    }
    PyMem_Free(self->open);
    self->open = open;
    self->nopen = nopen;
    if ((self->id = position(all_names, "id")) < 0 ||
        (self->subject = position(all_names, "subject")) < 0 ||
        (self->reviewer = position(all_names, "reviewer")) < 0 ||
        (self->detail = position(all_names, "detail")) < 0) {
        return -1;
    }
    Py_ssize_t nsealed = sealed_names ? PyTuple_GET_SIZE(sealed_names) : 3;
    Py_ssize_t *sealed = PyMem_Malloc((size_t)(nsealed ? nsealed : 1) * sizeof(Py_ssize_t));
    if (sealed == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < nsealed; i++) {
        if (sealed_names == NULL) {
            sealed[i] = i == 0 ? self->subject : i == 1 ? self->reviewer : self->detail;
            continue;
        }
        PyObject *name = PyTuple_GET_ITEM(sealed_names, i);
        Py_ssize_t len = 0;
        const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL;
        if (s == NULL || (sealed[i] = position(all_names, s)) < 0 ||
            /* the fields list is cut from '"name":', which holds the name unescaped */
            PyBytes_GET_SIZE(PyTuple_GET_ITEM(self->keys_all, sealed[i])) != len + 3) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "sealed names must be plain str member names");
            }
            PyMem_Free(sealed);
            return -1;
        }
    }
    PyMem_Free(self->sealed);
    self->sealed = sealed;
    self->nsealed = nsealed;
    Py_XSETREF(self->all_names, Py_NewRef(all_names));
    Py_XSETREF(self->aad_prefix, Py_NewRef(aad_prefix));
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    if (self->sha256 == NULL) {
        self->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    if (self->gcm == NULL) {
        self->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    }
#else
    self->sha256 = (EVP_MD *)EVP_sha256();
    self->gcm = (EVP_CIPHER *)EVP_aes_256_gcm();
#endif
    if (self->sha256 == NULL || self->gcm == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL has no SHA-256 or AES-256-GCM");
        return -1;
    }
    self->ready = 1;
    return 0;
}

static void
Encoder_dealloc(Encoder *self)
{
    Py_XDECREF(self->all_names);
    Py_XDECREF(self->keys_all);
    Py_XDECREF(self->aad_prefix);
    PyMem_Free(self->open);
    PyMem_Free(self->sealed);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free(self->sha256);
    EVP_CIPHER_free(self->gcm);
#endif
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The seal of one record's owner, from the caller's ``seals`` and ``nonces``. */
static int
read_seal(Chunk *c, Row *row, PyObject *seals, PyObject *owner, PyObject *nonce,
          PyObject *record_ref)
{
    PyObject *seal = PyDict_GetItemWithError(seals, owner); /* borrowed */
    if (seal == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, owner);
        }
        return -1;
    }
    if (!PyTuple_Check(seal) || PyTuple_GET_SIZE(seal) < 3) {
        PyErr_SetString(PyExc_TypeError, "a seal starts with (key, ref, number)");
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(seal, 0);
    PyObject *ref = record_ref ? record_ref : PyTuple_GET_ITEM(seal, 1);
    PyObject *number = PyTuple_GET_ITEM(seal, 2);
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != KEY_SIZE || !PyBytes_Check(ref) ||
        nonce == NULL || !PyBytes_Check(nonce) || PyBytes_GET_SIZE(nonce) != NONCE_SIZE) {
        PyErr_SetString(PyExc_TypeError,
                        "a seal needs a 32-byte key, a bytes ref, a 12-byte nonce");
        return -1;
    }
    if (number != Py_None && (!PyLong_Check(number) || PyBool_Check(number))) {
        PyErr_SetString(PyExc_TypeError, "a key number must be int");
        return -1;
    }
    row->numbered = number != Py_None;
    if (row->numbered) {
        row->number = PyLong_AsLongLong(number);
        if (row->number == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    /* the seal tuple keeps its key and ref alive, the nonce itself */
    if (chunk_keep(c, Py_NewRef(seal)) < 0) {
        Py_DECREF(seal);
        return -1;
    }
    if (chunk_keep(c, Py_NewRef(nonce)) < 0) {
        Py_DECREF(nonce);
        return -1;
    }
    if (record_ref && chunk_keep(c, Py_NewRef(record_ref)) < 0) {
        Py_DECREF(record_ref);
        return -1;
    }
    row->sealed = 1;
    row->key = (const unsigned char *)PyBytes_AS_STRING(key);
    row->ref = PyBytes_AS_STRING(ref);
    row->ref_len = PyBytes_GET_SIZE(ref);
    row->nonce = (const unsigned char *)PyBytes_AS_STRING(nonce);
    return 0;
}

/* Where instances of ``type`` hold each of ``names``: the offsets of their slots, when every
 * name is a plain object slot of ``type`` (as in a dataclass with slots=True). Returns 1 and
 * fills ``offsets``, 0 when some name is anything else or the type reads attributes its own
 * way (its members are then read by name), -1 on an error. */
static int
slot_offsets(PyTypeObject *type, PyObject *names, Py_ssize_t *offsets)
{
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return 0; /* its own __getattribute__ decides what a name reads */
    }
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)type, PyTuple_GET_ITEM(names, j));
        if (descr == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return -1;
            }
            PyErr_Clear();
            return 0;
        }
        int plain = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                    ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX &&
                    PyType_IsSubtype(type, PyDescr_TYPE(descr));
        if (plain) {
            offsets[j] = ((PyMemberDescrObject *)descr)->d_member->offset;
        }
        Py_DECREF(descr);
        if (!plain) {
            return 0;
        }
    }
    return 1;
}

/* Member ``j`` of ``record`` (a new reference): from its slot when ``offsets`` says where it
 * is, else by name. An empty slot raises AttributeError, as reading it by name does. */
static PyObject *
read_member(const Encoder *self, PyObject *record, Py_ssize_t j, const Py_ssize_t *offsets)
{
    if (offsets == NULL) {
        return PyObject_GetAttr(record, PyTuple_GET_ITEM(self->all_names, j));
    }
    PyObject *value = *(PyObject **)((char *)record + offsets[j]);
    if (value == NULL) {
        PyErr_SetObject(PyExc_AttributeError, PyTuple_GET_ITEM(self->all_names, j));
        return NULL;
    }
    return Py_NewRef(value);
}

/* Phase one, with the GIL: read every record's members and seal into ``c``. */
static int
gather(Encoder *self, Chunk *c, PyObject *records, PyObject *seals, PyObject *nonces,
       PyObject *refs)
{
    Py_ssize_t nnames = PyTuple_GET_SIZE(self->all_names);
    Py_ssize_t nnonces = nonces ? PySequence_Fast_GET_SIZE(nonces) : 0;
    Py_ssize_t nrecord_refs = refs ? PySequence_Fast_GET_SIZE(refs) : 0;
    c->count = PySequence_Fast_GET_SIZE(records);
    if (nnames && c->count > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(Value) / nnames) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cells = c->count * nnames;
    c->rows = PyMem_Calloc((size_t)(c->count ? c->count : 1), sizeof(Row));
    c->values = PyMem_Calloc((size_t)(cells ? cells : 1), sizeof(Value));
    if (c->rows == NULL || c->values == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* the records of a chunk are nearly always of one slotted type: find its slots once */
    PyTypeObject *slotted = NULL;
    c->offsets = PyMem_Calloc((size_t)(nnames ? nnames : 1), sizeof(Py_ssize_t));
    if (c->offsets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (c->count) {
        PyTypeObject *first = Py_TYPE(PySequence_Fast_GET_ITEM(records, 0));
        int found = slot_offsets(first, self->all_names, c->offsets);
        if (found < 0) {
            return -1;
        }
        if (found) {
            slotted = first;
        }
    }
    for (Py_ssize_t i = 0; i < c->count; i++) {
        PyObject *record = PySequence_Fast_GET_ITEM(records, i);
        const Py_ssize_t *offsets = Py_IS_TYPE(record, slotted) ? c->offsets : NULL;
        Row *row = &c->rows[i];
        row->members = &c->values[i * nnames];
        for (Py_ssize_t j = 0; j < nnames; j++) {
            PyObject *value = read_member(self, record, j, offsets);
            if (value == NULL) {
                return -1;
            }
            if (chunk_keep(c, value) < 0) {
                Py_DECREF(value);
                return -1;
            }
            if (read_value(value, &row->members[j]) < 0) {
                return -1;
            }
        }
        if (seals == Py_None) {
            continue;
        }
        Py_ssize_t owner = row->members[self->subject].kind != ABSENT ? self->subject
                           : row->members[self->reviewer].kind != ABSENT ? self->reviewer
                                                                         : -1;
        if (owner < 0) {
            continue;
        }
        if (row->members[self->id].kind != TEXT) {
            PyErr_SetString(PyExc_TypeError, "audit record id must be str");
            return -1;
        }
        /* the owner's value object is the one kept above for this member */
        PyObject *owner_value = c->refs[c->nrefs - nnames + owner];
        PyObject *nonce = i < nnonces ? PySequence_Fast_GET_ITEM(nonces, i) : NULL;
        PyObject *record_ref = NULL;
        if (refs) {
            if (i >= nrecord_refs) {
                PyErr_SetString(PyExc_TypeError, "refs must hold a reference for each record");
                return -1;
            }
            record_ref = PySequence_Fast_GET_ITEM(refs, i);
        }
        if (read_seal(c, row, seals, owner_value, nonce, record_ref) < 0) {
            return -1;
        }
    }
    return 0;
}

/* -- phase two, without the GIL: write, seal, hash ----------------------------------------- */

typedef enum { DONE, NO_MEMORY, OPENSSL, TOO_LARGE } Outcome;

static int
write_value(Buf *b, const Value *v)
{
    return v->kind == TEXT ? buf_json_string(b, v->text, v->len) : buf_int(b, v->number);
}

/* The members named by ``positions`` (all of them when NULL) as a JSON object, absent ones
 * left out. */
static int
write_members(Buf *b, const Encoder *self, const Row *row, const Py_ssize_t *positions,
              Py_ssize_t count)
{
    int first = 1;
    if (BUF_LITERAL(b, "{") < 0) {
        return -1;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t j = positions ? positions[k] : k;
        const Value *v = &row->members[j];
        if (v->kind == ABSENT) {
            continue;
        }
        PyObject *key = PyTuple_GET_ITEM(self->keys_all, j);
        if ((!first && BUF_LITERAL(b, ",") < 0) ||
            buf_put(b, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) < 0 ||
            write_value(b, v) < 0) {
            return -1;
        }
        first = 0;
    }
    return BUF_LITERAL(b, "}");
}

/* The sealed fields present, as {"subject":..,"reviewer":..,..} in the configured order,
 * and their names joined by commas. */
static int
write_personal(Buf *plain, Buf *fields, const Encoder *self, const Row *row)
{
    int first = 1;
    if (BUF_LITERAL(plain, "{") < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < self->nsealed; i++) {
        Py_ssize_t j = self->sealed[i];
        const Value *value = &row->members[j];
        if (value->kind == ABSENT) {
            continue;
        }
        /* '"name":' (kept alive by the encoder), and the name alone within it */
        PyObject *key = PyTuple_GET_ITEM(self->keys_all, j);
        const char *quoted = PyBytes_AS_STRING(key);
        Py_ssize_t n = PyBytes_GET_SIZE(key);
        if ((!first && (BUF_LITERAL(plain, ",") < 0 || BUF_LITERAL(fields, ",") < 0)) ||
            buf_put(plain, quoted, n) < 0 || buf_put(fields, quoted + 1, n - 3) < 0 ||
            write_value(plain, value) < 0) {
            return -1;
        }
        first = 0;
    }
    return BUF_LITERAL(plain, "}");
}

/* The buffers and OpenSSL contexts of one call. */
typedef struct {
    EVP_MD_CTX *md;
    EVP_CIPHER_CTX *cx;
    Buf plain, fields, aad, sealed;
    const unsigned char *key; /* the key ``cx`` was set up with last, if any */
} Work;

/* ,"sealed":{"ct":"<base64(nonce || ciphertext || tag)>","fields":"..","key"?:N,"ref":".."} */
static Outcome
write_seal(Buf *line, const Encoder *self, const Row *row, Work *w)
{
    const Value *id = &row->members[self->id];
    w->plain.len = w->fields.len = w->aad.len = w->sealed.len = 0;
    if (write_personal(&w->plain, &w->fields, self, row) < 0 ||
        buf_put(&w->aad, PyBytes_AS_STRING(self->aad_prefix),
                PyBytes_GET_SIZE(self->aad_prefix)) < 0 ||
        buf_put(&w->aad, id->text, id->len) < 0 || BUF_LITERAL(&w->aad, "\n") < 0 ||
        buf_put(&w->aad, row->ref, row->ref_len) < 0) {
        return NO_MEMORY;
    }
    if (w->plain.len > INT_MAX - NONCE_SIZE - TAG_SIZE || w->aad.len > INT_MAX) {
        return TOO_LARGE;
    }
    if (buf_reserve(&w->sealed, NONCE_SIZE + w->plain.len + TAG_SIZE) < 0) {
        return NO_MEMORY;
    }
    unsigned char *raw = (unsigned char *)w->sealed.data;
    int outl = 0, finl = 0;
    memcpy(raw, row->nonce, NONCE_SIZE);
    /* records of one owner share its key's bytes object: its AES key schedule and GHASH
     * table are set up once for a run of them, and only the nonce changes */
    const unsigned char *key = row->key == w->key ? NULL : row->key;
    w->key = row->key;
    if (EVP_EncryptInit_ex(w->cx, key ? self->gcm : NULL, NULL, key, row->nonce) != 1 ||
        EVP_EncryptUpdate(w->cx, NULL, &outl, (const unsigned char *)w->aad.data,
                          (int)w->aad.len) != 1 ||
        EVP_EncryptUpdate(w->cx, raw + NONCE_SIZE, &outl, (const unsigned char *)w->plain.data,
                          (int)w->plain.len) != 1 ||
        EVP_EncryptFinal_ex(w->cx, raw + NONCE_SIZE + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(w->cx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE,
                            raw + NONCE_SIZE + outl + finl) != 1) {
        return OPENSSL;
    }
    if (BUF_LITERAL(line, ",\"sealed\":{\"ct\":\"") < 0 ||
        buf_b64(line, raw, NONCE_SIZE + outl + finl + TAG_SIZE) < 0 ||
        BUF_LITERAL(line, "\",\"fields\":\"") < 0 ||
        buf_put(line, w->fields.data, w->fields.len) < 0 || BUF_LITERAL(line, "\"") < 0 ||
        (row->numbered && (BUF_LITERAL(line, ",\"key\":") < 0 || buf_int(line, row->number) < 0)) ||
        BUF_LITERAL(line, ",\"ref\":\"") < 0 || buf_put(line, row->ref, row->ref_len) < 0 ||
        BUF_LITERAL(line, "\"}") < 0) {
        return NO_MEMORY;
    }
    return DONE;
}

/* Row ``row``'s body: ``","rec":{..}`` and its seal, then ``,"seq":``, the part of its line
 * between the hex digits of ``prev`` and the digits of ``seq``. */
static Outcome
write_body(Buf *out, const Encoder *self, const Row *row, Work *w)
{
    if (BUF_LITERAL(out, "\",\"rec\":") < 0) {
        return NO_MEMORY;
    }
    if (row->sealed) {
        if (write_members(out, self, row, self->open, self->nopen) < 0) {
            return NO_MEMORY;
        }
        Outcome outcome = write_seal(out, self, row, w);
        if (outcome != DONE) {
            return outcome;
        }
    }
    else if (write_members(out, self, row, NULL, PyTuple_GET_SIZE(self->all_names)) < 0) {
        return NO_MEMORY;
    }
    return BUF_LITERAL(out, ",\"seq\":") < 0 ? NO_MEMORY : DONE;
}

/* The leaf hash of ``line`` in ``leaf_format`` into ``digest``: SHA-256(0x00 || line) (1), or
 * SHA-256(0x00 || SHA-256(line)) (2); 0 if OpenSSL failed. */
static int
leaf_hash(EVP_MD_CTX *md, const EVP_MD *sha256, int leaf_format, const unsigned char *line,
          size_t len, unsigned char *digest)
{
    static const unsigned char zero = 0;
    unsigned char commitment[DIGEST_SIZE];
    unsigned int n = 0;
    if (leaf_format == 2) {
        /* format 2: the tree's entry is the line's commitment SHA-256(line) */
        if (EVP_DigestInit_ex(md, sha256, NULL) != 1 || EVP_DigestUpdate(md, line, len) != 1 ||
            EVP_DigestFinal_ex(md, commitment, &n) != 1 || n != DIGEST_SIZE) {
            return 0;
        }
        line = commitment;
        len = DIGEST_SIZE;
    }
    return EVP_DigestInit_ex(md, sha256, NULL) == 1 && EVP_DigestUpdate(md, &zero, 1) == 1 &&
           EVP_DigestUpdate(md, line, len) == 1 && EVP_DigestFinal_ex(md, digest, &n) == 1 &&
           n == DIGEST_SIZE;
}

static void
hex_digest(char *out, const unsigned char *digest)
{
    for (int j = 0; j < DIGEST_SIZE; j++) {
        out[2 * j] = HEX[digest[j] >> 4];
        out[2 * j + 1] = HEX[digest[j] & 0xF];
    }
}

static void
work_free(Work *w)
{
    EVP_MD_CTX_free(w->md);
    EVP_CIPHER_CTX_free(w->cx);
    PyMem_RawFree(w->plain.data);
    PyMem_RawFree(w->fields.data);
    PyMem_RawFree(w->aad.data);
    PyMem_RawFree(w->sealed.data);
}

/* The lines of a prefix of the chunk, one after the other in ``out``; ``ends[i]`` is where
 * line ``i`` ends and ``digests`` holds the leaf hashes. ``*written`` lines were made. With
 * ``digests`` NULL, the bodies alone (no prefix, no seq, no hash), every one of them. */
static Outcome
write_lines(const Encoder *self, const Chunk *c, const char *prev_in, long long seq,
            Py_ssize_t room, Buf *out, Py_ssize_t *ends, unsigned char *digests,
            Py_ssize_t *written)
{
    char prev[PREV_SIZE];
    Py_ssize_t size = 0;
    Outcome outcome = DONE;
    Work w = {EVP_MD_CTX_new(), EVP_CIPHER_CTX_new()};
    *written = 0;
    if (w.md == NULL || w.cx == NULL) {
        outcome = NO_MEMORY;
        goto done;
    }
    if (digests == NULL) {
        for (Py_ssize_t i = 0; i < c->count; i++) {
            if ((outcome = write_body(out, self, &c->rows[i], &w)) != DONE) {
                goto done;
            }
            ends[i] = out->len;
            *written = i + 1;
        }
        goto done;
    }
    memcpy(prev, prev_in, PREV_SIZE);
    for (Py_ssize_t i = 0; i < c->count && size < room; i++) {
        Py_ssize_t start = out->len;
        if (seq == LLONG_MAX) {
            outcome = TOO_LARGE;
            goto done;
        }
        if (BUF_LITERAL(out, "{\"prev\":\"") < 0 || buf_put(out, prev, PREV_SIZE) < 0) {
            outcome = NO_MEMORY;
            goto done;
        }
        if ((outcome = write_body(out, self, &c->rows[i], &w)) != DONE) {
            goto done;
        }
        if (buf_int(out, seq) < 0 || BUF_LITERAL(out, "}") < 0) {
            outcome = NO_MEMORY;
            goto done;
        }
        unsigned char *digest = digests + i * DIGEST_SIZE;
        if (!leaf_hash(w.md, self->sha256, self->leaf_format,
                       (const unsigned char *)out->data + start, (size_t)(out->len - start),
                       digest)) {
            outcome = OPENSSL;
            goto done;
        }
        hex_digest(prev, digest);
        ends[i] = out->len;
        size += out->len - start + 1;
        seq++;
        *written = i + 1;
    }
done:
    work_free(&w);
    return outcome;
}

/* -- phase three, with the GIL: the lines and hashes as Python objects --------------------- */

static PyObject *
results(const Buf *out, const Py_ssize_t *ends, const unsigned char *digests, Py_ssize_t count)
{
    PyObject *lines = PyList_New(count), *hashes = digests ? PyList_New(count) : NULL;
    if (lines == NULL || (digests && hashes == NULL)) {
        goto fail;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t start = i ? ends[i - 1] : 0;
        PyObject *line = PyBytes_FromStringAndSize(out->data + start, ends[i] - start);
        if (line == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(lines, i, line);
        size += ends[i] - start + 1;
        if (digests == NULL) {
            continue;
        }
        PyObject *hash =
            PyBytes_FromStringAndSize((const char *)digests + i * DIGEST_SIZE, DIGEST_SIZE);
        if (hash == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(hashes, i, hash);
    }
    if (digests == NULL) {
        return lines;
    }
    return Py_BuildValue("(NNn)", lines, hashes, size);
fail:
    Py_XDECREF(lines);
    Py_XDECREF(hashes);
    return NULL;
}

/* What encode() and bodies() share: read the records, write (and, for lines, hash) them
 * without the GIL, and return the lines, hashes and size, or (``prev`` NULL) the bodies. */
static PyObject *
encode_chunk(Encoder *self, PyObject *records, long long seq, const char *prev, Py_ssize_t room,
             PyObject *seals, PyObject *nonces, PyObject *refs)
{
    if (!self->ready) {
        PyErr_SetString(PyExc_TypeError, "the Encoder was not configured");
        return NULL;
    }
    if (seals != Py_None && !PyDict_Check(seals)) {
        PyErr_SetString(PyExc_TypeError, "seals must be a dict or None");
        return NULL;
    }
    PyObject *result = NULL, *fast_nonces = NULL, *fast_refs = NULL;
    PyObject *fast = PySequence_Fast(records, "records must be a sequence");
    Chunk c = {0};
    Buf out = {0};
    Py_ssize_t *ends = NULL, written = 0;
    unsigned char *digests = NULL;
    char prev_copy[PREV_SIZE];
    if (fast == NULL) {
        return NULL;
    }
    if (seals != Py_None &&
        (fast_nonces = PySequence_Fast(nonces, "nonces must be a sequence")) == NULL) {
        goto done;
    }
    if (seals != Py_None && refs != Py_None &&
        (fast_refs = PySequence_Fast(refs, "refs must be a sequence")) == NULL) {
        goto done;
    }
    if (gather(self, &c, fast, seals, fast_nonces, fast_refs) < 0) {
        goto done;
    }
    ends = PyMem_RawMalloc((size_t)(c.count ? c.count : 1) * sizeof(Py_ssize_t));
    if (prev != NULL) {
        digests = PyMem_RawMalloc((size_t)(c.count ? c.count : 1) * DIGEST_SIZE);
    }
    if (ends == NULL || (prev != NULL && digests == NULL)) {
        PyErr_NoMemory();
        goto done;
    }
    if (prev != NULL) {
        memcpy(prev_copy, prev, PREV_SIZE); /* the bytes object is not read without the GIL */
    }
    Outcome outcome;
    Py_BEGIN_ALLOW_THREADS
    outcome = write_lines(self, &c, prev ? prev_copy : NULL, seq, room, &out, ends, digests,
                          &written);
    Py_END_ALLOW_THREADS
    switch (outcome) {
    case DONE:
        result = results(&out, ends, digests, written);
        break;
    case NO_MEMORY:
        PyErr_NoMemory();
        break;
    case TOO_LARGE:
        PyErr_SetString(PyExc_OverflowError, "a record or sequence number too large to encode");
        break;
    case OPENSSL:
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL failed to hash or seal a line");
        break;
    }
done:
    chunk_free(&c);
    PyMem_RawFree(out.data);
    PyMem_RawFree(ends);
    PyMem_RawFree(digests);
    Py_XDECREF(fast_nonces);
    Py_XDECREF(fast_refs);
    Py_DECREF(fast);
    return result;
}

PyDoc_STRVAR(Encoder_encode_doc,
"encode(records, seq, prev, room, seals, nonces, refs=None) -> (lines, hashes, size)\n\n"
"The lines for seq, seq + 1, ... of a prefix of ``records``, chained from ``prev`` (64 hex\n"
"digits), stopping after the line that brings the total size (newlines included) to\n"
"``room`` or more. ``seals`` is None (personal fields in clear) or maps each owner to a\n"
"tuple that starts with (key, ref, key number or None); ``nonces`` then holds a 12-byte\n"
"nonce for each record, by position, and ``refs``, if given, the bytes each sealed line\n"
"names its key by (else the seal's ref). The records are read with the GIL held; the lines\n"
"are written, sealed and hashed without it.");

static PyObject *
Encoder_encode(Encoder *self, PyObject *args)
{
    PyObject *records, *seals, *nonces, *refs = Py_None;
    long long seq;
    const char *prev;
    Py_ssize_t prev_len, room;
    if (!PyArg_ParseTuple(args, "OLy#nOO|O", &records, &seq, &prev, &prev_len, &room, &seals,
                          &nonces, &refs)) {
        return NULL;
    }
    if (prev_len != PREV_SIZE) {
        PyErr_SetString(PyExc_ValueError, "prev must be 64 hex digits");
        return NULL;
    }
    return encode_chunk(self, records, seq, prev, room, seals, nonces, refs);
}

PyDoc_STRVAR(Encoder_bodies_doc,
"bodies(records, seals, nonces, refs=None) -> list of bytes\n\n"
"Each record's line between its ``prev`` hex digits and its ``seq`` digits, as encode()\n"
"writes it (the same arguments), for every record; no line is hashed.");

static PyObject *
Encoder_bodies(Encoder *self, PyObject *args)
{
    PyObject *records, *seals, *nonces, *refs = Py_None;
    if (!PyArg_ParseTuple(args, "OOO|O", &records, &seals, &nonces, &refs)) {
        return NULL;
    }
    return encode_chunk(self, records, 0, NULL, PY_SSIZE_T_MAX, seals, nonces, refs);
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)Encoder_encode, METH_VARARGS, Encoder_encode_doc},
    {"bodies", (PyCFunction)Encoder_bodies, METH_VARARGS, Encoder_bodies_doc},
    {NULL, NULL, 0, NULL},
};

/* -- chain: bodies made earlier, made lines ------------------------------------------------ */

static EVP_MD *chain_sha256; /* fetched once, when the module is loaded */

#define LINE_HEAD "{\"prev\":\""
#define LINE_HEAD_SIZE ((Py_ssize_t)(sizeof(LINE_HEAD) - 1))

/* How many digits str(v) has, the sign included. */
static Py_ssize_t
int_digits(long long v)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    Py_ssize_t n = v < 0 ? 2 : 1;
    while (u >= 10) {
        u /= 10;
        n++;
    }
    return n;
}

/* One line of chain(): its body and where its line and leaf hash go (bytes objects made with
 * the GIL, not yet seen by any other code, and filled without it). */
typedef struct {
    const char *body;
    Py_ssize_t body_len;
    char *line;
    Py_ssize_t line_len;
    unsigned char *digest;
} Link;

/* Write and hash the lines of ``links`` in order, each chained to the one before. */
static int
write_links(Link *links, Py_ssize_t count, const char *prev_in, long long seq, int leaf_format)
{
    char prev[PREV_SIZE];
    int ok = 1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL) {
        return 0;
    }
    memcpy(prev, prev_in, PREV_SIZE);
    for (Py_ssize_t i = 0; i < count && ok; i++) {
        Link *link = &links[i];
        long long number = seq + i; /* chain() checked that it does not overflow */
        char *out = link->line;
        memcpy(out, LINE_HEAD, (size_t)LINE_HEAD_SIZE);
        out += LINE_HEAD_SIZE;
        memcpy(out, prev, PREV_SIZE);
        out += PREV_SIZE;
        memcpy(out, link->body, (size_t)link->body_len);
        out += link->body_len;
        /* the digits of seq, from the right, then the closing brace */
        char *end = link->line + link->line_len - 1;
        *end = '}';
        unsigned long long u =
            number < 0 ? 0ULL - (unsigned long long)number : (unsigned long long)number;
        char *p = end;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (number < 0) {
            *--p = '-';
        }
        ok = leaf_hash(md, chain_sha256, leaf_format, (const unsigned char *)link->line,
                       (size_t)link->line_len, link->digest);
        hex_digest(prev, link->digest);
    }
    EVP_MD_CTX_free(md);
    return ok;
}

PyDoc_STRVAR(chain_doc,
"chain(bodies, seq, prev, room, leaf_format=1) -> (lines, hashes, size)\n\n"
"The lines of a prefix of ``bodies`` (bytes, as Encoder.bodies makes them) for seq,\n"
"seq + 1, ..., chained from ``prev`` (64 hex digits) by their leaf hashes in\n"
"``leaf_format``, stopping after the line that brings the total size (newlines included)\n"
"to ``room`` or more. The lines are written and hashed without the GIL.");

static PyObject *
lines_chain(PyObject *module, PyObject *args)
{
    PyObject *bodies;
    long long seq;
    const char *prev;
    Py_ssize_t prev_len, room;
    int leaf_format = 1;
    (void)module;
    if (!PyArg_ParseTuple(args, "OLy#n|i", &bodies, &seq, &prev, &prev_len, &room,
                          &leaf_format)) {
        return NULL;
    }
    if (prev_len != PREV_SIZE) {
        PyErr_SetString(PyExc_ValueError, "prev must be 64 hex digits");
        return NULL;
    }
    if (leaf_format != 1 && leaf_format != 2) {
        PyErr_Format(PyExc_ValueError, "unknown leaf format %d", leaf_format);
        return NULL;
    }
    /* a tuple of its own: the bodies stay put while the GIL is released */
    PyObject *held = PySequence_Tuple(bodies);
    if (held == NULL) {
        return NULL;
    }
    Py_ssize_t total = PyTuple_GET_SIZE(held), count = 0, size = 0;
    PyObject *result = NULL, *lines = NULL, *hashes = NULL;
    char prev_copy[PREV_SIZE];
    Link *links = PyMem_Malloc((size_t)(total ? total : 1) * sizeof(Link));
    if (links == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* the lines' lengths first: they decide how many fit in ``room`` */
    while (count < total) {
        PyObject *body = PyTuple_GET_ITEM(held, count);
        if (!PyBytes_Check(body)) {
            PyErr_Format(PyExc_TypeError, "a body must be bytes, not %.100s",
                         Py_TYPE(body)->tp_name);
            goto done;
        }
        if (seq > LLONG_MAX - count) {
            PyErr_SetString(PyExc_OverflowError, "a sequence number too large to encode");
            goto done;
        }
        Link *link = &links[count];
        link->body = PyBytes_AS_STRING(body);
        link->body_len = PyBytes_GET_SIZE(body);
        link->line_len = LINE_HEAD_SIZE + PREV_SIZE + link->body_len +
                         int_digits(seq + count) + 1;
        size += link->line_len + 1;
        count++;
        if (size >= room) {
            break;
        }
    }
    lines = PyList_New(count);
    hashes = PyList_New(count);
    if (lines == NULL || hashes == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyBytes_FromStringAndSize(NULL, links[i].line_len);
        if (line == NULL) {
            goto done;
        }
        PyList_SET_ITEM(lines, i, line);
        PyObject *hash = PyBytes_FromStringAndSize(NULL, DIGEST_SIZE);
        if (hash == NULL) {
            goto done;
        }
        PyList_SET_ITEM(hashes, i, hash);
        links[i].line = PyBytes_AS_STRING(line);
        links[i].digest = (unsigned char *)PyBytes_AS_STRING(hash);
    }
    memcpy(prev_copy, prev, PREV_SIZE);
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = write_links(links, count, prev_copy, seq, leaf_format);
    Py_END_ALLOW_THREADS
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL failed to hash a line");
        goto done;
    }
    result = Py_BuildValue("(OOn)", lines, hashes, size);
done:
    Py_XDECREF(lines);
    Py_XDECREF(hashes);
    PyMem_Free(links);
    Py_DECREF(held);
    return result;
}

/* -- record references: HMAC-SHA256 of record ids under their owners' reference keys ------- */

#define HMAC_BLOCK 64
#define RECORD_REF_PREFIX "rr:"
#define RECORD_REF_SIZE ((Py_ssize_t)(sizeof(RECORD_REF_PREFIX) - 1) + 32)

/* SHA-256 after the inner and after the outer padded key of one owner (RFC 2104), and its
 * key reference as str, made once per call for each owner. */
typedef struct {
    EVP_MD_CTX *inner, *outer;
    PyObject *owner_ref;
} Mac;

static int
mac_init(Mac *mac, const unsigned char *key, Py_ssize_t len)
{
    unsigned char pad[HMAC_BLOCK];
    int ok = 1;
    mac->inner = EVP_MD_CTX_new();
    mac->outer = EVP_MD_CTX_new();
    if (mac->inner == NULL || mac->outer == NULL) {
        return 0;
    }
    for (int round = 0; round < 2 && ok; round++) {
        unsigned char with = round ? 0x5C : 0x36;
        for (Py_ssize_t i = 0; i < HMAC_BLOCK; i++) {
            pad[i] = (unsigned char)((i < len ? key[i] : 0) ^ with);
        }
        EVP_MD_CTX *ctx = round ? mac->outer : mac->inner;
        ok = EVP_DigestInit_ex(ctx, chain_sha256, NULL) == 1 &&
             EVP_DigestUpdate(ctx, pad, HMAC_BLOCK) == 1;
    }
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok;
}

/* "rr:" and the hex of the first 16 bytes of HMAC-SHA256(id) into ``out``. */
static int
mac_ref(const Mac *mac, EVP_MD_CTX *work, const char *id, Py_ssize_t id_len, char *out)
{
    unsigned char digest[DIGEST_SIZE];
    unsigned int n = 0;
    if (EVP_MD_CTX_copy_ex(work, mac->inner) != 1 ||
        EVP_DigestUpdate(work, id, (size_t)id_len) != 1 ||
        EVP_DigestFinal_ex(work, digest, &n) != 1 || EVP_MD_CTX_copy_ex(work, mac->outer) != 1 ||
        EVP_DigestUpdate(work, digest, DIGEST_SIZE) != 1 ||
        EVP_DigestFinal_ex(work, digest, &n) != 1) {
        return 0;
    }
    memcpy(out, RECORD_REF_PREFIX, sizeof(RECORD_REF_PREFIX) - 1);
    out += sizeof(RECORD_REF_PREFIX) - 1;
    for (int j = 0; j < 16; j++) {
        out[2 * j] = HEX[digest[j] >> 4];
        out[2 * j + 1] = HEX[digest[j] & 0xF];
    }
    return 1;
}

/* The Mac of ``owner`` (with ``seal``'s reference key and owner reference), made on first
 * use; ``macs`` maps each owner seen to its position in ``*table``. */
static Mac *
owner_mac(PyObject *macs, Mac **table, Py_ssize_t *count, PyObject *owner, PyObject *seal,
          PyObject *key)
{
    PyObject *at = PyDict_GetItemWithError(macs, owner); /* borrowed */
    if (at != NULL) {
        return &(*table)[PyLong_AsSsize_t(at)];
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *owner_ref = PyTuple_GET_ITEM(seal, 1);
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) > HMAC_BLOCK || !PyBytes_Check(owner_ref)) {
        PyErr_SetString(PyExc_TypeError,
                        "a seal's reference key is bytes of at most 64, its ref bytes");
        return NULL;
    }
    Mac *grown = PyMem_Realloc(*table, (size_t)(*count + 1) * sizeof(Mac));
    if (grown == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *table = grown;
    Mac *mac = &grown[*count];
    *mac = (Mac){NULL, NULL, NULL};
    (*count)++;
    mac->owner_ref = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(owner_ref),
                                          PyBytes_GET_SIZE(owner_ref), NULL);
    if (mac->owner_ref == NULL) {
        return NULL;
    }
    if (!mac_init(mac, (const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL failed to set up an HMAC");
        return NULL;
    }
    PyObject *position = PyLong_FromSsize_t(*count - 1);
    int failed = position == NULL || PyDict_SetItem(macs, owner, position) < 0;
    Py_XDECREF(position);
    return failed ? NULL : mac;
}

PyDoc_STRVAR(record_refs_doc,
"record_refs(owners_and_ids, seals) -> (refs, index)\n\n"
"What Sealer.record_refs computes (see kzai_guard.audit.shredding): for each (owner, record\n"
"id) pair, the bytes its line names its key by: b'' for no owner, the seal's ref where the\n"
"seal has no reference key, else 'rr:' and the hex of the first 16 bytes of\n"
"HMAC-SHA256(reference key, id). ``index`` holds (record reference, owner's ref) as str\n"
"for each of the last kind.");

static PyObject *
lines_record_refs(PyObject *module, PyObject *args)
{
    PyObject *pairs, *seals;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO!", &pairs, &PyDict_Type, &seals)) {
        return NULL;
    }
    PyObject *fast = PySequence_Fast(pairs, "owners_and_ids must be iterable");
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast), nmacs = 0;
    PyObject *result = NULL, *refs = PyList_New(n), *index = PyList_New(0), *macs = PyDict_New();
    Mac *table = NULL;
    EVP_MD_CTX *work = EVP_MD_CTX_new();
    if (refs == NULL || index == NULL || macs == NULL) {
        goto done;
    }
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "owners_and_ids holds (owner, id) pairs");
            goto done;
        }
        PyObject *owner = PyTuple_GET_ITEM(pair, 0), *id = PyTuple_GET_ITEM(pair, 1);
        if (owner == Py_None) {
            PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
            if (empty == NULL) {
                goto done;
            }
            PyList_SET_ITEM(refs, i, empty);
            continue;
        }
        PyObject *seal = PyDict_GetItemWithError(seals, owner); /* borrowed */
        if (seal == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, owner);
            }
            goto done;
        }
        if (!PyTuple_Check(seal) || PyTuple_GET_SIZE(seal) < 5) {
            PyErr_SetString(PyExc_TypeError, "a seal is (key, ref, number, encrypt, ref key)");
            goto done;
        }
        PyObject *key = PyTuple_GET_ITEM(seal, 4);
        if (key == Py_None) {
            PyList_SET_ITEM(refs, i, Py_NewRef(PyTuple_GET_ITEM(seal, 1)));
            continue;
        }
        if (!PyUnicode_Check(id)) {
            PyErr_SetString(PyExc_TypeError, "a record id must be str");
            goto done;
        }
        Py_ssize_t id_len;
        const char *text = PyUnicode_AsUTF8AndSize(id, &id_len); /* lone surrogates raise */
        Mac *mac = text == NULL ? NULL : owner_mac(macs, &table, &nmacs, owner, seal, key);
        if (mac == NULL) {
            goto done;
        }
        PyObject *ref = PyBytes_FromStringAndSize(NULL, RECORD_REF_SIZE);
        if (ref == NULL) {
            goto done;
        }
        PyList_SET_ITEM(refs, i, ref);
        if (!mac_ref(mac, work, text, id_len, PyBytes_AS_STRING(ref))) {
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL failed to compute an HMAC");
            goto done;
        }
        PyObject *ref_text = PyUnicode_DecodeASCII(PyBytes_AS_STRING(ref), RECORD_REF_SIZE, NULL);
        PyObject *entry = ref_text == NULL ? NULL : PyTuple_Pack(2, ref_text, mac->owner_ref);
        Py_XDECREF(ref_text);
        int failed = entry == NULL || PyList_Append(index, entry) < 0;
        Py_XDECREF(entry);
        if (failed) {
            goto done;
        }
    }
    result = PyTuple_Pack(2, refs, index);
done:
    for (Py_ssize_t i = 0; i < nmacs; i++) {
        EVP_MD_CTX_free(table[i].inner);
        EVP_MD_CTX_free(table[i].outer);
        Py_XDECREF(table[i].owner_ref);
    }
    PyMem_Free(table);
    EVP_MD_CTX_free(work);
    Py_XDECREF(refs);
    Py_XDECREF(index);
    Py_XDECREF(macs);
    Py_DECREF(fast);
    return result;
}

static PyMethodDef module_methods[] = {
    {"chain", (PyCFunction)lines_chain, METH_VARARGS, chain_doc},
    {"record_refs", (PyCFunction)lines_record_refs, METH_VARARGS, record_refs_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Encoder_doc,
"Encoder(all_names, open_names, aad_prefix, sealed_names=('subject', 'reviewer', 'detail'))\n\n"
"Encodes audit records into chained, canonical log lines (see kzai_guard.audit.lines).\n"
"``all_names`` and ``open_names`` are the record's member names, sorted; ``open_names``\n"
"leaves out the sealed ones, which are sealed, in the order of ``sealed_names``, under\n"
"``aad_prefix`` + id + newline + ref.");

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kzai_guard.audit._lines.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Encoder_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef lines_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kzai_guard.audit._lines",
    .m_doc = "The audit log's line encoder in C (see kzai_guard.audit.lines).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    if (PyType_Ready(&EncoderType) < 0) {
        return NULL;
    }
    if (chain_sha256 == NULL) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        chain_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
        chain_sha256 = (EVP_MD *)EVP_sha256();
#endif
        if (chain_sha256 == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL has no SHA-256");
            return NULL;
        }
    }
    PyObject *module = PyModule_Create(&lines_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
