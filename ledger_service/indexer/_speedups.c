/* Compiled hot path of a fetch process: one event's fields (with its eventHash check) read from a log, and the
 * reading of an eth_getLogs answer from its bytes (decode_response_rows, below).
 *
 * Nothing here knows an event's shape: layout(topics, data_words, fields) compiles the descriptor that
 * ledger_service/indexer/layout.py's descriptor() makes from the contract ABI (per field: its kind and its
 * topic or data word; the eventHash check: the words of core/hashchain.py's EVENT_HASH_WORDS), and every
 * function below takes that layout. A descriptor with a kind this code does not read (a string, a
 * constant, another derived field) is refused with ValueError: the decoder then runs its Python reader.
 *
 * event_fields(layout, fallback, topics, data) returns what the Python reader made from the same layout
 * returns for (topics, data). It reads the canonical form itself: topics a list or tuple of at least the
 * layout's count whose items after topic0 are "0x" and 64 hex digits, data (the caller strips "0x" and
 * lowercases it) at least the layout's words of lowercase hex. Any other form goes to fallback(topics,
 * data), the Python reader, which reads it (or raises on it) as before: the two paths agree by
 * construction on everything this one declines, and tests/ledger_service/indexer/test_speedups.py checks
 * that they agree on everything it accepts.
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

/* ---- layouts ------------------------------------------------------------------------------------ */

#define MAX_TOPICS 4 /* topic0 and up to three indexed parameters: the EVM's LOG4 */
#define MAX_FIELDS 64
#define HASH_WORDS 11 /* core/hashchain.py's EVENT_HASH_WORDS */

enum { KIND_TOPIC_BYTES32, KIND_TOPIC_ADDRESS, KIND_TOPIC_UINT, KIND_TOPIC_BOOL, KIND_BYTES32, KIND_ADDRESS, KIND_UINT, KIND_BOOL, KIND_HASH_OK };
static const char *const KIND_NAMES[] = {"topic_bytes32", "topic_address", "topic_uint", "topic_bool", "bytes32",
                                         "address", "uint", "bool", "derived:event_hash_matches_words"};
#define NKINDS ((int)(sizeof KIND_NAMES / sizeof KIND_NAMES[0]))

typedef struct {
    int topic; /* 1: topics[index], 0: data word index */
    int index;
} source_t;

typedef struct {
    int topics; /* topic0 included */
    int data_words;
    int nfields;
    int kinds[MAX_FIELDS];
    int srcs[MAX_FIELDS];
    source_t hash[HASH_WORDS]; /* the eventHash check's words, if a field is KIND_HASH_OK */
} layout_t;

static const char LAYOUT_CAPSULE[] = "ledger_service.indexer._speedups.layout";

static void free_layout(PyObject *capsule) { PyMem_Free(PyCapsule_GetPointer(capsule, LAYOUT_CAPSULE)); }

static const layout_t *get_layout(PyObject *capsule) {
    return (const layout_t *)PyCapsule_GetPointer(capsule, LAYOUT_CAPSULE); /* sets TypeError/ValueError */
}

static int bad_layout(const char *why) {
    PyErr_Format(PyExc_ValueError, "layout: %s", why);
    return -1;
}

/* A source ("topic", i) or ("word", i) within the layout's topics and words: 0, or -1 with ValueError. */
static int read_source(PyObject *item, const layout_t *l, source_t *out) {
    const char *where;
    int index;
    if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "si", &where, &index)) {
        PyErr_Clear();
        return bad_layout("a source is not (\"topic\" or \"word\", index)");
    }
    out->topic = strcmp(where, "topic") == 0;
    out->index = index;
    if (out->topic ? (index < 1 || index >= l->topics) : (strcmp(where, "word") != 0 || index < 0 || index >= l->data_words))
        return bad_layout("a source outside the log");
    return 0;
}

/* layout(topics, data_words, fields) -> an opaque layout for the functions below (see the top of this file). */
static PyObject *py_layout(PyObject *self, PyObject *args) {
    (void)self;
    int topics, data_words;
    PyObject *fields;
    if (!PyArg_ParseTuple(args, "iiO!", &topics, &data_words, &PyTuple_Type, &fields)) return NULL;
    layout_t *l = PyMem_Calloc(1, sizeof *l);
    if (l == NULL) return PyErr_NoMemory();
    l->topics = topics;
    l->data_words = data_words;
    l->nfields = (int)PyTuple_GET_SIZE(fields);
    if (topics < 1 || topics > MAX_TOPICS || data_words < 0 || data_words > 4096 || l->nfields > MAX_FIELDS) {
        bad_layout("topics, data words or fields out of range");
        goto fail;
    }
    for (int i = 0; i < l->nfields; i++) {
        PyObject *item = PyTuple_GET_ITEM(fields, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
            bad_layout("a field is not (kind, source)");
            goto fail;
        }
        const char *kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(item, 0));
        if (kind == NULL) goto fail;
        int k = -1;
        for (int j = 0; j < NKINDS; j++)
            if (strcmp(kind, KIND_NAMES[j]) == 0) k = j;
        if (k < 0) {
            PyErr_Format(PyExc_ValueError, "layout: fields of kind %s are not read by the compiled code", kind);
            goto fail;
        }
        l->kinds[i] = k;
        PyObject *src = PyTuple_GET_ITEM(item, 1);
        if (k == KIND_HASH_OK) {
            if (!PyTuple_Check(src) || PyTuple_GET_SIZE(src) != HASH_WORDS) {
                bad_layout("the eventHash check takes 11 words");
                goto fail;
            }
            for (int j = 0; j < HASH_WORDS; j++)
                if (read_source(PyTuple_GET_ITEM(src, j), l, &l->hash[j]) < 0) goto fail;
            continue;
        }
        long index = PyLong_Check(src) ? PyLong_AsLong(src) : -1;
        if (index == -1 && PyErr_Occurred()) goto fail;
        int topic = k <= KIND_TOPIC_BOOL;
        if (topic ? (index < 1 || index >= topics) : (index < 0 || index >= data_words)) {
            bad_layout("a field outside the log");
            goto fail;
        }
        l->srcs[i] = (int)index;
    }
    PyObject *capsule = PyCapsule_New(l, LAYOUT_CAPSULE, free_layout);
    if (capsule == NULL) goto fail;
    return capsule;
fail:
    PyMem_Free(l);
    return NULL;
}

/* ---- one log's fields ---------------------------------------------------------------------------- */

/* event_hash_matches_words (core/hashchain.py) on canonical input: tp[i] the 64 hex digits of topic i, d the data. */
static int hash_matches(const layout_t *l, const char *const *tp, const char *d) {
    const char *w[HASH_WORDS];
    for (int i = 0; i < HASH_WORDS; i++) w[i] = l->hash[i].topic ? tp[l->hash[i].index] : d + 64 * l->hash[i].index;
    /* prev_hash, item_id, seq, biz_step, disposition, actor, location, document, biz_transaction, timestamp,
       event_hash: the integers canonical (no bits above uint64 or uint8), the logged hash lowercase as Python
       compares its text */
    if (!all_zero_digits(w[2], 48) || !all_zero_digits(w[3], 62) || !all_zero_digits(w[4], 62) ||
        !all_zero_digits(w[9], 48) || !all_hex(w[10], 64, 1))
        return 0;
    uint8_t data_words[96], preimage[256], digest[32], logged[32];
    for (int i = 0; i < 3; i++) unhex(w[6 + i], 32, data_words + 32 * i); /* location, document, bizTransaction */
    for (int i = 0; i < 5; i++) unhex(w[i], 32, preimage + 32 * i);       /* prevHash .. disposition */
    memset(preimage + 160, 0, 12);                                        /* the actor's word */
    unhex(w[5] + 24, 20, preimage + 172);
    keccak256(data_words, sizeof data_words, preimage + 192); /* dataHash */
    unhex(w[9], 32, preimage + 224);                          /* timestamp */
    keccak256(preimage, sizeof preimage, digest);
    unhex(w[10], 32, logged);
    return memcmp(digest, logged, 32) == 0;
}

/* The fields of a canonical log (tp: each topic's 64 checked hex digits, d: the layout's words of lowercase hex). */
static PyObject *fields_tuple(const layout_t *l, const char *const *tp, const char *d) {
    PyObject *out = PyTuple_New(l->nfields);
    if (out == NULL) return NULL;
    for (int i = 0; i < l->nfields; i++) {
        int k = l->kinds[i];
        const char *w = k <= KIND_TOPIC_BOOL ? tp[l->srcs[i]] : d + 64 * l->srcs[i];
        PyObject *v;
        switch (k) {
        case KIND_TOPIC_BYTES32:
        case KIND_BYTES32: v = prefixed_lower(w, 64); break;
        case KIND_TOPIC_ADDRESS:
        case KIND_ADDRESS: v = prefixed_lower(w + 24, 40); break;
        case KIND_TOPIC_UINT:
        case KIND_UINT: v = word_int(w); break;
        case KIND_TOPIC_BOOL:
        case KIND_BOOL: v = PyBool_FromLong(!all_zero_digits(w, 64)); break;
        default: v = PyBool_FromLong(hash_matches(l, tp, d)); break;
        }
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

/* fields_tuple of a log whose topics (a list or tuple of at least the layout's count) and data (d: at least the
   layout's words) are canonical; else NULL with no exception set (the caller takes the Python path). */
static PyObject *canonical_fields(const layout_t *l, PyObject *topics, const char *d) {
    const char *tp[MAX_TOPICS] = {NULL};
    PyObject **items = PySequence_Fast_ITEMS(topics);
    for (int i = 1; i < l->topics; i++) {
        const char *t = canonical_topic(items[i]);
        if (t == NULL) return NULL;
        tp[i] = t + 2;
    }
    if (!all_hex(d, 64 * (Py_ssize_t)l->data_words, 1)) return NULL;
    return fields_tuple(l, tp, d);
}

static PyObject *event_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "event_fields(layout, fallback, topics, data) takes 4 arguments");
        return NULL;
    }
    const layout_t *l = get_layout(args[0]);
    if (l == NULL) return NULL;
    PyObject *topics = args[2], *data = args[3];
    PyObject *fields = NULL;
    if ((PyList_Check(topics) || PyTuple_Check(topics)) && PySequence_Fast_GET_SIZE(topics) >= l->topics &&
        PyUnicode_Check(data) && PyUnicode_IS_ASCII(data) && PyUnicode_GET_LENGTH(data) >= 64 * l->data_words)
        fields = canonical_fields(l, topics, (const char *)PyUnicode_DATA(data));
    if (fields == NULL && !PyErr_Occurred()) return PyObject_Vectorcall(args[1], args + 2, 2, NULL);
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

/* The row (type_index, (block number, block hash, transaction hash, transaction index, log index, address),
   fields) of a log whose ``fields`` (taken; NULL: not canonical, or an error is set) and position ``parts``
   ({key, hash, number} of its block and of its transaction) were read; on success the ``fresh`` parts are stored
   in ``state`` for the logs after it. */
static PyObject *row_of(PyObject *fields, long long li, PyObject *type_index, PyObject *address, PyObject *state,
                        PyObject *parts[2][3], const int fresh[2]) {
    PyObject *li_obj = fields == NULL ? NULL : PyLong_FromLongLong(li);
    PyObject *place = li_obj == NULL ? NULL
                                     : PyTuple_Pack(6, parts[0][2], parts[0][1], parts[1][1], parts[1][2], li_obj, address);
    PyObject *row = place == NULL ? NULL : PyTuple_Pack(3, type_index, place, fields);
    Py_XDECREF(fields);
    Py_XDECREF(li_obj);
    Py_XDECREF(place);
    if (row != NULL)
        for (int p = 0; p < 2; p++)
            if (fresh[p])
                for (int i = 0; i < 3; i++) PyList_SetItem(state, 3 * p + i, Py_NewRef(parts[p][i]));
    return row;
}

/* The row of a canonical log of the layout's event, or NULL: with no exception set for a log that is not
   canonical, else an error. Updates ``state`` as Decoder._one does. */
static PyObject *fast_row(const layout_t *l, PyObject *raw, PyObject *topic0, PyObject *address, PyObject *type_index,
                          PyObject *state) {
    if (!PyDict_CheckExact(raw)) return NULL;
    PyObject *topics = PyDict_GetItemWithError(raw, K_TOPICS);
    if (topics == NULL || !PyList_CheckExact(topics) || PyList_GET_SIZE(topics) != l->topics ||
        !str_eq(PyList_GET_ITEM(topics, 0), topic0))
        return NULL;
    PyObject *removed = PyDict_GetItemWithError(raw, K_REMOVED);
    if (removed != NULL && removed != Py_False && removed != Py_None) return NULL;
    PyObject *addr = PyDict_GetItemWithError(raw, K_ADDRESS);
    if (addr == NULL || !str_eq(addr, address)) return NULL;
    PyObject *data = PyDict_GetItemWithError(raw, K_DATA);
    if (data == NULL || !PyUnicode_Check(data) || !PyUnicode_IS_ASCII(data) ||
        PyUnicode_GET_LENGTH(data) != 2 + 64 * (Py_ssize_t)l->data_words)
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
    PyObject *parts[2][3] = {{bkey, bhash, bnum}, {tkey, thash, tnum}};
    int fresh[2] = {b == 2, t == 2};
    PyObject *row = row_of(canonical_fields(l, topics, d0 + 2), li, type_index, address, state, parts, fresh);
    Py_DECREF(bhash);
    Py_DECREF(bnum);
    Py_DECREF(thash);
    Py_DECREF(tnum);
    return row;
}

/* Appends ``row`` (a new reference, taken) to ``out`` unless it is None (counted in *skipped), and clears
   *in_order when its position (block, log index) is not after the one before (*last). 0, or -1 on error. */
static int collect_row(PyObject *out, PyObject *row, PyObject **last, int *in_order, long long *skipped) {
    if (row == Py_None) {
        Py_DECREF(row);
        (*skipped)++;
        return 0;
    }
    PyObject *place = PyTuple_Check(row) && PyTuple_GET_SIZE(row) >= 2 ? PyTuple_GET_ITEM(row, 1) : NULL;
    if (place == NULL || !PyTuple_Check(place) || PyTuple_GET_SIZE(place) < 5) {
        Py_DECREF(row);
        PyErr_SetString(PyExc_TypeError, "decode_item_rows: a row without its position");
        return -1;
    }
    PyObject *here = PyTuple_Pack(2, PyTuple_GET_ITEM(place, 0), PyTuple_GET_ITEM(place, 4));
    int appended = here == NULL ? -1 : PyList_Append(out, row);
    Py_DECREF(row);
    if (appended < 0) {
        Py_XDECREF(here);
        return -1;
    }
    if (*last != NULL && *in_order) {
        int le = PyObject_RichCompareBool(here, *last, Py_LE);
        if (le < 0) {
            Py_DECREF(here);
            return -1;
        }
        if (le) *in_order = 0;
    }
    Py_XSETREF(*last, here);
    return 0;
}

/* decode_item_rows(layout, topic0, address, type_index, logs, state, one) -> (rows, in_order, skipped): what
   Decoder._decode(logs, rows=True) makes of ``logs`` with its Python loop, each canonical log of the layout's
   event (topic0, from address) decoded here and every other log by one(raw, state) (a row, or None: skipped). */
static PyObject *decode_item_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 || !PyList_Check(args[4]) || !PyList_Check(args[5]) || PyList_GET_SIZE(args[5]) != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "decode_item_rows(layout, topic0, address, type_index, logs: list, state: list of 6, one)");
        return NULL;
    }
    const layout_t *l = get_layout(args[0]);
    if (l == NULL) return NULL;
    PyObject *topic0 = args[1], *address = args[2], *type_index = args[3], *logs = args[4], *state = args[5];
    PyObject *one = args[6];
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    PyObject *last = NULL;
    int in_order = 1;
    long long skipped = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(logs); i++) {
        PyObject *raw = PyList_GET_ITEM(logs, i);
        Py_INCREF(raw);
        PyObject *row = fast_row(l, raw, topic0, address, type_index, state);
        if (row == NULL && !PyErr_Occurred()) {
            PyObject *call[2] = {raw, state};
            row = PyObject_Vectorcall(one, call, 2, NULL);
        }
        Py_DECREF(raw);
        if (row == NULL || collect_row(out, row, &last, &in_order, &skipped) < 0) goto fail;
    }
    Py_XDECREF(last);
    return Py_BuildValue("(NOL)", out, in_order ? Py_True : Py_False, skipped);
fail:
    Py_XDECREF(last);
    Py_DECREF(out);
    return NULL;
}

/* ---- an eth_getLogs answer read straight from its bytes ------------------------------------------ */

/* decode_response_rows(layout, topic0, address, type_index, raw, request_id, state, one, loads) does what
   decode_item_rows does with json.loads(raw)["result"] without building a dict per log, or returns None when
   the answer is not of the form it reads: {"jsonrpc":"2.0","id":<request_id>,"result":[<objects>]}, with JSON
   whitespace allowed around the whole and from the array on. It reads a log object itself when every key is a
   plain string (printable ASCII, no backslash), every value a plain string, an array of plain strings, true,
   false or null, and no field it reads comes twice; such a log, if it is a canonical ItemEventRecorded log, is
   decoded here. Every other object goes through loads(its bytes) and one(dict, state), as in decode_item_rows.
   An object loads rejects makes the answer None (the caller parses it whole and reports it), and so does
   anything after the array but "}". Nothing is decoded before the whole answer has been checked: a None never
   follows a call of one. */

typedef struct {
    const char *p;
    Py_ssize_t n;
} text_t;

enum { F_ADDRESS, F_TOPICS, F_DATA, F_BLOCK_HASH, F_BLOCK_NUMBER, F_TX_HASH, F_TX_INDEX, F_LOG_INDEX, F_REMOVED, NFIELDS };
static const char *const FIELD_NAMES[NFIELDS] = {"address", "topics", "data", "blockHash", "blockNumber",
                                                 "transactionHash", "transactionIndex", "logIndex", "removed"};
static const Py_ssize_t FIELD_LENGTHS[NFIELDS] = {7, 6, 4, 9, 11, 15, 16, 8, 7};

typedef struct {
    const char *start, *end; /* the object's bytes, braces included */
    text_t field[NFIELDS];
    text_t topics[MAX_TOPICS];
    int ntopics;
    unsigned seen;
    int plain; /* read here (1), or for loads (0) */
} log_text;

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* A string at p (*p == '"') whose content is printable ASCII without a backslash: the position after its closing
   quote (content in *out), else NULL. */
static const char *plain_string(const char *p, const char *end, text_t *out) {
    const char *s = ++p;
    /* eight bytes at a time while none is a quote, a backslash, below 0x20 or above 0x7E */
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t x, quote, slash;
        memcpy(&x, p, 8);
        quote = x ^ (ones * '"');
        slash = x ^ (ones * '\\');
        if ((((x - ones * 0x20) & ~x) | (x + ones) | x | ((quote - ones) & ~quote) | ((slash - ones) & ~slash)) & highs)
            break;
        p += 8;
    }
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            out->p = s;
            out->n = p - s;
            return p + 1;
        }
        if (c == '\\' || c < 0x20 || c >= 0x7F) return NULL;
        p++;
    }
    return NULL;
}

/* The end of the object or array at p (*p is '{' or '['), strings and escapes skipped; NULL if cut short. It does
   not validate: what it delimits is either read by read_log or handed to loads. */
static const char *container_end(const char *p, const char *end) {
    Py_ssize_t depth = 0;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            while (p < end && *p != '"') p += (*p == '\\') ? 2 : 1;
            if (p >= end) return NULL;
            p++;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return p;
        }
    }
    return NULL;
}

static int literal(const char *p, const char *end, const char *word, Py_ssize_t n) {
    return end - p >= n && memcmp(p, word, (size_t)n) == 0;
}

/* Reads the object at p (*p == '{') into f if it is of the plain form (see above): the position after its closing
   brace, else NULL. */
static const char *read_log(log_text *f, const char *p, const char *end) {
    p = skip_ws(p + 1, end);
    for (;;) {
        text_t key, value;
        if (p >= end || *p != '"' || (p = plain_string(p, end, &key)) == NULL) return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_ws(p + 1, end);
        if (p >= end) return NULL;
        int field = -1;
        for (int i = 0; i < NFIELDS; i++) {
            if (key.n == FIELD_LENGTHS[i] && memcmp(key.p, FIELD_NAMES[i], (size_t)key.n) == 0) {
                field = i;
                break;
            }
        }
        if (field >= 0) {
            if (f->seen & (1u << field)) return NULL;
            f->seen |= 1u << field;
        }
        if (*p == '"') {
            if ((p = plain_string(p, end, &value)) == NULL || field == F_TOPICS || field == F_REMOVED) return NULL;
            if (field >= 0) f->field[field] = value;
        } else if (*p == '[') {
            if (field != F_TOPICS) return NULL;
            p = skip_ws(p + 1, end);
            if (p < end && *p == ']') {
                p++;
            } else {
                for (;;) {
                    if (p >= end || *p != '"' || f->ntopics == MAX_TOPICS) return NULL;
                    if ((p = plain_string(p, end, &f->topics[f->ntopics++])) == NULL) return NULL;
                    p = skip_ws(p, end);
                    if (p < end && *p == ',') {
                        p = skip_ws(p + 1, end);
                        continue;
                    }
                    if (p < end && *p == ']') {
                        p++;
                        break;
                    }
                    return NULL;
                }
            }
        } else if (literal(p, end, "false", 5) || literal(p, end, "null", 4)) {
            if (field >= 0 && field != F_REMOVED) return NULL;
            p += *p == 'f' ? 5 : 4;
        } else if (literal(p, end, "true", 4)) {
            if (field >= 0) return NULL;
            p += 4;
        } else {
            return NULL; /* numbers, objects */
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        return p < end && *p == '}' ? p + 1 : NULL;
    }
}

static int text_eq(const text_t *t, PyObject *s) {
    return s != NULL && PyUnicode_Check(s) && PyUnicode_IS_ASCII(s) && PyUnicode_GET_LENGTH(s) == t->n &&
           memcmp(PyUnicode_DATA(s), t->p, (size_t)t->n) == 0;
}

/* quantity() of a text: "0x" and 1 to 15 hex digits, else -1. */
static long long text_quantity(const text_t *t) {
    if (t->p == NULL || t->n < 3 || t->n > 17 || t->p[0] != '0' || t->p[1] != 'x') return -1;
    long long v = 0;
    for (Py_ssize_t i = 2; i < t->n; i++) {
        uint8_t h = HEX[(unsigned char)t->p[i]];
        if (h == 0xFF) return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* position_part of a log read as text. */
static int text_position_part(const text_t *key_text, const text_t *number_text, PyObject *state, Py_ssize_t at,
                              PyObject **key, PyObject **hash, PyObject **number) {
    *key = NULL;
    if (key_text->p == NULL) return 0;
    if (text_eq(key_text, PyList_GET_ITEM(state, at))) {
        *hash = Py_NewRef(PyList_GET_ITEM(state, at + 1));
        *number = Py_NewRef(PyList_GET_ITEM(state, at + 2));
        return 1;
    }
    long long value = text_quantity(number_text);
    if (value < 0) return 0;
    *key = PyUnicode_FromStringAndSize(key_text->p, key_text->n);
    if (*key == NULL) return -1;
    *hash = ascii_lower(*key);
    *number = *hash == NULL ? NULL : PyLong_FromLongLong(value);
    if (*number == NULL) {
        Py_CLEAR(*key);
        Py_CLEAR(*hash);
        return -1;
    }
    return 2;
}

/* The ASCII text of a topic if it is "0x" and 64 hex digits, else NULL. */
static const char *text_topic(const text_t *t) {
    if (t->n != 66 || t->p[0] != '0' || t->p[1] != 'x' || !all_hex(t->p + 2, 64, 0)) return NULL;
    return t->p;
}

/* fast_row of a log read as text: the row, or NULL with no exception set if it is not canonical. */
static PyObject *text_row(const layout_t *l, const log_text *f, PyObject *topic0, PyObject *address,
                          PyObject *type_index, PyObject *state) {
    const text_t *data = &f->field[F_DATA];
    if (f->ntopics != l->topics || !text_eq(&f->topics[0], topic0) || !text_eq(&f->field[F_ADDRESS], address) ||
        data->n != 2 + 64 * (Py_ssize_t)l->data_words || data->p[0] != '0' || data->p[1] != 'x')
        return NULL;
    const char *tp[MAX_TOPICS] = {NULL}, *d = data->p + 2;
    for (int i = 1; i < l->topics; i++) {
        const char *t = text_topic(&f->topics[i]);
        if (t == NULL) return NULL;
        tp[i] = t + 2;
    }
    long long li = text_quantity(&f->field[F_LOG_INDEX]);
    if (li < 0 || !all_hex(d, 64 * (Py_ssize_t)l->data_words, 1)) return NULL;
    PyObject *bkey, *bhash = NULL, *bnum = NULL, *tkey, *thash = NULL, *tnum = NULL;
    int b = text_position_part(&f->field[F_BLOCK_HASH], &f->field[F_BLOCK_NUMBER], state, 0, &bkey, &bhash, &bnum);
    if (b <= 0) return NULL;
    int t = text_position_part(&f->field[F_TX_HASH], &f->field[F_TX_INDEX], state, 3, &tkey, &thash, &tnum);
    if (t <= 0) {
        Py_XDECREF(bkey);
        Py_DECREF(bhash);
        Py_DECREF(bnum);
        return NULL;
    }
    PyObject *parts[2][3] = {{bkey, bhash, bnum}, {tkey, thash, tnum}};
    int fresh[2] = {bkey != NULL, tkey != NULL};
    PyObject *row = row_of(fields_tuple(l, tp, d), li, type_index, address, state, parts, fresh);
    Py_XDECREF(bkey);
    Py_XDECREF(tkey);
    Py_DECREF(bhash);
    Py_DECREF(bnum);
    Py_DECREF(thash);
    Py_DECREF(tnum);
    return row;
}

/* loads(the log object's bytes): a new reference, or NULL with the exception set. */
static PyObject *loads_log(PyObject *loads, const log_text *f) {
    PyObject *bytes = PyBytes_FromStringAndSize(f->start, f->end - f->start);
    if (bytes == NULL) return NULL;
    PyObject *parsed = PyObject_CallOneArg(loads, bytes);
    Py_DECREF(bytes);
    return parsed;
}

static PyObject *decode_response_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 9 || !PyBytes_Check(args[4]) || !PyLong_Check(args[5]) || !PyList_Check(args[6]) ||
        PyList_GET_SIZE(args[6]) != 6) {
        PyErr_SetString(PyExc_TypeError, "decode_response_rows(layout, topic0, address, type_index, raw: bytes, "
                                         "request_id: int, state: list of 6, one, loads)");
        return NULL;
    }
    const layout_t *l = get_layout(args[0]);
    if (l == NULL) return NULL;
    PyObject *topic0 = args[1], *address = args[2], *type_index = args[3], *raw = args[4], *state = args[6];
    PyObject *one = args[7], *loads = args[8];
    long long request_id = PyLong_AsLongLong(args[5]);
    if (request_id == -1 && PyErr_Occurred()) return NULL;
    const char *p = PyBytes_AS_STRING(raw), *end = p + PyBytes_GET_SIZE(raw);

    /* the envelope, up to the array */
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":", tail[] = ",\"result\":";
    char id_text[32];
    int id_len = snprintf(id_text, sizeof id_text, "%lld", request_id);
    p = skip_ws(p, end);
    if (end - p < (Py_ssize_t)(sizeof head - 1 + id_len + sizeof tail - 1) || memcmp(p, head, sizeof head - 1) != 0)
        Py_RETURN_NONE;
    p += sizeof head - 1;
    if (memcmp(p, id_text, (size_t)id_len) != 0) Py_RETURN_NONE;
    p += id_len;
    if (memcmp(p, tail, sizeof tail - 1) != 0) Py_RETURN_NONE;
    p = skip_ws(p + sizeof tail - 1, end);
    if (p >= end || *p != '[') Py_RETURN_NONE;
    p = skip_ws(p + 1, end);

    /* pass 1: each object's bytes, read or parsed by loads; the array's and the envelope's end */
    Py_ssize_t count = 0, capacity = 0;
    log_text *logs = NULL;
    PyObject **parsed = NULL; /* loads(object) where the object is not plain */
    PyObject *out = NULL, *last = NULL, *result = NULL;
    int well_formed = 0;
    if (p < end && *p == ']') {
        p++;
        well_formed = 1;
    } else {
        while (p < end && *p == '{') {
            if (count == capacity) {
                Py_ssize_t grown = capacity ? 2 * capacity : 1024;
                log_text *l = PyMem_Realloc(logs, (size_t)grown * sizeof *logs);
                if (l == NULL) goto nomem;
                logs = l;
                PyObject **q = PyMem_Realloc(parsed, (size_t)grown * sizeof *parsed);
                if (q == NULL) goto nomem;
                parsed = q;
                capacity = grown;
            }
            log_text *f = &logs[count];
            memset(f, 0, sizeof *f);
            f->start = p;
            const char *close = read_log(f, p, end);
            f->plain = close != NULL;
            if (close == NULL && (close = container_end(p, end)) == NULL) break;
            f->end = close;
            parsed[count++] = NULL;
            p = skip_ws(close, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == ']') {
                p++;
                well_formed = 1;
            }
            break;
        }
    }
    if (well_formed) {
        p = skip_ws(p, end);
        well_formed = p < end && *p == '}' && skip_ws(p + 1, end) == end;
    }
    for (Py_ssize_t i = 0; well_formed && i < count; i++) {
        if (logs[i].plain) continue;
        if ((parsed[i] = loads_log(loads, &logs[i])) == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) goto fail;
            PyErr_Clear(); /* not JSON: the caller parses the answer whole and reports it */
            well_formed = 0;
        }
    }
    if (!well_formed) {
        result = Py_NewRef(Py_None);
        goto done;
    }

    /* pass 2: the rows, in order */
    out = PyList_New(0);
    if (out == NULL) goto fail;
    int in_order = 1;
    long long skipped = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = logs[i].plain ? text_row(l, &logs[i], topic0, address, type_index, state) : NULL;
        if (row == NULL && !PyErr_Occurred()) {
            if (parsed[i] == NULL && (parsed[i] = loads_log(loads, &logs[i])) == NULL) goto fail;
            PyObject *call[2] = {parsed[i], state};
            row = PyObject_Vectorcall(one, call, 2, NULL);
        }
        if (row == NULL || collect_row(out, row, &last, &in_order, &skipped) < 0) goto fail;
    }
    result = Py_BuildValue("(NOLn)", out, in_order ? Py_True : Py_False, skipped, count);
    out = NULL;
    goto done;
nomem:
    PyErr_NoMemory();
fail:
    result = NULL;
done:
    for (Py_ssize_t i = 0; i < count; i++) Py_XDECREF(parsed[i]);
    PyMem_Free(parsed);
    PyMem_Free(logs);
    Py_XDECREF(out);
    Py_XDECREF(last);
    return result;
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
    {"layout", py_layout, METH_VARARGS,
     "layout(topics, data_words, fields): the compiled form of an event's layout (indexer/layout.py descriptor())."},
    {"event_fields", (PyCFunction)(void (*)(void))event_fields, METH_FASTCALL,
     "event_fields(layout, fallback, topics, data): the event's fields in dataclass order;\n"
     "fallback(topics, data) makes them for a log that is not in canonical form."},
    {"decode_item_rows", (PyCFunction)(void (*)(void))decode_item_rows, METH_FASTCALL,
     "decode_item_rows(layout, topic0, address, type_index, logs, state, one) -> (rows, in_order, skipped)."},
    {"decode_response_rows", (PyCFunction)(void (*)(void))decode_response_rows, METH_FASTCALL,
     "decode_response_rows(layout, topic0, address, type_index, raw, request_id, state, one, loads)\n"
     "-> (rows, in_order, skipped, logs), or None if the answer is not of the form it reads."},
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
