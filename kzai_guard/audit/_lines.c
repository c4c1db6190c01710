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
    if (EVP_EncryptInit_ex(w->cx, self->gcm, NULL, row->key, row->nonce) != 1 ||
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

/* The lines of a prefix of the chunk, one after the other in ``out``; ``ends[i]`` is where
 * line ``i`` ends and ``digests`` holds the leaf hashes. ``*written`` lines were made. */
static Outcome
write_lines(const Encoder *self, const Chunk *c, const char *prev_in, long long seq,
            Py_ssize_t room, Buf *out, Py_ssize_t *ends, unsigned char *digests,
            Py_ssize_t *written)
{
    static const unsigned char zero = 0;
    char prev[PREV_SIZE];
    Py_ssize_t size = 0;
    Outcome outcome = DONE;
    Work w = {EVP_MD_CTX_new(), EVP_CIPHER_CTX_new()};
    memcpy(prev, prev_in, PREV_SIZE);
    *written = 0;
    if (w.md == NULL || w.cx == NULL) {
        outcome = NO_MEMORY;
        goto done;
    }
    for (Py_ssize_t i = 0; i < c->count && size < room; i++) {
        const Row *row = &c->rows[i];
        Py_ssize_t start = out->len;
        if (seq == LLONG_MAX) {
            outcome = TOO_LARGE;
            goto done;
        }
        if (BUF_LITERAL(out, "{\"prev\":\"") < 0 || buf_put(out, prev, PREV_SIZE) < 0 ||
            BUF_LITERAL(out, "\",\"rec\":") < 0) {
            outcome = NO_MEMORY;
            goto done;
        }
        if (row->sealed) {
            if (write_members(out, self, row, self->open, self->nopen) < 0) {
                outcome = NO_MEMORY;
                goto done;
            }
            if ((outcome = write_seal(out, self, row, &w)) != DONE) {
                goto done;
            }
        }
        else if (write_members(out, self, row, NULL, PyTuple_GET_SIZE(self->all_names)) < 0) {
            outcome = NO_MEMORY;
            goto done;
        }
        if (BUF_LITERAL(out, ",\"seq\":") < 0 || buf_int(out, seq) < 0 ||
            BUF_LITERAL(out, "}") < 0) {
            outcome = NO_MEMORY;
            goto done;
        }
        unsigned char *digest = digests + i * DIGEST_SIZE;
        unsigned char commitment[DIGEST_SIZE];
        const unsigned char *entry = (const unsigned char *)out->data + start;
        size_t entry_len = (size_t)(out->len - start);
        unsigned int n = 0;
        if (self->leaf_format == 2) {
            /* format 2: the tree's entry is the line's commitment SHA-256(line) */
            if (EVP_DigestInit_ex(w.md, self->sha256, NULL) != 1 ||
                EVP_DigestUpdate(w.md, entry, entry_len) != 1 ||
                EVP_DigestFinal_ex(w.md, commitment, &n) != 1 || n != DIGEST_SIZE) {
                outcome = OPENSSL;
                goto done;
            }
            entry = commitment;
            entry_len = DIGEST_SIZE;
        }
        if (EVP_DigestInit_ex(w.md, self->sha256, NULL) != 1 ||
            EVP_DigestUpdate(w.md, &zero, 1) != 1 || EVP_DigestUpdate(w.md, entry, entry_len) != 1 ||
            EVP_DigestFinal_ex(w.md, digest, &n) != 1 || n != DIGEST_SIZE) {
            outcome = OPENSSL;
            goto done;
        }
        for (int j = 0; j < DIGEST_SIZE; j++) {
            prev[2 * j] = HEX[digest[j] >> 4];
            prev[2 * j + 1] = HEX[digest[j] & 0xF];
        }
        ends[i] = out->len;
        size += out->len - start + 1;
        seq++;
        *written = i + 1;
    }
done:
    EVP_MD_CTX_free(w.md);
    EVP_CIPHER_CTX_free(w.cx);
    PyMem_RawFree(w.plain.data);
    PyMem_RawFree(w.fields.data);
    PyMem_RawFree(w.aad.data);
    PyMem_RawFree(w.sealed.data);
    return outcome;
}

/* -- phase three, with the GIL: the lines and hashes as Python objects --------------------- */

static PyObject *
results(const Buf *out, const Py_ssize_t *ends, const unsigned char *digests, Py_ssize_t count)
{
    PyObject *lines = PyList_New(count), *hashes = PyList_New(count);
    if (lines == NULL || hashes == NULL) {
        goto fail;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t start = i ? ends[i - 1] : 0;
        PyObject *line = PyBytes_FromStringAndSize(out->data + start, ends[i] - start);
        PyObject *hash =
            PyBytes_FromStringAndSize((const char *)digests + i * DIGEST_SIZE, DIGEST_SIZE);
        if (line == NULL || hash == NULL) {
            Py_XDECREF(line);
            Py_XDECREF(hash);
            goto fail;
        }
        PyList_SET_ITEM(lines, i, line);
        PyList_SET_ITEM(hashes, i, hash);
        size += ends[i] - start + 1;
    }
    return Py_BuildValue("(NNn)", lines, hashes, size);
fail:
    Py_XDECREF(lines);
    Py_XDECREF(hashes);
    return NULL;
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
    if (!self->ready) {
        PyErr_SetString(PyExc_TypeError, "the Encoder was not configured");
        return NULL;
    }
    if (prev_len != PREV_SIZE) {
        PyErr_SetString(PyExc_ValueError, "prev must be 64 hex digits");
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
    digests = PyMem_RawMalloc((size_t)(c.count ? c.count : 1) * DIGEST_SIZE);
    if (ends == NULL || digests == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(prev_copy, prev, PREV_SIZE); /* the bytes object is not read without the GIL */
    Outcome outcome;
    Py_BEGIN_ALLOW_THREADS
    outcome = write_lines(self, &c, prev_copy, seq, room, &out, ends, digests, &written);
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

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)Encoder_encode, METH_VARARGS, Encoder_encode_doc},
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
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    if (PyType_Ready(&EncoderType) < 0) {
        return NULL;
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
