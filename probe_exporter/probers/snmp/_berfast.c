/* The varbind-list reader of ber.py (`_varbinds_python`), in C.
 *
 * In Python a varbind costs ~1.9-2.9 us to decode (a slice, a tuple and a dozen bytecodes per field);
 * with this, bench/snmp/bench_decode.py measures 0.5 us a varbind, the packet's header (still read in
 * Python) included. It is an optional build: without a C compiler the package installs without it
 * and ber.py reads varbinds in Python.
 *
 * Contract, checked by tests/probers/snmp/test_ber_fast.py on mutated and random packets: for any
 * input, this returns exactly what the Python reader returns, and raises (BerError) exactly when
 * the Python reader raises (BerError, IndexError or ValueError). Values whose tag it does not read
 * itself (Opaque, types snmp_exporter does not know, INTEGER longer than 8 bytes) go to
 * the Python reader's `_value`, so their rules live in one place.
 *
 * Every read is checked against the buffer's length before it happens: a hostile agent's packet can
 * only make this raise.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Set by configure(): ber.BerError, ber._value, and the value kinds of values.py. */
static PyObject *ber_error = NULL;
static PyObject *fallback = NULL;
static PyObject *kind_integer, *kind_unsigned, *kind_counter64, *kind_octets, *kind_oid, *kind_ipaddress;
/* (NULL, None), (NO_SUCH, None), (END_OF_MIB, None): immutable, shared by every such varbind. */
static PyObject *pair_null, *pair_no_such, *pair_end_of_mib;

/* gosnmp's bound on one OID arc: 5 bytes (35 bits), as ber.py's _MAX_ARC_BYTES. */
#define MAX_ARC_BYTES 5

static int fail(const char *message) {
    PyErr_SetString(ber_error, message);
    return -1;
}

/* A TLV's content at `pos`: [*start, *stop). Raises where ber.tlv() or the short-form reads of
 * _varbinds_python raise; `end` is the bound the caller checks afterwards, not here. */
static int read_tlv(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t *start,
                    Py_ssize_t *stop) {
    if (pos + 1 >= size) {
        return fail("truncated message");
    }
    unsigned int first = data[pos + 1];
    if (first < 0x80) {
        *start = pos + 2;
        *stop = *start + first;
        return 0;
    }
    unsigned int count = first & 0x7F;
    if (count == 0 || count > 4) {
        return fail("unsupported BER length");
    }
    if (pos + 2 + (Py_ssize_t)count > size) {
        return fail("truncated message");
    }
    uint64_t length = 0;
    for (unsigned int i = 0; i < count; i++) {
        length = (length << 8) | data[pos + 2 + i];
    }
    *start = pos + 2 + count;
    *stop = *start + (Py_ssize_t)length;
    if (*stop > size) {
        return fail("truncated message");
    }
    return 0;
}

/* The arcs of an OID's content, as ber.decode_oid reads them; returns the arc count or -1. The first
 * byte group is split into two arcs, so `arcs` must have room for len + 1. */
static Py_ssize_t oid_arcs(const unsigned char *raw, Py_ssize_t len, uint64_t *arcs) {
    if (len == 0) {
        return fail("empty OID");
    }
    if (raw[len - 1] & 0x80) {
        return fail("truncated OID");
    }
    Py_ssize_t count = 1; /* arcs[0] is the first arc, filled from the first group below */
    uint64_t value = 0;
    int continued = 0;
    int first_group = 1;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char byte = raw[i];
        value = (value << 7) | (byte & 0x7F);
        if (byte & 0x80) {
            if (++continued >= MAX_ARC_BYTES) {
                return fail("OID arc too large");
            }
            continue;
        }
        if (first_group) {
            first_group = 0;
            if (value < 40) {
                arcs[0] = 0;
                arcs[1] = value;
            } else if (value < 80) {
                arcs[0] = 1;
                arcs[1] = value - 40;
            } else {
                arcs[0] = 2;
                arcs[1] = value - 80;
            }
            count = 2;
        } else {
            arcs[count++] = value;
        }
        value = 0;
        continued = 0;
    }
    return count;
}

static PyObject *oid_tuple(const unsigned char *raw, Py_ssize_t len) {
    uint64_t stack_arcs[64];
    uint64_t *arcs = len + 1 <= 64 ? stack_arcs : PyMem_Malloc(sizeof(uint64_t) * (size_t)(len + 1));
    if (arcs == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    Py_ssize_t count = oid_arcs(raw, len, arcs);
    if (count >= 0) {
        result = PyTuple_New(count);
        for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
            PyObject *arc = PyLong_FromUnsignedLongLong(arcs[i]);
            if (arc == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyTuple_SET_ITEM(result, i, arc);
        }
    }
    if (arcs != stack_arcs) {
        PyMem_Free(arcs);
    }
    return result;
}

/* ".".join(map(str, arcs)) of an OID value (snmp_exporter's OID values lose the leading dot). */
static PyObject *oid_text(const unsigned char *raw, Py_ssize_t len) {
    uint64_t stack_arcs[64];
    char stack_text[64 * 12];
    uint64_t *arcs = len + 1 <= 64 ? stack_arcs : PyMem_Malloc(sizeof(uint64_t) * (size_t)(len + 1));
    /* An arc is at most 35 bits: 11 digits and a dot. */
    char *text = len + 1 <= 64 ? stack_text : PyMem_Malloc((size_t)(len + 1) * 12);
    PyObject *result = NULL;
    if (arcs == NULL || text == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t count = oid_arcs(raw, len, arcs);
    if (count < 0) {
        goto done;
    }
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i) {
            text[used++] = '.';
        }
        char digits[24];
        int n = 0;
        uint64_t value = arcs[i];
        do {
            digits[n++] = (char)('0' + value % 10);
            value /= 10;
        } while (value);
        while (n) {
            text[used++] = digits[--n];
        }
    }
    result = PyUnicode_DecodeASCII(text, used, NULL);
done:
    if (arcs != NULL && arcs != stack_arcs) {
        PyMem_Free(arcs);
    }
    if (text != NULL && text != stack_text) {
        PyMem_Free(text);
    }
    return result;
}

/* ".".join(map(str, raw)) if raw else "" */
static PyObject *ip_text(const unsigned char *raw, Py_ssize_t len) {
    char stack_text[64];
    char *text = len * 4 <= 64 ? stack_text : PyMem_Malloc((size_t)len * 4);
    if (text == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (i) {
            text[used++] = '.';
        }
        unsigned int byte = raw[i];
        if (byte >= 100) {
            text[used++] = (char)('0' + byte / 100);
        }
        if (byte >= 10) {
            text[used++] = (char)('0' + byte / 10 % 10);
        }
        text[used++] = (char)('0' + byte % 10);
    }
    PyObject *result = PyUnicode_DecodeASCII(text, used, NULL);
    if (text != stack_text) {
        PyMem_Free(text);
    }
    return result;
}

/* The low `width` bytes of a big-endian number (int.from_bytes(raw) & mask). */
static uint64_t low_bytes(const unsigned char *raw, Py_ssize_t len, Py_ssize_t width) {
    uint64_t value = 0;
    for (Py_ssize_t i = len > width ? len - width : 0; i < len; i++) {
        value = (value << 8) | raw[i];
    }
    return value;
}

static PyObject *pair(PyObject *kind, PyObject *value) {
    if (value == NULL) {
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    Py_INCREF(kind);
    PyTuple_SET_ITEM(result, 0, kind);
    PyTuple_SET_ITEM(result, 1, value);
    return result;
}

static PyObject *python_value(unsigned int tag, const unsigned char *raw, Py_ssize_t len) {
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)raw, len);
    if (bytes == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallFunction(fallback, "IO", tag, bytes);
    Py_DECREF(bytes);
    return result;
}

/* ber._value: (kind, value) of one varbind value. */
static PyObject *value_of(unsigned int tag, const unsigned char *raw, Py_ssize_t len) {
    switch (tag) {
    case 0x41: /* Counter32 */
    case 0x42: /* Gauge32 / Unsigned32 */
    case 0x43: /* TimeTicks */
        return pair(kind_unsigned, PyLong_FromUnsignedLongLong(low_bytes(raw, len, 4)));
    case 0x02: /* INTEGER */
        if (len > 8) {
            return python_value(tag, raw, len);
        }
        if (len == 0) {
            return pair(kind_integer, PyLong_FromLong(0));
        } else {
            uint64_t value = low_bytes(raw, len, 8);
            if (len < 8 && (raw[0] & 0x80)) {
                value |= ~(uint64_t)0 << (8 * len); /* sign-extend */
            }
            return pair(kind_integer, PyLong_FromLongLong((long long)value));
        }
    case 0x04: /* OCTET STRING */
        return pair(kind_octets, PyBytes_FromStringAndSize((const char *)raw, len));
    case 0x06: /* OBJECT IDENTIFIER */
        return pair(kind_oid, oid_text(raw, len));
    case 0x46: /* Counter64: the low 8 bytes, as the Python reader's mask keeps */
        return pair(kind_counter64, PyLong_FromUnsignedLongLong(low_bytes(raw, len, 8)));
    case 0x40: /* IpAddress */
        return pair(kind_ipaddress, ip_text(raw, len));
    case 0x05:
        Py_INCREF(pair_null);
        return pair_null;
    case 0x80:
    case 0x81:
        Py_INCREF(pair_no_such);
        return pair_no_such;
    case 0x82:
        Py_INCREF(pair_end_of_mib);
        return pair_end_of_mib;
    default: /* Opaque, and types snmp_exporter does not know (counted there) */
        return python_value(tag, raw, len);
    }
}

static PyObject *varbinds(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_berfast.configure() was not called");
        return NULL;
    }
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "varbinds(data: bytes, pos: int, end: int)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (pos < 0 || end > size) {
        PyErr_SetString(PyExc_ValueError, "varbind list outside the message");
        return NULL;
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    while (pos < end) {
        Py_ssize_t vb_start, vb_end, oid_start, oid_end, value_start, value_end;
        if (read_tlv(data, size, pos, &vb_start, &vb_end) < 0
            || read_tlv(data, size, vb_start, &oid_start, &oid_end) < 0) {
            goto error;
        }
        if (oid_end >= size) {
            fail("truncated message");
            goto error;
        }
        unsigned int value_tag = data[oid_end];
        if (read_tlv(data, size, oid_end, &value_start, &value_end) < 0) {
            goto error;
        }
        if (value_end > vb_end || vb_end > end) {
            fail("truncated message");
            goto error;
        }
        PyObject *oid = oid_tuple(data + oid_start, oid_end - oid_start);
        if (oid == NULL) {
            goto error;
        }
        PyObject *value = value_of(value_tag, data + value_start, value_end - value_start);
        if (value == NULL) {
            Py_DECREF(oid);
            goto error;
        }
        PyObject *varbind = PyTuple_New(2);
        if (varbind == NULL) {
            Py_DECREF(oid);
            Py_DECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(varbind, 0, oid);
        PyTuple_SET_ITEM(varbind, 1, value);
        int appended = PyList_Append(list, varbind);
        Py_DECREF(varbind);
        if (appended < 0) {
            goto error;
        }
        pos = vb_end;
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *error, *value_fallback, *integer, *unsigned_, *counter64, *octets, *oid, *ipaddress, *null, *no_such,
        *end_of_mib;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOO", &error, &value_fallback, &integer, &unsigned_, &counter64, &octets,
                          &oid, &ipaddress, &null, &no_such, &end_of_mib)) {
        return NULL;
    }
    PyObject *new_null = PyTuple_Pack(2, null, Py_None);
    PyObject *new_no_such = PyTuple_Pack(2, no_such, Py_None);
    PyObject *new_end = PyTuple_Pack(2, end_of_mib, Py_None);
    if (new_null == NULL || new_no_such == NULL || new_end == NULL) {
        Py_XDECREF(new_null);
        Py_XDECREF(new_no_such);
        Py_XDECREF(new_end);
        return NULL;
    }
    Py_INCREF(error);
    Py_XSETREF(ber_error, error);
    Py_INCREF(value_fallback);
    Py_XSETREF(fallback, value_fallback);
    Py_INCREF(integer);
    Py_XSETREF(kind_integer, integer);
    Py_INCREF(unsigned_);
    Py_XSETREF(kind_unsigned, unsigned_);
    Py_INCREF(counter64);
    Py_XSETREF(kind_counter64, counter64);
    Py_INCREF(octets);
    Py_XSETREF(kind_octets, octets);
    Py_INCREF(oid);
    Py_XSETREF(kind_oid, oid);
    Py_INCREF(ipaddress);
    Py_XSETREF(kind_ipaddress, ipaddress);
    Py_XSETREF(pair_null, new_null);
    Py_XSETREF(pair_no_such, new_no_such);
    Py_XSETREF(pair_end_of_mib, new_end);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"varbinds", (PyCFunction)(void (*)(void))varbinds, METH_FASTCALL,
     "varbinds(data, pos, end): the varbind list data[pos:end], as ber._varbinds_python reads it."},
    {"configure", configure, METH_VARARGS,
     "configure(BerError, value_fallback, INTEGER, UNSIGNED, COUNTER64, OCTETS, OID, IPADDRESS, NULL, NO_SUCH, "
     "END_OF_MIB)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_berfast", "The varbind-list reader of ber.py, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__berfast(void) {
    return PyModule_Create(&module_def);
}
