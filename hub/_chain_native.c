/* Links of the tamper-evidence hash chain, many at a time (see hub/chain.py for the format).
 *
 * links(previous, seq, records, seq_header, hash_header) -> (headers, last)
 *
 *   previous     the 32-byte hash of the partition's head
 *   seq          the head's sequence number (the first record becomes seq + 1)
 *   records      a list of (key, value) tuples, each bytes or None
 *   seq_header   the name of the sequence header (str)
 *   hash_header  the name of the hash header (str)
 *
 * Returns the record headers, one list [(seq_header, b"<seq>"), (hash_header, b"<hex>")] per
 * record, and the hash of the last link (previous itself when records is empty). The bytes
 * hashed are those of hub.chain.link_hash; tests/unit/test_chain.py compares both.
 *
 * SHA-256 comes from OpenSSL's libcrypto, the one Python's hashlib uses. Per record this
 * takes about a tenth of the Python linker's time, which a snapshot spent 11% of its CPU on.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>

static const EVP_MD *sha256;

static int
bytes_or_none(PyObject *obj, const char **data, Py_ssize_t *size)
{
    if (obj == Py_None) {
        *data = NULL;
        *size = -1;
        return 0;
    }
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "chain link: key and value must be bytes or None, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *data = PyBytes_AS_STRING(obj);
    *size = PyBytes_GET_SIZE(obj);
    return 0;
}

static void
be32(unsigned char *out, Py_ssize_t size)
{
    uint32_t n = (uint32_t)(int32_t)size; /* -1 (no key, a tombstone) is 0xffffffff */
    out[0] = (unsigned char)(n >> 24);
    out[1] = (unsigned char)(n >> 16);
    out[2] = (unsigned char)(n >> 8);
    out[3] = (unsigned char)n;
}

static void
be64(unsigned char *out, unsigned long long n)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)n;
        n >>= 8;
    }
}

static PyObject *
header(PyObject *name, const char *value, Py_ssize_t size)
{
    PyObject *bytes = PyBytes_FromStringAndSize(value, size);
    if (bytes == NULL)
        return NULL;
    PyObject *pair = PyTuple_Pack(2, name, bytes);
    Py_DECREF(bytes);
    return pair;
}

static int
digest_link(EVP_MD_CTX *ctx, const unsigned char *previous, PyObject *record,
            unsigned long long seq, unsigned char *out)
{
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 2) {
        PyErr_SetString(PyExc_TypeError, "chain link: each record must be a (key, value) tuple");
        return -1;
    }
    const char *key, *value;
    Py_ssize_t key_size, value_size;
    if (bytes_or_none(PyTuple_GET_ITEM(record, 0), &key, &key_size) < 0 ||
        bytes_or_none(PyTuple_GET_ITEM(record, 1), &value, &value_size) < 0)
        return -1;
    if (key_size > INT32_MAX || value_size > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "chain link: a key or value above 2 GiB");
        return -1;
    }
    unsigned char key_len[4], value_len[4], seq_bytes[8];
    be32(key_len, key_size);
    be32(value_len, value_size);
    be64(seq_bytes, seq);
    unsigned int length = 0;
    int ok = EVP_DigestInit_ex(ctx, sha256, NULL) && EVP_DigestUpdate(ctx, previous, 32) &&
             EVP_DigestUpdate(ctx, key_len, 4) &&
             (key_size <= 0 || EVP_DigestUpdate(ctx, key, (size_t)key_size)) &&
             EVP_DigestUpdate(ctx, value_len, 4) &&
             (value_size <= 0 || EVP_DigestUpdate(ctx, value, (size_t)value_size)) &&
             EVP_DigestUpdate(ctx, seq_bytes, 8) && EVP_DigestFinal_ex(ctx, out, &length);
    if (!ok || length != 32) {
        PyErr_SetString(PyExc_RuntimeError, "chain link: OpenSSL's SHA-256 failed");
        return -1;
    }
    return 0;
}

static PyObject *
link_headers(PyObject *seq_name, PyObject *hash_name, unsigned long long seq, const unsigned char *digest)
{
    static const char hexdigits[] = "0123456789abcdef";
    char hex[64], digits[24];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 15];
    }
    int digits_len = snprintf(digits, sizeof digits, "%llu", seq);
    PyObject *list = PyList_New(2);
    if (list == NULL)
        return NULL;
    PyObject *first = header(seq_name, digits, digits_len);
    if (first == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    PyList_SET_ITEM(list, 0, first);
    PyObject *second = header(hash_name, hex, 64);
    if (second == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    PyList_SET_ITEM(list, 1, second);
    return list;
}

static PyObject *
links(PyObject *self, PyObject *args)
{
    const char *previous;
    Py_ssize_t previous_size;
    unsigned long long seq;
    PyObject *records, *seq_name, *hash_name;
    if (!PyArg_ParseTuple(args, "y#KO!UU", &previous, &previous_size, &seq, &PyList_Type, &records,
                          &seq_name, &hash_name))
        return NULL;
    if (previous_size != 32) {
        PyErr_SetString(PyExc_ValueError, "chain link: the previous hash must be 32 bytes");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    PyObject *all = PyList_New(count);
    if (all == NULL)
        return NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        Py_DECREF(all);
        return PyErr_NoMemory();
    }
    unsigned char head[32], next[32];
    memcpy(head, previous, 32);
    for (Py_ssize_t i = 0; i < count; i++) {
        seq += 1;
        if (digest_link(ctx, head, PyList_GET_ITEM(records, i), seq, next) < 0)
            goto fail;
        PyObject *headers = link_headers(seq_name, hash_name, seq, next);
        if (headers == NULL)
            goto fail;
        PyList_SET_ITEM(all, i, headers);
        memcpy(head, next, 32);
    }
    EVP_MD_CTX_free(ctx);
    PyObject *last = PyBytes_FromStringAndSize((const char *)head, 32);
    if (last == NULL) {
        Py_DECREF(all);
        return NULL;
    }
    return Py_BuildValue("(NN)", all, last);
fail:
    EVP_MD_CTX_free(ctx);
    Py_DECREF(all);
    return NULL;
}

static PyMethodDef methods[] = {
    {"links", links, METH_VARARGS, "Chain headers for records after a head, and the last hash."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_chain_native", "The hash chain's links in C (hub/chain.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__chain_native(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    /* fetched once: EVP_sha256() would be looked up again by every EVP_DigestInit_ex */
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    sha256 = EVP_sha256();
#endif
    if (sha256 == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    return PyModule_Create(&module);
}
