/* Decoding of MySQL text-protocol row packets, in C, for PyMySQL result sets.
 *
 * PyMySQL reads each field of each row in Python (a length-coded string, a decode, a
 * converter call): about 60% of the CPU of a MariaDB snapshot. decode_row() does the same
 * walk in C and gives the same tuple. Each column comes with a plan entry (kind, encoding,
 * converter), from connectors/mysql_rows.py: the kinds it parses itself (integers, doubles,
 * UTF-8 text, ISO dates and datetimes) fall back to the Python converter for any text they do
 * not recognise, so the values are always those PyMySQL's converters give;
 * tests/unit/test_mysql_rows.py compares the two. Optional: without a compiler, PyMySQL's
 * own row reader runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

enum { KIND_GENERIC, KIND_UTF8, KIND_INT, KIND_FLOAT, KIND_DATETIME, KIND_DATE };

/* The Python converter (with the column's encoding), as PyMySQL would call it. */
static PyObject *generic(const char *p, Py_ssize_t size, PyObject *encoding, PyObject *converter) {
    PyObject *value;
    if (encoding != Py_None) {
        const char *name = PyUnicode_AsUTF8(encoding);
        if (name == NULL) return NULL;
        value = PyUnicode_Decode(p, size, name, "strict");
    } else {
        value = PyBytes_FromStringAndSize(p, size);
    }
    if (value == NULL || converter == Py_None) return value;
    PyObject *converted = PyObject_CallOneArg(converter, value);
    Py_DECREF(value);
    return converted;
}

static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* YYYY-MM-DD */
static int parse_date(const char *p, int *y, int *m, int *d) {
    if (p[4] != '-' || p[7] != '-') return -1;
    if (digits(p, 4, y) < 0 || digits(p + 5, 2, m) < 0 || digits(p + 8, 2, d) < 0) return -1;
    return 0;
}

/* YYYY-MM-DD HH:MM:SS, then nothing, .fff or .ffffff (what datetime.fromisoformat reads the same) */
static PyObject *fast_datetime(const char *p, Py_ssize_t size) {
    int y, mo, d, h, mi, s, us = 0;
    if (size != 19 && size != 23 && size != 26) return NULL;
    if (parse_date(p, &y, &mo, &d) < 0 || p[10] != ' ' || p[13] != ':' || p[16] != ':') return NULL;
    if (digits(p + 11, 2, &h) < 0 || digits(p + 14, 2, &mi) < 0 || digits(p + 17, 2, &s) < 0) return NULL;
    if (size > 19) {
        if (p[19] != '.' || digits(p + 20, (int)size - 20, &us) < 0) return NULL;
        if (size == 23) us *= 1000;
    }
    PyObject *value = PyDateTime_FromDateAndTime(y, mo, d, h, mi, s, us);
    if (value == NULL) PyErr_Clear();  /* a zero or impossible date: the converter decides */
    return value;
}

static PyObject *fast_date(const char *p, Py_ssize_t size) {
    int y, m, d;
    if (size != 10 || parse_date(p, &y, &m, &d) < 0) return NULL;
    PyObject *value = PyDate_FromDate(y, m, d);
    if (value == NULL) PyErr_Clear();
    return value;
}

static PyObject *fast_int(const char *p, Py_ssize_t size) {
    Py_ssize_t i = 0;
    int negative = 0;
    if (size > 0 && p[0] == '-') {
        negative = 1;
        i = 1;
    }
    if (size - i < 1 || size - i > 18) return NULL;
    long long v = 0;
    for (; i < size; i++) {
        if (p[i] < '0' || p[i] > '9') return NULL;
        v = v * 10 + (p[i] - '0');
    }
    return PyLong_FromLongLong(negative ? -v : v);
}

static PyObject *fast_float(const char *p, Py_ssize_t size) {
    char buffer[64];
    if (size < 1 || size >= (Py_ssize_t)sizeof(buffer)) return NULL;
    for (Py_ssize_t i = 0; i < size; i++) {  /* digits, sign, point, exponent: nothing float() reads otherwise */
        char c = p[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) return NULL;
    }
    memcpy(buffer, p, size);
    buffer[size] = '\0';
    char *end;
    double v = PyOS_string_to_double(buffer, &end, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (end != buffer + size) return NULL;
    return PyFloat_FromDouble(v);
}

static PyObject *field(const char *p, Py_ssize_t size, PyObject *plan_entry) {
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(plan_entry, 0));
    PyObject *encoding = PyTuple_GET_ITEM(plan_entry, 1), *converter = PyTuple_GET_ITEM(plan_entry, 2);
    PyObject *value = NULL;
    switch (kind) {
    case KIND_UTF8:
        return PyUnicode_DecodeUTF8(p, size, "strict");
    case KIND_INT:
        value = fast_int(p, size);
        break;
    case KIND_FLOAT:
        value = fast_float(p, size);
        break;
    case KIND_DATETIME:
        value = fast_datetime(p, size);
        break;
    case KIND_DATE:
        value = fast_date(p, size);
        break;
    }
    if (value != NULL || PyErr_Occurred()) return value;
    return generic(p, size, encoding, converter);
}

static PyObject *decode_row(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "decode_row(packet data: bytes, position: int, plan: tuple)");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t length = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t position = PyLong_AsSsize_t(args[1]);
    PyObject *plan = args[2];
    Py_ssize_t columns = PyTuple_GET_SIZE(plan), count = 0;
    if (position < 0) return NULL;
    PyObject *row = PyTuple_New(columns);
    if (row == NULL) return NULL;
    for (; count < columns; count++) {
        if (position >= length) break;  /* a short row: PyMySQL stops there too */
        unsigned int c = data[position++];
        uint64_t size;
        int is_null = 0;
        if (c == 251 || c == 255) {
            is_null = 1;
        } else if (c < 251) {
            size = c;
        } else {
            int width = c == 252 ? 2 : c == 253 ? 3 : 8;
            if (position + width > length) goto truncated;
            size = 0;
            for (int i = width - 1; i >= 0; i--) size = (size << 8) | data[position + i];
            position += width;
        }
        PyObject *value;
        if (is_null) {
            value = Py_NewRef(Py_None);
        } else {
            if (size > (uint64_t)(length - position)) goto truncated;
            PyObject *entry = PyTuple_GET_ITEM(plan, count);
            if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) {
                PyErr_SetString(PyExc_TypeError, "a plan entry is (kind, encoding, converter)");
                goto fail;
            }
            value = field((const char *)data + position, (Py_ssize_t)size, entry);
            if (value == NULL) goto fail;
            position += (Py_ssize_t)size;
        }
        PyTuple_SET_ITEM(row, count, value);
    }
    if (count < columns && _PyTuple_Resize(&row, count) < 0) return NULL;
    return row;
truncated:
    PyErr_Format(PyExc_AssertionError, "Result length not requested length (a truncated row packet at %zd)",
                 position);
fail:
    Py_DECREF(row);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decode_row", (PyCFunction)(void (*)(void))decode_row, METH_FASTCALL,
     "decode_row(data, position, plan) -> the row's values, as PyMySQL's converters give them"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "connectors._mysql_rows", "MySQL text-protocol rows decoded in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__mysql_rows(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    return PyModule_Create(&module);
}
