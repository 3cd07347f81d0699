/* Compiled hot path of a fetch process: ItemEventRecorded's wire fields and its eventHash check.
 *
 * item_event_fields(fallback, topics, data) returns what decode._item_event_fields_py(topics, data)
 * returns (the decoder's wire tuple of an ItemEventRecorded log, the eventHash check included). It reads
 * the canonical form itself: topics a list or tuple whose items 1 and 2 are "0x" and 64 hex digits, data
 * (the caller strips "0x" and lowercases it) at least 9 words of lowercase hex. Any other form goes to
 * fallback(topics, data), the Python code, which reads it (or raises on it) as before: the two paths
 * agree by construction on everything this one declines, and tests/ledger_service/indexer/
 * test_speedups.py checks that they agree on everything it accepts.
 *
 * keccak256 is the Keccak-f[1600] permutation of GNU Nettle (sha3_permute, part of its public API)
 * with Ethereum's original Keccak padding (0x01 ... 0x80; SHA3-256 pads with 0x06) at a rate of 136
 * bytes. keccak256(data) is exposed for the tests, which compare it with safe-pysha3's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <nettle/sha3.h>

#define RATE 136 /* keccak256: 1600 - 2 * 256 bits */

/* Keccak's lanes are little-endian 64-bit words. */
static inline uint64_t load_le64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = (v << 8) | p[b];
    return v;
#endif
}

static void keccak256(const uint8_t *data, size_t len, uint8_t out[32]) {
    struct sha3_state state;
    uint8_t block[RATE];
    memset(&state, 0, sizeof state);
    for (;;) {
        size_t take = len < RATE ? len : RATE;
        int last = len < RATE;
        memcpy(block, data, take);
        if (last) {
            memset(block + take, 0, RATE - take);
            block[take] ^= 0x01;
            block[RATE - 1] ^= 0x80;
        }
        for (int i = 0; i < RATE / 8; i++) state.a[i] ^= load_le64(block + 8 * i);
        sha3_permute(&state);
        if (last) break;
        data += RATE;
        len -= RATE;
    }
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 8; b++) out[8 * i + b] = (uint8_t)(state.a[i] >> (8 * b));
}

/* Hex digit values; 0xFF for a character that is not one. */
static uint8_t HEX[256];
static const char LOWER_DIGITS[] = "0123456789abcdef";

static void init_hex(void) {
    memset(HEX, 0xFF, sizeof HEX);
    for (int i = 0; i < 10; i++) HEX['0' + i] = (uint8_t)i;
    for (int i = 0; i < 6; i++) {
        HEX['a' + i] = (uint8_t)(10 + i);
        HEX['A' + i] = (uint8_t)(10 + i);
    }
}

static int all_hex(const char *s, Py_ssize_t n, int lowercase_only) {
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (HEX[c] == 0xFF || (lowercase_only && c >= 'A' && c <= 'F')) return 0;
    }
    return 1;
}

static void unhex(const char *s, Py_ssize_t nbytes, uint8_t *out) {
    for (Py_ssize_t i = 0; i < nbytes; i++)
        out[i] = (uint8_t)((HEX[(unsigned char)s[2 * i]] << 4) | HEX[(unsigned char)s[2 * i + 1]]);
}

static int all_zero_digits(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] != '0') return 0;
    return 1;
}

/* "0x" + lowercase hex of s[0:n] (already checked to be hex digits). */
static PyObject *prefixed_lower(const char *s, Py_ssize_t n) {
    PyObject *str = PyUnicode_New(n + 2, 127);
    if (str == NULL) return NULL;
    char *out = (char *)PyUnicode_DATA(str);
    out[0] = '0';
    out[1] = 'x';
    for (Py_ssize_t i = 0; i < n; i++) out[2 + i] = LOWER_DIGITS[HEX[(unsigned char)s[i]]];
    return str;
}

/* int(word, 16) of a 64-digit hex word (already checked). */
static PyObject *word_int(const char *word) {
    if (all_zero_digits(word, 48)) {
        unsigned long long v = 0;
        for (int i = 48; i < 64; i++) v = (v << 4) | HEX[(unsigned char)word[i]];
        return PyLong_FromUnsignedLongLong(v);
    }
    char copy[65];
    memcpy(copy, word, 64);
    copy[64] = '\0';
    return PyLong_FromString(copy, NULL, 16);
}

/* The ASCII text of a topic if it is "0x" and 64 hex digits, else NULL (no exception set). */
static const char *canonical_topic(PyObject *topic) {
    if (!PyUnicode_Check(topic) || !PyUnicode_IS_ASCII(topic) || PyUnicode_GET_LENGTH(topic) != 66) return NULL;
    const char *s = (const char *)PyUnicode_DATA(topic);
    if (s[0] != '0' || s[1] != 'x' || !all_hex(s + 2, 64, 0)) return NULL;
    return s;
}

/* event_hash_matches_log for canonical input (store/_hashing.py). */
static int hash_matches(const char *item, const char *actor, const char *d) {
    if (!all_zero_digits(d, 48) || !all_zero_digits(d + 64, 62) || !all_zero_digits(d + 128, 62) ||
        !all_zero_digits(d + 384, 48))
        return 0;
    uint8_t data_words[96], preimage[256], digest[32], logged[32];
    unhex(d + 192, 96, data_words); /* location, document, bizTransaction */
    unhex(d + 448, 32, preimage);   /* prevHash */
    unhex(item + 2, 32, preimage + 32);
    unhex(d, 96, preimage + 64);    /* seq, bizStep, disposition */
    memset(preimage + 160, 0, 12);  /* the actor's word */
    unhex(actor + 26, 20, preimage + 172);
    keccak256(data_words, sizeof data_words, preimage + 192); /* dataHash */
    unhex(d + 384, 32, preimage + 224);                         /* timestamp */
    keccak256(preimage, sizeof preimage, digest);
    unhex(d + 512, 32, logged);
    return memcmp(digest, logged, 32) == 0;
}

static PyObject *item_event_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "item_event_fields(fallback, topics, data) takes 3 arguments");
        return NULL;
    }
    PyObject *topics = args[1], *data = args[2];
    PyObject *t1, *t2;
    if (PyList_Check(topics) && PyList_GET_SIZE(topics) >= 3) {
        t1 = PyList_GET_ITEM(topics, 1);
        t2 = PyList_GET_ITEM(topics, 2);
    } else if (PyTuple_Check(topics) && PyTuple_GET_SIZE(topics) >= 3) {
        t1 = PyTuple_GET_ITEM(topics, 1);
        t2 = PyTuple_GET_ITEM(topics, 2);
    } else {
        return PyObject_Vectorcall(args[0], args + 1, 2, NULL);
    }
    const char *item = canonical_topic(t1), *actor = canonical_topic(t2);
    if (item == NULL || actor == NULL || !PyUnicode_Check(data) || !PyUnicode_IS_ASCII(data) ||
        PyUnicode_GET_LENGTH(data) < 576)
        return PyObject_Vectorcall(args[0], args + 1, 2, NULL);
    const char *d = (const char *)PyUnicode_DATA(data);
    if (!all_hex(d, 576, 1)) return PyObject_Vectorcall(args[0], args + 1, 2, NULL);

    PyObject *out = PyTuple_New(12);
    if (out == NULL) return NULL;
    PyObject *fields[12] = {
        prefixed_lower(item + 2, 64),
        prefixed_lower(actor + 26, 40),
        word_int(d),
        word_int(d + 64),
        word_int(d + 128),
        prefixed_lower(d + 192, 64),
        prefixed_lower(d + 256, 64),
        prefixed_lower(d + 320, 64),
        word_int(d + 384),
        prefixed_lower(d + 448, 64),
        prefixed_lower(d + 512, 64),
        PyBool_FromLong(hash_matches(item, actor, d)),
    };
    for (int i = 0; i < 12; i++) {
        if (fields[i] == NULL) {
            for (int j = 0; j < 12; j++) Py_XDECREF(fields[j]);
            Py_DECREF(out);
            return NULL;
        }
    }
    for (int i = 0; i < 12; i++) PyTuple_SET_ITEM(out, i, fields[i]);
    return out;
}

static PyObject *py_keccak256(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    uint8_t digest[32];
    keccak256((const uint8_t *)view.buf, (size_t)view.len, digest);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)digest, 32);
}

static PyMethodDef methods[] = {
    {"item_event_fields", (PyCFunction)(void (*)(void))item_event_fields, METH_FASTCALL,
     "item_event_fields(fallback, topics, data): ItemEventRecorded's wire fields with the eventHash check;\n"
     "fallback(topics, data) makes them for a log that is not in canonical form."},
    {"keccak256", py_keccak256, METH_O, "keccak256 of a bytes-like object."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "Compiled hot path of the indexer's fetch process.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_hex();
    return PyModule_Create(&module);
}
