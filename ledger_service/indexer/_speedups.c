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

/* The wire fields of a canonical log (item and actor topics checked, d: at least 576 lowercase hex digits). */
static PyObject *fields_tuple(const char *item, const char *actor, const char *d) {
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

/* fields_tuple of topics t1, t2 and data d (at least 576 characters) if they are canonical; else NULL with no
   exception set (the caller takes the Python path). */
static PyObject *canonical_fields(PyObject *t1, PyObject *t2, const char *d) {
    const char *item = canonical_topic(t1), *actor = canonical_topic(t2);
    if (item == NULL || actor == NULL || !all_hex(d, 576, 1)) return NULL;
    return fields_tuple(item, actor, d);
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
    PyObject *fields = NULL;
    if (PyUnicode_Check(data) && PyUnicode_IS_ASCII(data) && PyUnicode_GET_LENGTH(data) >= 576)
        fields = canonical_fields(t1, t2, (const char *)PyUnicode_DATA(data));
    if (fields == NULL && !PyErr_Occurred()) return PyObject_Vectorcall(args[0], args + 1, 2, NULL);
    return fields;
}

/* ---- the whole decoding loop of a fetch process ------------------------------------------------ */

static PyObject *K_TOPICS, *K_REMOVED, *K_ADDRESS, *K_DATA, *K_BLOCK_HASH, *K_BLOCK_NUMBER, *K_TX_HASH, *K_TX_INDEX,
    *K_LOG_INDEX;

static int str_eq(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    if (!PyUnicode_Check(a) || !PyUnicode_Check(b)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b) &&
           memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

/* "0x" and 1 to 15 hex digits, as int(text, 16) reads it; -1 for any other form (no exception set). */
static long long quantity(PyObject *text) {
    if (text == NULL || !PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text)) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_DATA(text);
    if (n < 3 || n > 17 || s[0] != '0' || s[1] != 'x') return -1;
    long long v = 0;
    for (Py_ssize_t i = 2; i < n; i++) {
        uint8_t h = HEX[(unsigned char)s[i]];
        if (h == 0xFF) return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* key.lower() of an ASCII string; NULL without an exception for any other object. */
static PyObject *ascii_lower(PyObject *key) {
    if (!PyUnicode_Check(key) || !PyUnicode_IS_ASCII(key)) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    const char *s = (const char *)PyUnicode_DATA(key);
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) return NULL;
    char *o = (char *)PyUnicode_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++) o[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    return out;
}

/* One part of the position (block or transaction) as decode.Decoder._one takes it: reused from ``state`` (at
   ``at``: key, hash, number) when the key is the one before, else parsed. 1: done (*hash, *number new refs),
   0: not canonical, -1: error. */
static int position_part(PyObject *raw, PyObject *state, Py_ssize_t at, PyObject *key_name, PyObject *number_name,
                         PyObject **key, PyObject **hash, PyObject **number) {
    *key = PyDict_GetItemWithError(raw, key_name);
    if (*key == NULL) return PyErr_Occurred() ? -1 : 0;
    if (str_eq(*key, PyList_GET_ITEM(state, at))) {
        *hash = Py_NewRef(PyList_GET_ITEM(state, at + 1));
        *number = Py_NewRef(PyList_GET_ITEM(state, at + 2));
        return 1;
    }
    PyObject *text = PyDict_GetItemWithError(raw, number_name);
    if (text == NULL && PyErr_Occurred()) return -1;
    long long value = quantity(text);
    if (value < 0) return 0;
    *hash = ascii_lower(*key);
    if (*hash == NULL) return PyErr_Occurred() ? -1 : 0;
    *number = PyLong_FromLongLong(value);
    if (*number == NULL) {
        Py_CLEAR(*hash);
        return -1;
    }
    return 2; /* new: the caller stores key, hash, number in state */
}

/* The row of a canonical ItemEventRecorded log, or NULL: with no exception set for a log that is not
   canonical, else an error. Updates ``state`` as Decoder._one does. */
static PyObject *fast_row(PyObject *raw, PyObject *topic0, PyObject *address, PyObject *type_index, PyObject *state) {
    if (!PyDict_CheckExact(raw)) return NULL;
    PyObject *topics = PyDict_GetItemWithError(raw, K_TOPICS);
    if (topics == NULL || !PyList_CheckExact(topics) || PyList_GET_SIZE(topics) != 3 ||
        !str_eq(PyList_GET_ITEM(topics, 0), topic0))
        return NULL;
    PyObject *removed = PyDict_GetItemWithError(raw, K_REMOVED);
    if (removed != NULL && removed != Py_False && removed != Py_None) return NULL;
    PyObject *addr = PyDict_GetItemWithError(raw, K_ADDRESS);
    if (addr == NULL || !str_eq(addr, address)) return NULL;
    PyObject *data = PyDict_GetItemWithError(raw, K_DATA);
    if (data == NULL || !PyUnicode_Check(data) || !PyUnicode_IS_ASCII(data) || PyUnicode_GET_LENGTH(data) != 578)
        return NULL;
    const char *d0 = (const char *)PyUnicode_DATA(data);
    if (d0[0] != '0' || d0[1] != 'x') return NULL;
    PyObject *log_index = PyDict_GetItemWithError(raw, K_LOG_INDEX);
    long long li = quantity(log_index);
    if (li < 0 || PyErr_Occurred()) return NULL;

    PyObject *bkey, *bhash = NULL, *bnum = NULL, *tkey, *thash = NULL, *tnum = NULL;
    int b = position_part(raw, state, 0, K_BLOCK_HASH, K_BLOCK_NUMBER, &bkey, &bhash, &bnum);
    if (b <= 0) return NULL;
    int t = position_part(raw, state, 3, K_TX_HASH, K_TX_INDEX, &tkey, &thash, &tnum);
    if (t <= 0) {
        Py_DECREF(bhash);
        Py_DECREF(bnum);
        return NULL;
    }
    PyObject *fields = canonical_fields(PyList_GET_ITEM(topics, 1), PyList_GET_ITEM(topics, 2), d0 + 2);
    PyObject *li_obj = fields == NULL ? NULL : PyLong_FromLongLong(li);
    PyObject *place = li_obj == NULL ? NULL : PyTuple_Pack(6, bnum, bhash, thash, tnum, li_obj, address);
    PyObject *row = place == NULL ? NULL : PyTuple_Pack(3, type_index, place, fields);
    Py_XDECREF(fields);
    Py_XDECREF(li_obj);
    Py_XDECREF(place);
    if (row != NULL) {
        PyObject *parts[2][3] = {{bkey, bhash, bnum}, {tkey, thash, tnum}};
        int fresh[2] = {b == 2, t == 2};
        for (int p = 0; p < 2; p++)
            if (fresh[p])
                for (int i = 0; i < 3; i++) PyList_SetItem(state, 3 * p + i, Py_NewRef(parts[p][i]));
    }
    Py_DECREF(bhash);
    Py_DECREF(bnum);
    Py_DECREF(thash);
    Py_DECREF(tnum);
    return row;
}

/* decode_item_rows(topic0, address, type_index, logs, state, one) -> (rows, in_order, skipped): what
   Decoder._decode(logs, rows=True) makes of ``logs`` with its Python loop, each canonical ItemEventRecorded
   log of the ledger decoded here and every other log by one(raw, state) (a row, or None: skipped). */
static PyObject *decode_item_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6 || !PyList_Check(args[3]) || !PyList_Check(args[4]) || PyList_GET_SIZE(args[4]) != 6) {
        PyErr_SetString(PyExc_TypeError, "decode_item_rows(topic0, address, type_index, logs: list, state: list of 6, one)");
        return NULL;
    }
    PyObject *topic0 = args[0], *address = args[1], *type_index = args[2], *logs = args[3], *state = args[4];
    PyObject *one = args[5];
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    PyObject *last = NULL;
    int in_order = 1;
    long long skipped = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(logs); i++) {
        PyObject *raw = PyList_GET_ITEM(logs, i);
        Py_INCREF(raw);
        PyObject *row = fast_row(raw, topic0, address, type_index, state);
        if (row == NULL && !PyErr_Occurred()) {
            PyObject *call[2] = {raw, state};
            row = PyObject_Vectorcall(one, call, 2, NULL);
        }
        Py_DECREF(raw);
        if (row == NULL) goto fail;
        if (row == Py_None) {
            Py_DECREF(row);
            skipped++;
            continue;
        }
        PyObject *place = PyTuple_Check(row) && PyTuple_GET_SIZE(row) >= 2 ? PyTuple_GET_ITEM(row, 1) : NULL;
        if (place == NULL || !PyTuple_Check(place) || PyTuple_GET_SIZE(place) < 5) {
            Py_DECREF(row);
            PyErr_SetString(PyExc_TypeError, "decode_item_rows: a row without its position");
            goto fail;
        }
        PyObject *here = PyTuple_Pack(2, PyTuple_GET_ITEM(place, 0), PyTuple_GET_ITEM(place, 4));
        int appended = here == NULL ? -1 : PyList_Append(out, row);
        Py_DECREF(row);
        if (appended < 0) {
            Py_XDECREF(here);
            goto fail;
        }
        if (last != NULL && in_order) {
            int le = PyObject_RichCompareBool(here, last, Py_LE);
            if (le < 0) {
                Py_DECREF(here);
                goto fail;
            }
            if (le) in_order = 0;
        }
        Py_XSETREF(last, here);
    }
    Py_XDECREF(last);
    return Py_BuildValue("(NOL)", out, in_order ? Py_True : Py_False, skipped);
fail:
    Py_XDECREF(last);
    Py_DECREF(out);
    return NULL;
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
    {"decode_item_rows", (PyCFunction)(void (*)(void))decode_item_rows, METH_FASTCALL,
     "decode_item_rows(topic0, address, type_index, logs, state, one) -> (rows, in_order, skipped)."},
    {"keccak256", py_keccak256, METH_O, "keccak256 of a bytes-like object."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "Compiled hot path of the indexer's fetch process.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_hex();
    PyObject **keys[] = {&K_TOPICS, &K_REMOVED, &K_ADDRESS, &K_DATA, &K_BLOCK_HASH, &K_BLOCK_NUMBER, &K_TX_HASH,
                         &K_TX_INDEX, &K_LOG_INDEX};
    const char *names[] = {"topics", "removed", "address", "data", "blockHash", "blockNumber", "transactionHash",
                           "transactionIndex", "logIndex"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        *keys[i] = PyUnicode_InternFromString(names[i]);
        if (*keys[i] == NULL) return NULL;
    }
    return PyModule_Create(&module);
}
