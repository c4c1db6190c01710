/*
 * The audit log's line encoder in C: the same bytes as kzai_guard/audit/lines.py, faster.
 *
 * A line is the RFC 8785 canonical JSON of {"prev", "rec", "sealed"?, "seq"}; its leaf hash is
 * SHA-256(0x00 || line) and chains to the next line's "prev". Per record this writes "rec"
 * (the record's members in sorted order, None left out), seals the personal fields with
 * AES-256-GCM under the owner's key, and hashes the line, all without a Python call.
 *
 * It handles exactly what the Python encoder's fast path handles: members that are str (or a
 * str subclass such as a StrEnum member), int (not bool) or None, and text that is valid
 * UTF-8. Anything else raises TypeError, ValueError or OverflowError, and lines.py then
 * encodes the chunk in Python, which owns every other case (lone surrogates, other types).
 * The test suite checks that both give the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#define NONCE_SIZE 12
#define TAG_SIZE 16
#define KEY_SIZE 32
#define DIGEST_SIZE 32
#define PREV_SIZE 64

/* -- a growable byte buffer ---------------------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (extra > PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
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
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
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
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
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

static int
buf_int(Buf *b, long long v)
{
    char tmp[32];
    int n = PyOS_snprintf(tmp, sizeof(tmp), "%lld", v);
    return buf_put(b, tmp, n);
}

static int
buf_hex(Buf *b, const unsigned char *d, Py_ssize_t n)
{
    if (buf_reserve(b, n * 2) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        *out++ = HEX[d[i] >> 4];
        *out++ = HEX[d[i] & 0xF];
    }
    b->len += n * 2;
    return 0;
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

/* -- values -------------------------------------------------------------------------------- */

/* One member value: 1 written, 0 None (nothing written), -1 error. */
static int
buf_value(Buf *b, PyObject *value)
{
    if (value == Py_None) {
        return 0;
    }
    if (PyUnicode_Check(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        if (s == NULL) {
            return -1; /* a lone surrogate: UnicodeEncodeError, a ValueError */
        }
        return buf_json_string(b, s, n) < 0 ? -1 : 1;
    }
    if (PyLong_Check(value) && !PyBool_Check(value)) {
        long long v = PyLong_AsLongLong(value);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        return buf_int(b, v) < 0 ? -1 : 1;
    }
    PyErr_Format(PyExc_TypeError, "audit record member of type %.100s",
                 Py_TYPE(value)->tp_name);
    return -1;
}

/* -- the encoder --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *all_names;  /* tuple of str: every member, sorted */
    PyObject *open_names; /* tuple of str: the members that are not personal, sorted */
    PyObject *keys_all;   /* tuple of bytes: '"name":' for each of all_names */
    PyObject *keys_open;  /* tuple of bytes: the same for open_names */
    PyObject *aad_prefix; /* bytes */
    PyObject *s_id, *s_subject, *s_reviewer, *s_detail;
    EVP_MD *sha256;
    EVP_CIPHER *gcm;
    EVP_MD_CTX *md;
    EVP_CIPHER_CTX *cx;
    Buf line, rec, plain, aad;
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
            PyMem_Free(b.data);
            Py_DECREF(out);
            return NULL;
        }
        PyObject *key = PyBytes_FromStringAndSize(b.data, b.len);
        PyMem_Free(b.data);
        if (key == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, key);
    }
    return out;
}

static int
Encoder_init(Encoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"all_names", "open_names", "aad_prefix", NULL};
    PyObject *all_names, *open_names, *aad_prefix;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!S", kwlist, &PyTuple_Type, &all_names,
                                     &PyTuple_Type, &open_names, &aad_prefix)) {
        return -1;
    }
    Py_XSETREF(self->keys_all, member_keys(all_names));
    Py_XSETREF(self->keys_open, member_keys(open_names));
    if (self->keys_all == NULL || self->keys_open == NULL) {
        return -1;
    }
    Py_XSETREF(self->all_names, Py_NewRef(all_names));
    Py_XSETREF(self->open_names, Py_NewRef(open_names));
    Py_XSETREF(self->aad_prefix, Py_NewRef(aad_prefix));
    if (self->s_id == NULL) {
        self->s_id = PyUnicode_InternFromString("id");
        self->s_subject = PyUnicode_InternFromString("subject");
        self->s_reviewer = PyUnicode_InternFromString("reviewer");
        self->s_detail = PyUnicode_InternFromString("detail");
        if (!self->s_id || !self->s_subject || !self->s_reviewer || !self->s_detail) {
            return -1;
        }
    }
    if (self->md == NULL) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        self->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        self->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
#else
        self->sha256 = (EVP_MD *)EVP_sha256();
        self->gcm = (EVP_CIPHER *)EVP_aes_256_gcm();
#endif
        self->md = EVP_MD_CTX_new();
        self->cx = EVP_CIPHER_CTX_new();
        if (!self->sha256 || !self->gcm || !self->md || !self->cx) {
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL has no SHA-256 or AES-256-GCM");
            return -1;
        }
    }
    return 0;
}

static void
Encoder_dealloc(Encoder *self)
{
    Py_XDECREF(self->all_names);
    Py_XDECREF(self->open_names);
    Py_XDECREF(self->keys_all);
    Py_XDECREF(self->keys_open);
    Py_XDECREF(self->aad_prefix);
    Py_XDECREF(self->s_id);
    Py_XDECREF(self->s_subject);
    Py_XDECREF(self->s_reviewer);
    Py_XDECREF(self->s_detail);
    if (self->md) {
        EVP_MD_CTX_free(self->md);
    }
    if (self->cx) {
        EVP_CIPHER_CTX_free(self->cx);
    }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free(self->sha256);
    EVP_CIPHER_free(self->gcm);
#endif
    PyMem_Free(self->line.data);
    PyMem_Free(self->rec.data);
    PyMem_Free(self->plain.data);
    PyMem_Free(self->aad.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The members of `record` named in `names` as a JSON object into `b`, None left out. */
static int
write_members(Buf *b, PyObject *record, PyObject *names, PyObject *keys)
{
    int first = 1;
    if (BUF_LITERAL(b, "{") < 0) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyObject_GetAttr(record, PyTuple_GET_ITEM(names, i));
        if (value == NULL) {
            return -1;
        }
        if (value == Py_None) {
            Py_DECREF(value);
            continue;
        }
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        if ((!first && BUF_LITERAL(b, ",") < 0) ||
            buf_put(b, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) < 0) {
            Py_DECREF(value);
            return -1;
        }
        int written = buf_value(b, value);
        Py_DECREF(value);
        if (written < 0) {
            return -1;
        }
        first = 0;
    }
    return BUF_LITERAL(b, "}");
}

/* The personal fields present, as {"subject":..,"reviewer":..,"detail":..} in that order, and
 * their names joined by commas. */
static int
write_personal(Buf *b, Buf *fields, PyObject *subject, PyObject *reviewer, PyObject *detail)
{
    static const char *names[] = {"subject", "reviewer", "detail"};
    PyObject *values[] = {subject, reviewer, detail};
    int first = 1;
    if (BUF_LITERAL(b, "{") < 0) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (values[i] == Py_None) {
            continue;
        }
        const char *sep = first ? "" : ",";
        if (buf_put(b, sep, first ? 0 : 1) < 0 || buf_put(fields, sep, first ? 0 : 1) < 0 ||
            BUF_LITERAL(b, "\"") < 0 || buf_put(b, names[i], (Py_ssize_t)strlen(names[i])) < 0 ||
            BUF_LITERAL(b, "\":") < 0 ||
            buf_put(fields, names[i], (Py_ssize_t)strlen(names[i])) < 0 ||
            buf_value(b, values[i]) < 0) {
            return -1;
        }
        first = 0;
    }
    return BUF_LITERAL(b, "}");
}

static int
openssl_error(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "OpenSSL failed to %s", what);
    return -1;
}

/* AES-256-GCM of `plain` under `key` and `nonce` with associated data `aad`, written into `b`
 * as base64(nonce || ciphertext || tag). */
static int
write_sealed(Encoder *self, Buf *b, const unsigned char *key, const unsigned char *nonce,
             const Buf *aad, const Buf *plain)
{
    unsigned char small[NONCE_SIZE + 512 + TAG_SIZE];
    unsigned char *raw = small;
    Py_ssize_t size = NONCE_SIZE + plain->len + TAG_SIZE;
    int outl = 0, finl = 0, rc = -1;
    if (plain->len > INT_MAX - NONCE_SIZE - TAG_SIZE || aad->len > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "sealed fields too large");
        return -1;
    }
    if (size > (Py_ssize_t)sizeof(small)) {
        raw = PyMem_Malloc((size_t)size);
        if (raw == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    memcpy(raw, nonce, NONCE_SIZE);
    if (EVP_EncryptInit_ex(self->cx, self->gcm, NULL, key, nonce) != 1 ||
        EVP_EncryptUpdate(self->cx, NULL, &outl, (const unsigned char *)aad->data,
                          (int)aad->len) != 1 ||
        EVP_EncryptUpdate(self->cx, raw + NONCE_SIZE, &outl,
                          (const unsigned char *)plain->data, (int)plain->len) != 1 ||
        EVP_EncryptFinal_ex(self->cx, raw + NONCE_SIZE + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(self->cx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE,
                            raw + NONCE_SIZE + outl + finl) != 1) {
        openssl_error("seal the personal fields");
        goto done;
    }
    rc = buf_b64(b, raw, NONCE_SIZE + outl + finl + TAG_SIZE);
done:
    if (raw != small) {
        PyMem_Free(raw);
    }
    return rc;
}

/* The "sealed" member's value for one record, or 0 after writing nothing when the record has
 * no owner (neither subject nor reviewer); -1 on error. */
static int
write_seal(Encoder *self, Buf *line, PyObject *record, PyObject *seals, PyObject *nonce,
           PyObject *subject, PyObject *reviewer, PyObject *detail)
{
    PyObject *owner = subject != Py_None ? subject : reviewer;
    Buf fields = {0};
    int rc = -1;
    PyObject *seal = PyDict_GetItemWithError(seals, owner); /* borrowed */
    if (seal == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, owner);
        }
        return -1;
    }
    PyObject *key, *ref, *number;
    if (!PyTuple_Check(seal) || PyTuple_GET_SIZE(seal) < 3) {
        PyErr_SetString(PyExc_TypeError, "a seal starts with (key, ref, number)");
        return -1;
    }
    key = PyTuple_GET_ITEM(seal, 0);
    ref = PyTuple_GET_ITEM(seal, 1);
    number = PyTuple_GET_ITEM(seal, 2);
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != KEY_SIZE || !PyBytes_Check(ref) ||
        !PyBytes_Check(nonce) || PyBytes_GET_SIZE(nonce) != NONCE_SIZE) {
        PyErr_SetString(PyExc_TypeError, "a seal needs a 32-byte key, a bytes ref, a 12-byte nonce");
        return -1;
    }
    PyObject *id = PyObject_GetAttr(record, self->s_id);
    if (id == NULL) {
        return -1;
    }
    Py_ssize_t id_len;
    const char *id_s = PyUnicode_Check(id) ? PyUnicode_AsUTF8AndSize(id, &id_len) : NULL;
    if (id_s == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "audit record id must be str");
        }
        Py_DECREF(id);
        return -1;
    }
    self->plain.len = 0;
    self->aad.len = 0;
    if (write_personal(&self->plain, &fields, subject, reviewer, detail) < 0 ||
        buf_put(&self->aad, PyBytes_AS_STRING(self->aad_prefix),
                PyBytes_GET_SIZE(self->aad_prefix)) < 0 ||
        buf_put(&self->aad, id_s, id_len) < 0 || BUF_LITERAL(&self->aad, "\n") < 0 ||
        buf_put(&self->aad, PyBytes_AS_STRING(ref), PyBytes_GET_SIZE(ref)) < 0) {
        goto done;
    }
    if (BUF_LITERAL(line, ",\"sealed\":{\"ct\":\"") < 0 ||
        write_sealed(self, line, (const unsigned char *)PyBytes_AS_STRING(key),
                     (const unsigned char *)PyBytes_AS_STRING(nonce), &self->aad,
                     &self->plain) < 0 ||
        BUF_LITERAL(line, "\",\"fields\":\"") < 0 || buf_put(line, fields.data, fields.len) < 0 ||
        BUF_LITERAL(line, "\"") < 0) {
        goto done;
    }
    if (number != Py_None) {
        if (!PyLong_Check(number) || PyBool_Check(number)) {
            PyErr_SetString(PyExc_TypeError, "a key number must be int");
            goto done;
        }
        long long v = PyLong_AsLongLong(number);
        if ((v == -1 && PyErr_Occurred()) || BUF_LITERAL(line, ",\"key\":") < 0 ||
            buf_int(line, v) < 0) {
            goto done;
        }
    }
    if (BUF_LITERAL(line, ",\"ref\":\"") < 0 ||
        buf_put(line, PyBytes_AS_STRING(ref), PyBytes_GET_SIZE(ref)) < 0 ||
        BUF_LITERAL(line, "\"}") < 0) {
        goto done;
    }
    rc = 1;
done:
    Py_DECREF(id);
    PyMem_Free(fields.data);
    return rc;
}

/* One line into self->line: {"prev":"..","rec":..,"sealed"?:..,"seq":N}. */
static int
write_line(Encoder *self, PyObject *record, const char *prev, long long seq, PyObject *seals,
           PyObject *nonce)
{
    Buf *line = &self->line;
    PyObject *subject = NULL, *reviewer = NULL, *detail = NULL;
    int sealed = 0, rc = -1;
    line->len = 0;
    if (BUF_LITERAL(line, "{\"prev\":\"") < 0 || buf_put(line, prev, PREV_SIZE) < 0 ||
        BUF_LITERAL(line, "\",\"rec\":") < 0) {
        return -1;
    }
    if (seals != Py_None) {
        subject = PyObject_GetAttr(record, self->s_subject);
        reviewer = subject ? PyObject_GetAttr(record, self->s_reviewer) : NULL;
        detail = reviewer ? PyObject_GetAttr(record, self->s_detail) : NULL;
        if (detail == NULL) {
            goto done;
        }
        sealed = subject != Py_None || reviewer != Py_None;
    }
    if (sealed) {
        if (write_members(line, record, self->open_names, self->keys_open) < 0 ||
            write_seal(self, line, record, seals, nonce, subject, reviewer, detail) < 0) {
            goto done;
        }
    }
    else if (write_members(line, record, self->all_names, self->keys_all) < 0) {
        goto done;
    }
    if (BUF_LITERAL(line, ",\"seq\":") < 0 || buf_int(line, seq) < 0 ||
        BUF_LITERAL(line, "}") < 0) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(subject);
    Py_XDECREF(reviewer);
    Py_XDECREF(detail);
    return rc;
}

static int
leaf_hash(Encoder *self, const Buf *line, unsigned char *digest)
{
    static const unsigned char zero = 0;
    unsigned int n = 0;
    if (EVP_DigestInit_ex(self->md, self->sha256, NULL) != 1 ||
        EVP_DigestUpdate(self->md, &zero, 1) != 1 ||
        EVP_DigestUpdate(self->md, line->data, (size_t)line->len) != 1 ||
        EVP_DigestFinal_ex(self->md, digest, &n) != 1 || n != DIGEST_SIZE) {
        return openssl_error("hash a line");
    }
    return 0;
}

PyDoc_STRVAR(Encoder_encode_doc,
"encode(records, seq, prev, room, seals, nonces) -> (lines, hashes, size)\n\n"
"The lines for seq, seq + 1, ... of a prefix of ``records``, chained from ``prev`` (64 hex\n"
"digits), stopping after the line that brings the total size (newlines included) to\n"
"``room`` or more. ``seals`` is None (personal fields in clear) or maps each owner to a\n"
"tuple that starts with (key, ref, key number or None); ``nonces`` then holds a 12-byte\n"
"nonce for each record, by position.");

static PyObject *
Encoder_encode(Encoder *self, PyObject *args)
{
    PyObject *records, *seals, *nonces;
    long long seq;
    const char *prev_in;
    Py_ssize_t prev_len, room;
    if (!PyArg_ParseTuple(args, "OLy#nOO", &records, &seq, &prev_in, &prev_len, &room, &seals,
                          &nonces)) {
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
    PyObject *seq_records = PySequence_Fast(records, "records must be a sequence");
    if (seq_records == NULL) {
        return NULL;
    }
    PyObject *seq_nonces = NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq_records);
    Py_ssize_t nonce_count = 0;
    if (seals != Py_None) {
        seq_nonces = PySequence_Fast(nonces, "nonces must be a sequence");
        if (seq_nonces == NULL) {
            Py_DECREF(seq_records);
            return NULL;
        }
        nonce_count = PySequence_Fast_GET_SIZE(seq_nonces);
    }
    char prev[PREV_SIZE];
    memcpy(prev, prev_in, PREV_SIZE);
    PyObject *lines = PyList_New(0), *hashes = PyList_New(0);
    if (lines == NULL || hashes == NULL) {
        Py_XDECREF(lines);
        Py_XDECREF(hashes);
        goto fail_early;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < count && size < room; i++) {
        PyObject *record = PySequence_Fast_GET_ITEM(seq_records, i);
        /* a record that needs sealing and has no nonce is refused in write_seal */
        PyObject *nonce = i < nonce_count ? PySequence_Fast_GET_ITEM(seq_nonces, i) : Py_None;
        unsigned char digest[DIGEST_SIZE];
        if (seq > LLONG_MAX - 1) {
            PyErr_SetString(PyExc_OverflowError, "sequence number too large");
            goto fail;
        }
        if (write_line(self, record, prev, seq, seals, nonce) < 0 ||
            leaf_hash(self, &self->line, digest) < 0) {
            goto fail;
        }
        PyObject *line = PyBytes_FromStringAndSize(self->line.data, self->line.len);
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            goto fail;
        }
        Py_DECREF(line);
        PyObject *hash = PyBytes_FromStringAndSize((const char *)digest, DIGEST_SIZE);
        if (hash == NULL || PyList_Append(hashes, hash) < 0) {
            Py_XDECREF(hash);
            goto fail;
        }
        Py_DECREF(hash);
        for (int j = 0; j < DIGEST_SIZE; j++) {
            prev[2 * j] = HEX[digest[j] >> 4];
            prev[2 * j + 1] = HEX[digest[j] & 0xF];
        }
        size += self->line.len + 1;
        seq++;
    }
    Py_DECREF(seq_records);
    Py_XDECREF(seq_nonces);
    return Py_BuildValue("(NNn)", lines, hashes, size);
fail:
    Py_DECREF(lines);
    Py_DECREF(hashes);
fail_early:
    Py_DECREF(seq_records);
    Py_XDECREF(seq_nonces);
    return NULL;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)Encoder_encode, METH_VARARGS, Encoder_encode_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Encoder_doc,
"Encoder(all_names, open_names, aad_prefix)\n\n"
"Encodes audit records into chained, canonical log lines (see kzai_guard.audit.lines).\n"
"``all_names`` and ``open_names`` are the record's member names, sorted; ``open_names``\n"
"leaves out the personal ones, which are sealed under ``aad_prefix`` + id + newline + ref.");

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
