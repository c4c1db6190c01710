/*
 * SHA-256 as lowercase hex, the C form of kzai_guard.digest.python_sha256_hex.
 *
 * One call per decision (the digest of its explanation, which goes into the audit record).
 * Python's hashlib makes, initialises and frees an OpenSSL digest context and a hash object
 * per call; this hashes with a context kept on the stack and writes the hex string directly.
 * Called with the GIL held; no state is shared between calls.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends: no context to allocate */
#include <Python.h>

#include <openssl/sha.h>

static const char HEX[] = "0123456789abcdef";

static PyObject *
sha256_hex(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, view.buf, (size_t)view.len);
    SHA256_Final(digest, &ctx);
    PyBuffer_Release(&view);
    PyObject *out = PyUnicode_New(2 * SHA256_DIGEST_LENGTH, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *text = PyUnicode_1BYTE_DATA(out);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        text[2 * i] = (Py_UCS1)HEX[digest[i] >> 4];
        text[2 * i + 1] = (Py_UCS1)HEX[digest[i] & 15];
    }
    return out;
}

static PyMethodDef digest_methods[] = {
    {"sha256_hex", sha256_hex, METH_O, "SHA-256 of a bytes-like object, as lowercase hex."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef digest_module = {
    PyModuleDef_HEAD_INIT,
    "kzai_guard._digest",
    "SHA-256 hex digests in C; see kzai_guard.digest.",
    -1,
    digest_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__digest(void)
{
    return PyModule_Create(&digest_module);
}
