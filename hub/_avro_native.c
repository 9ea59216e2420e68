/* Avro binary encoding of hub.avro_program programs, in C.
 *
 * The same contract as hub/avro_codec.py's Python encoder, which stays the reference and the
 * fallback: a datum whose Python type is not the plain one for its Avro type raises the
 * Unencodable class given to the Encoder, and the caller hands that datum to the Python
 * encoder, then to fastavro, which decides what is accepted and words every error. So this
 * file only has to be right for plain values; tests/unit/test_avro_native.py checks its bytes
 * against fastavro's. Built as an optional extension: without a compiler the hub runs on the
 * Python encoder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

enum {
    OP_NULL, OP_BOOLEAN, OP_INT, OP_LONG, OP_FLOAT, OP_DOUBLE, OP_BYTES, OP_STRING,
    OP_FIXED, OP_ENUM, OP_RECORD, OP_REF, OP_UNION, OP_ARRAY, OP_MAP,
    OP_DECIMAL, OP_DATE, OP_TS_MICROS, OP_TS_MILLIS, OP_TIME_MICROS, OP_UUID
};

static const char *const OP_NAMES[] = {
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    "fixed", "enum", "record", "ref", "union", "array", "map",
    "decimal", "date", "timestamp-micros", "timestamp-millis", "time-micros", "uuid", NULL
};

typedef struct Node Node;
struct Node {
    int op;
    Py_ssize_t count;     /* record: fields; fixed: size; decimal: scale; ref: slot */
    int precision;        /* decimal */
    int64_t null_tag;     /* union: branch index of null, -1 if none */
    int64_t other_tag;    /* union: branch index of the other branch */
    PyObject *names;      /* record: tuple of field names; enum: dict symbol -> index;
                             union: dict branch name -> k, for fastavro's (name, value) hints */
    Node **children;      /* record: its fields; array, map: one; union: the other branch,
                             then each hinted branch k at 1 + k */
    int64_t *tags;        /* union: the branch index of hinted branch k */
};

typedef struct {
    PyObject_HEAD
    Node **nodes;         /* every node, to free them */
    Py_ssize_t n_nodes, cap_nodes;
    Node **records;       /* by slot */
    Py_ssize_t n_records;
    Node *root;
    PyObject *unencodable;
    PyObject *decimal_type;
    PyObject *uuid_type;
} Encoder;

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char inline_data[512];
} Buf;

/* -- output buffer ------------------------------------------------------------------ */

static int buf_grow(Buf *b, Py_ssize_t extra) {
    Py_ssize_t want = b->len + extra;
    if (want <= b->cap) return 0;
    Py_ssize_t cap = b->cap * 2 > want ? b->cap * 2 : want;
    char *data;
    if (b->data == b->inline_data) {
        data = PyMem_Malloc(cap);
        if (data != NULL) memcpy(data, b->data, b->len);
    } else {
        data = PyMem_Realloc(b->data, cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

#define RESERVE(b, n) do { if ((b)->len + (n) > (b)->cap && buf_grow((b), (n)) < 0) return -1; } while (0)

static int put_long(Buf *b, int64_t n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    RESERVE(b, 10);
    while (z >= 0x80) {
        b->data[b->len++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    b->data[b->len++] = (char)z;
    return 0;
}

static int put_raw(Buf *b, const char *data, Py_ssize_t size) {
    RESERVE(b, size);
    memcpy(b->data + b->len, data, size);
    b->len += size;
    return 0;
}

static int put_sized(Buf *b, const char *data, Py_ssize_t size) {
    if (put_long(b, size) < 0) return -1;
    return put_raw(b, data, size);
}

/* -- encoding ----------------------------------------------------------------------- */

static int unencodable(Encoder *e, const char *why) {
    PyErr_SetString(e->unencodable, why);
    return -1;
}

/* A Python error we do not word ourselves (overflow, a string with lone surrogates): the
 * Python encoder and fastavro see the same datum and decide. MemoryError is kept. */
static int hand_back(Encoder *e, const char *why) {
    if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError)) return -1;
    PyErr_Clear();
    return unencodable(e, why);
}

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int string_value(Encoder *e, PyObject *d, Buf *b) {
    if (!PyUnicode_CheckExact(d)) return unencodable(e, "not a str");
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(d, &size);
    if (utf8 == NULL) return hand_back(e, "not encodable as UTF-8");
    return put_sized(b, utf8, size);
}

/* Microseconds since the epoch of a datetime, naive ones read as UTC (as fastavro does). */
static int epoch_micros(Encoder *e, PyObject *d, int64_t *micros) {
    if (!PyDateTime_CheckExact(d)) return unencodable(e, "not a datetime");
    int64_t days = days_from_civil(PyDateTime_GET_YEAR(d), PyDateTime_GET_MONTH(d), PyDateTime_GET_DAY(d));
    int64_t seconds = days * 86400 + PyDateTime_DATE_GET_HOUR(d) * 3600 +
                      PyDateTime_DATE_GET_MINUTE(d) * 60 + PyDateTime_DATE_GET_SECOND(d);
    int64_t total = seconds * 1000000 + PyDateTime_DATE_GET_MICROSECOND(d);
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(d);
    if (tz != Py_None && tz != PyDateTime_TimeZone_UTC) {
        PyObject *offset = PyObject_CallMethod(d, "utcoffset", NULL);
        if (offset == NULL) return hand_back(e, "utcoffset() failed");
        if (!PyDelta_Check(offset)) {
            Py_DECREF(offset);
            return unencodable(e, "an aware datetime without an offset");
        }
        total -= ((int64_t)PyDateTime_DELTA_GET_DAYS(offset) * 86400 + PyDateTime_DELTA_GET_SECONDS(offset)) *
                     1000000 + PyDateTime_DELTA_GET_MICROSECONDS(offset);
        Py_DECREF(offset);
    }
    *micros = total;
    return 0;
}

/* A decimal's unscaled value as fastavro writes it: int.to_bytes((bit_length + 8) // 8, signed=True) */
static int put_unscaled(Buf *b, int64_t unscaled) {
    uint64_t magnitude = unscaled < 0 ? (uint64_t)(-unscaled) : (uint64_t)unscaled;
    int bits = magnitude ? 64 - __builtin_clzll(magnitude) : 0;
    int size = (bits + 8) / 8;
    char bytes[9];
    for (int i = 0; i < size; i++) bytes[size - 1 - i] = (char)((uint64_t)unscaled >> (8 * i));
    return put_sized(b, bytes, size);
}

/* The unscaled value of a Decimal from its str(), when that is plain [-]digits[.digits] with
 * `scale` digits after the point and at most min(precision, 18) significant ones: 1 when read,
 * 0 when the str is of another form (exponent, NaN, another scale...) and as_tuple() decides,
 * -1 on error. str() is about four times cheaper than as_tuple()'s named tuple of digits. */
static int decimal_from_str(Node *n, PyObject *d, int64_t *unscaled) {
    PyObject *s = PyObject_Str(d);
    if (s == NULL) return -1;
    Py_ssize_t len;
    const char *c = PyUnicode_AsUTF8AndSize(s, &len);
    if (c == NULL) {
        Py_DECREF(s);
        return -1;
    }
    Py_ssize_t i = 0, significant = 0, fraction = -1;
    int negative = 0, read = 1;
    int64_t value = 0;
    if (i < len && c[i] == '-') {
        negative = 1;
        i++;
    }
    if (i >= len) read = 0;
    for (; i < len && read; i++) {
        if (c[i] == '.' && fraction < 0 && i > 0 && c[i - 1] >= '0' && c[i - 1] <= '9') {
            fraction = 0;
            continue;
        }
        if (c[i] < '0' || c[i] > '9') {
            read = 0;
            break;
        }
        if (fraction >= 0) fraction++;
        if (significant || c[i] != '0') {
            if (++significant > 18 || significant > n->precision) {
                read = 0;
                break;
            }
            value = value * 10 + (c[i] - '0');
        }
    }
    if (fraction == 0 || (fraction < 0 ? 0 : fraction) != n->count) read = 0;
    Py_DECREF(s);
    if (read) *unscaled = negative ? -value : value;
    return read;
}

static int decimal_value(Encoder *e, Node *n, PyObject *d, Buf *b) {
    if ((PyObject *)Py_TYPE(d) != e->decimal_type) return unencodable(e, "not a Decimal");
    int64_t plain;
    int fast = decimal_from_str(n, d, &plain);
    if (fast < 0) return -1;
    if (fast) return put_unscaled(b, plain);
    PyObject *t = PyObject_CallMethod(d, "as_tuple", NULL);
    if (t == NULL) return hand_back(e, "as_tuple() failed");
    int rc = -1;
    PyObject *sign = PyTuple_GetItem(t, 0), *digits = PyTuple_GetItem(t, 1), *exponent = PyTuple_GetItem(t, 2);
    if (sign == NULL || digits == NULL || exponent == NULL || !PyTuple_Check(digits) || !PyLong_Check(exponent)) {
        rc = hand_back(e, "not a finite Decimal");
        goto done;
    }
    Py_ssize_t ndigits = PyTuple_GET_SIZE(digits);
    long exp = PyLong_AsLong(exponent);
    if (exp != -(long)n->count || ndigits > n->precision) {
        rc = hand_back(e, "not at the schema's scale and precision");
        goto done;
    }
    if (ndigits > 18) {  /* beyond int64: the Python encoder does it */
        rc = unencodable(e, "more than 18 digits");
        goto done;
    }
    int64_t unscaled = 0;
    for (Py_ssize_t i = 0; i < ndigits; i++) unscaled = unscaled * 10 + PyLong_AsLong(PyTuple_GET_ITEM(digits, i));
    if (PyLong_AsLong(sign)) unscaled = -unscaled;
    rc = put_unscaled(b, unscaled);
done:
    Py_DECREF(t);
    return rc;
}

/* What str(uuid.UUID(value)) gives back unchanged: 8-4-4-4-12 lowercase hex. Other spellings
 * are left to the Python encoder (same bytes as fastavro) and to the source-row converters. */
static int is_canonical_uuid(PyObject *d) {
    if (!PyUnicode_CheckExact(d) || PyUnicode_GET_LENGTH(d) != 36 || !PyUnicode_IS_ASCII(d)) return 0;
    const char *c = (const char *)PyUnicode_DATA(d);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c[i] != '-') return 0;
        } else if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int encode(Encoder *e, Node *n, PyObject *d, Buf *b);

static int record_value(Encoder *e, Node *n, PyObject *d, Buf *b) {
    if (!PyDict_CheckExact(d)) return unencodable(e, "a record is written from a dict");
    for (Py_ssize_t i = 0; i < n->count; i++) {
        PyObject *value = PyDict_GetItemWithError(d, PyTuple_GET_ITEM(n->names, i));
        if (value == NULL) return PyErr_Occurred() ? -1 : unencodable(e, "a field is missing");
        if (encode(e, n->children[i], value, b) < 0) return -1;
    }
    return 0;
}

static int encode(Encoder *e, Node *n, PyObject *d, Buf *b) {
    switch (n->op) {
    case OP_NULL:
        return d == Py_None ? 0 : unencodable(e, "not null");
    case OP_BOOLEAN:
        if (!PyBool_Check(d)) return unencodable(e, "not a bool");
        RESERVE(b, 1);
        b->data[b->len++] = d == Py_True ? 1 : 0;
        return 0;
    case OP_INT:
    case OP_LONG: {
        if (!PyLong_CheckExact(d)) return unencodable(e, "not an int");
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(d, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) return hand_back(e, "out of range");
        if (n->op == OP_INT && (v < INT32_MIN || v > INT32_MAX)) return unencodable(e, "not a 32-bit int");
        return put_long(b, v);
    }
    case OP_FLOAT:
    case OP_DOUBLE: {
        double v;
        if (PyFloat_CheckExact(d)) {
            v = PyFloat_AS_DOUBLE(d);
        } else if (PyLong_CheckExact(d)) {
            v = PyLong_AsDouble(d);
            if (v == -1.0 && PyErr_Occurred()) return hand_back(e, "out of range");
        } else {
            return unencodable(e, "not a number");
        }
        int size = n->op == OP_FLOAT ? 4 : 8;
        RESERVE(b, size);
        int rc = size == 4 ? PyFloat_Pack4(v, b->data + b->len, 1) : PyFloat_Pack8(v, b->data + b->len, 1);
        if (rc < 0) return hand_back(e, "out of range");
        b->len += size;
        return 0;
    }
    case OP_BYTES:
        if (!PyBytes_CheckExact(d)) return unencodable(e, "not bytes");
        return put_sized(b, PyBytes_AS_STRING(d), PyBytes_GET_SIZE(d));
    case OP_STRING:
        return string_value(e, d, b);
    case OP_FIXED:
        if (!PyBytes_CheckExact(d) || PyBytes_GET_SIZE(d) != n->count) return unencodable(e, "not the fixed size");
        return put_raw(b, PyBytes_AS_STRING(d), n->count);
    case OP_ENUM: {
        if (!PyUnicode_CheckExact(d)) return unencodable(e, "not a symbol of the enum");
        PyObject *index = PyDict_GetItemWithError(n->names, d);
        if (index == NULL) return PyErr_Occurred() ? -1 : unencodable(e, "not a symbol of the enum");
        return put_long(b, PyLong_AsLongLong(index));
    }
    case OP_RECORD:
        return record_value(e, n, d, b);
    case OP_REF:
        return record_value(e, e->records[n->count], d, b);
    case OP_UNION:
        if (d == Py_None) {
            if (n->null_tag < 0) return unencodable(e, "null for a union without null");
            return put_long(b, n->null_tag);
        }
        if (PyTuple_CheckExact(d)) {  /* fastavro's (branch name, value) hint */
            if (PyTuple_GET_SIZE(d) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(d, 0)))
                return unencodable(e, "a tuple that is not a (branch, value) hint");
            PyObject *k = PyDict_GetItemWithError(n->names, PyTuple_GET_ITEM(d, 0));
            if (k == NULL) return PyErr_Occurred() ? hand_back(e, "bad hint") : unencodable(e, "no such branch");
            Py_ssize_t i = PyLong_AsSsize_t(k);
            if (put_long(b, n->tags[i]) < 0) return -1;
            return encode(e, n->children[1 + i], PyTuple_GET_ITEM(d, 1), b);
        }
        if (put_long(b, n->other_tag) < 0) return -1;
        return encode(e, n->children[0], d, b);
    case OP_ARRAY: {
        if (!PyList_CheckExact(d)) return unencodable(e, "not a list");
        Py_ssize_t size = PyList_GET_SIZE(d);
        if (size > 0) {
            if (put_long(b, size) < 0) return -1;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(d); i++)
                if (encode(e, n->children[0], PyList_GET_ITEM(d, i), b) < 0) return -1;
        }
        return put_long(b, 0);
    }
    case OP_MAP: {
        if (!PyDict_CheckExact(d)) return unencodable(e, "not a dict");
        Py_ssize_t pos = 0, size = PyDict_GET_SIZE(d);
        PyObject *key, *value;
        if (size > 0) {
            if (put_long(b, size) < 0) return -1;
            while (PyDict_Next(d, &pos, &key, &value)) {
                if (string_value(e, key, b) < 0 || encode(e, n->children[0], value, b) < 0) return -1;
            }
        }
        return put_long(b, 0);
    }
    case OP_DECIMAL:
        return decimal_value(e, n, d, b);
    case OP_DATE:
        if (!PyDate_CheckExact(d)) return unencodable(e, "not a date");
        return put_long(b, days_from_civil(PyDateTime_GET_YEAR(d), PyDateTime_GET_MONTH(d), PyDateTime_GET_DAY(d)));
    case OP_TS_MICROS:
    case OP_TS_MILLIS: {
        int64_t micros;
        if (epoch_micros(e, d, &micros) < 0) return -1;
        return put_long(b, n->op == OP_TS_MICROS ? micros : floor_div(micros, 1000));
    }
    case OP_TIME_MICROS:
        if (!PyTime_CheckExact(d)) return unencodable(e, "not a time");
        return put_long(b, ((int64_t)(PyDateTime_TIME_GET_HOUR(d) * 60 + PyDateTime_TIME_GET_MINUTE(d)) * 60 +
                            PyDateTime_TIME_GET_SECOND(d)) * 1000000 + PyDateTime_TIME_GET_MICROSECOND(d));
    case OP_UUID: {
        if ((PyObject *)Py_TYPE(d) != e->uuid_type) {
            if (!is_canonical_uuid(d)) return unencodable(e, "not a canonical (lowercase) uuid");
            return string_value(e, d, b);
        }
        PyObject *text = PyObject_Str(d);
        if (text == NULL) return -1;
        int rc = string_value(e, text, b);
        Py_DECREF(text);
        return rc;
    }
    }
    PyErr_SetString(PyExc_SystemError, "unknown Avro program node");
    return -1;
}

/* -- building nodes from a program ---------------------------------------------------- */

static Node *new_node(Encoder *e, int op) {
    if (e->n_nodes == e->cap_nodes) {
        Py_ssize_t cap = e->cap_nodes ? e->cap_nodes * 2 : 16;
        Node **nodes = PyMem_Realloc(e->nodes, cap * sizeof(Node *));
        if (nodes == NULL) return (Node *)PyErr_NoMemory();
        e->nodes = nodes;
        e->cap_nodes = cap;
    }
    Node *n = PyMem_Calloc(1, sizeof(Node));
    if (n == NULL) return (Node *)PyErr_NoMemory();
    n->op = op;
    e->nodes[e->n_nodes++] = n;
    return n;
}

static Node *build(Encoder *e, PyObject *program);

static int with_children(Node *n, Py_ssize_t count) {
    n->children = PyMem_Calloc(count ? count : 1, sizeof(Node *));
    if (n->children == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int long_item(PyObject *program, Py_ssize_t i, Py_ssize_t *out) {
    PyObject *item = PyTuple_GetItem(program, i);
    if (item == NULL) return -1;
    *out = PyLong_AsSsize_t(item);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int set_record(Encoder *e, Py_ssize_t slot, Node *n) {
    if (slot < 0 || slot > 4096) {
        PyErr_SetString(PyExc_ValueError, "record slot out of range");
        return -1;
    }
    if (slot >= e->n_records) {
        Node **records = PyMem_Realloc(e->records, (slot + 1) * sizeof(Node *));
        if (records == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = e->n_records; i <= slot; i++) records[i] = NULL;
        e->records = records;
        e->n_records = slot + 1;
    }
    e->records[slot] = n;
    return 0;
}

/* A union's hints ({branch name: (index, node)}): names -> k, tags[k], children[1 + k]. */
static int union_hints(Encoder *e, Node *n, PyObject *hints) {
    if (hints == NULL || !PyDict_Check(hints)) {
        PyErr_SetString(PyExc_TypeError, "a union node ends with its hints dict");
        return -1;
    }
    Py_ssize_t count = PyDict_GET_SIZE(hints), pos = 0, k = 0;
    PyObject *name, *hint;
    n->names = PyDict_New();
    n->tags = PyMem_Calloc(count ? count : 1, sizeof(int64_t));
    if (n->names == NULL || n->tags == NULL || with_children(n, 1 + count) < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(hints, &pos, &name, &hint)) {
        Py_ssize_t index;
        if (!PyTuple_Check(hint) || PyTuple_GET_SIZE(hint) != 2 || long_item(hint, 0, &index) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a union hint is (index, node)");
            return -1;
        }
        PyObject *key = PyLong_FromSsize_t(k);
        if (key == NULL || PyDict_SetItem(n->names, name, key) < 0) {
            Py_XDECREF(key);
            return -1;
        }
        Py_DECREF(key);
        n->tags[k] = index;
        if ((n->children[1 + k] = build(e, PyTuple_GET_ITEM(hint, 1))) == NULL) return -1;
        k++;
    }
    return 0;
}

static Node *build(Encoder *e, PyObject *program) {
    if (!PyTuple_Check(program) || PyTuple_GET_SIZE(program) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(program, 0))) {
        PyErr_SetString(PyExc_TypeError, "an Avro program node is a tuple starting with its name");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(program, 0));
    if (name == NULL) return NULL;
    int op = -1;
    for (int i = 0; OP_NAMES[i] != NULL; i++)
        if (strcmp(OP_NAMES[i], name) == 0) op = i;
    if (op < 0) {
        PyErr_Format(PyExc_ValueError, "unknown Avro program node %s", name);
        return NULL;
    }
    Node *n = new_node(e, op);
    if (n == NULL) return NULL;
    Py_ssize_t value;
    switch (op) {
    case OP_FIXED:
    case OP_REF:
        if (long_item(program, 1, &n->count) < 0) return NULL;
        break;
    case OP_DECIMAL:
        if (long_item(program, 1, &n->count) < 0 || long_item(program, 2, &value) < 0) return NULL;
        n->precision = (int)value;
        break;
    case OP_ENUM:
        n->names = PyTuple_GetItem(program, 1);
        if (n->names == NULL || !PyDict_Check(n->names)) {
            PyErr_SetString(PyExc_TypeError, "an enum node holds a dict");
            return NULL;
        }
        Py_INCREF(n->names);
        break;
    case OP_RECORD: {
        PyObject *fields = PyTuple_GetItem(program, 2);
        if (long_item(program, 1, &value) < 0 || fields == NULL || !PyTuple_Check(fields)) return NULL;
        if (set_record(e, value, n) < 0) return NULL;
        n->count = PyTuple_GET_SIZE(fields);
        n->names = PyTuple_New(n->count);
        if (n->names == NULL || with_children(n, n->count) < 0) return NULL;
        for (Py_ssize_t i = 0; i < n->count; i++) {
            PyObject *field = PyTuple_GET_ITEM(fields, i);
            if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 2) {
                PyErr_SetString(PyExc_TypeError, "a record field is a (name, node) tuple");
                return NULL;
            }
            PyObject *field_name = PyTuple_GET_ITEM(field, 0);
            Py_INCREF(field_name);
            PyTuple_SET_ITEM(n->names, i, field_name);
            if ((n->children[i] = build(e, PyTuple_GET_ITEM(field, 1))) == NULL) return NULL;
        }
        break;
    }
    case OP_UNION:
        if (long_item(program, 1, &value) < 0) return NULL;
        n->null_tag = value;
        if (long_item(program, 2, &value) < 0) return NULL;
        n->other_tag = value;
        if (union_hints(e, n, PyTuple_GetItem(program, 4)) < 0) return NULL;
        if ((n->children[0] = build(e, PyTuple_GetItem(program, 3))) == NULL) return NULL;
        break;
    case OP_ARRAY:
    case OP_MAP:
        if (with_children(n, 1) < 0 || (n->children[0] = build(e, PyTuple_GetItem(program, 1))) == NULL) return NULL;
        break;
    }
    return n;
}

/* -- the Encoder type ------------------------------------------------------------------- */

static void free_nodes(Encoder *e) {
    for (Py_ssize_t i = 0; i < e->n_nodes; i++) {
        Py_XDECREF(e->nodes[i]->names);
        PyMem_Free(e->nodes[i]->children);
        PyMem_Free(e->nodes[i]->tags);
        PyMem_Free(e->nodes[i]);
    }
    PyMem_Free(e->nodes);
    PyMem_Free(e->records);
    e->nodes = NULL;
    e->records = NULL;
    e->n_nodes = e->cap_nodes = e->n_records = 0;
}

static int Encoder_init(Encoder *e, PyObject *args, PyObject *kwargs) {
    PyObject *program, *unencodable_type, *decimal_type, *uuid_type;
    static char *keywords[] = {"program", "unencodable", "decimal_type", "uuid_type", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO", keywords, &program, &unencodable_type, &decimal_type,
                                     &uuid_type))
        return -1;
    free_nodes(e);
    Py_XSETREF(e->unencodable, Py_NewRef(unencodable_type));
    Py_XSETREF(e->decimal_type, Py_NewRef(decimal_type));
    Py_XSETREF(e->uuid_type, Py_NewRef(uuid_type));
    e->root = build(e, program);
    if (e->root == NULL) return -1;
    for (Py_ssize_t i = 0; i < e->n_nodes; i++) {
        Node *n = e->nodes[i];
        if (n->op == OP_REF && (n->count >= e->n_records || e->records[n->count] == NULL)) {
            PyErr_SetString(PyExc_ValueError, "a ref to a record slot that was never defined");
            return -1;
        }
    }
    return 0;
}

static void Encoder_dealloc(Encoder *e) {
    free_nodes(e);
    Py_XDECREF(e->unencodable);
    Py_XDECREF(e->decimal_type);
    Py_XDECREF(e->uuid_type);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Encoder_encode(Encoder *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "encode(datum, prefix=b'')");
        return NULL;
    }
    if (e->root == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Encoder not initialised");
        return NULL;
    }
    Buf b;
    b.data = b.inline_data;
    b.len = 0;
    b.cap = sizeof(b.inline_data);
    PyObject *result = NULL;
    if (nargs == 2) {
        if (!PyBytes_Check(args[1])) {
            PyErr_SetString(PyExc_TypeError, "prefix must be bytes");
            return NULL;
        }
        if (put_raw(&b, PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1])) < 0) goto done;
    }
    if (encode(e, e->root, args[0], &b) == 0) result = PyBytes_FromStringAndSize(b.data, b.len);
done:
    if (b.data != b.inline_data) PyMem_Free(b.data);
    return result;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Encoder_encode, METH_FASTCALL,
     "encode(datum, prefix=b'') -> prefix + the datum's Avro binary encoding"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hub._avro_native.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(program, unencodable, decimal_type, uuid_type): Avro binary encoding in C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hub._avro_native", "Avro binary encoding of hub.avro_program programs, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__avro_native(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    if (PyType_Ready(&EncoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
