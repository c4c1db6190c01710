/*
 * UUIDv7 identifiers (RFC 9562), the C form of kzai_guard.ids.new_id.
 *
 * 48 bits of Unix milliseconds, the version nibble 7, 12 random bits, the variant 0b10 and
 * 62 random bits, written as the canonical 36-character lowercase string. The random bytes
 * come from the operating system (getentropy) a pool at a time; a forked child empties its
 * pool, so parent and child never hand out the same bytes. Called with the GIL held, which
 * keeps the pool to one caller at a time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>
#endif

#define ID_RANDOM 10   /* random bytes per id: 74 of their 80 bits are kept */
#define POOL 250       /* getentropy gives at most 256 bytes a call */

static unsigned char pool[POOL];
static size_t used = POOL; /* empty until the first id */

static void
empty_pool(void)
{
    used = POOL;
}

static int
fill_pool(void)
{
    if (getentropy(pool, POOL) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    used = 0;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

static PyObject *
new_id(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    struct timespec now;
    unsigned char bytes[16];
    const unsigned char *random;
    uint64_t ms;
    PyObject *text;
    Py_UCS1 *out;
    int i;

    if (used + ID_RANDOM > POOL && fill_pool() < 0) {
        return NULL;
    }
    random = pool + used;
    used += ID_RANDOM;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    for (i = 0; i < 6; i++) {
        bytes[i] = (unsigned char)(ms >> (40 - 8 * i));
    }
    bytes[6] = (unsigned char)(0x70 | (random[0] & 0x0F));
    bytes[7] = random[1];
    bytes[8] = (unsigned char)(0x80 | (random[2] & 0x3F));
    memcpy(bytes + 9, random + 3, 7);

    text = PyUnicode_New(36, 127);
    if (text == NULL) {
        return NULL;
    }
    out = PyUnicode_1BYTE_DATA(text);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *out++ = '-';
        }
        *out++ = (Py_UCS1)HEX[bytes[i] >> 4];
        *out++ = (Py_UCS1)HEX[bytes[i] & 0x0F];
    }
    return text;
}

static PyMethodDef ids_methods[] = {
    {"new_id", new_id, METH_NOARGS, "A new UUIDv7 string."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ids_module = {
    PyModuleDef_HEAD_INIT,
    "kzai_guard._ids",
    "UUIDv7 identifiers in C; see kzai_guard.ids.",
    -1,
    ids_methods,
};

PyMODINIT_FUNC
PyInit__ids(void)
{
    static int registered = 0;
    if (!registered) {
        int failed = pthread_atfork(NULL, NULL, empty_pool);
        if (failed != 0) {
            errno = failed;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        registered = 1;
    }
    return PyModule_Create(&ids_module);
}
