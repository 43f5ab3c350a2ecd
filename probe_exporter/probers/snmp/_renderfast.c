/* render.py's `render_pdu` for its most common cases, in C, added to a family already in the response:
 * an unscaled gauge or counter whose value is a whole number, and an OctetString or DisplayString
 * metric without display hint or regex extracts (the row's labels and the string as one more label).
 *
 * In Python each such sample costs a few microseconds of bytecode (the label cache, the value,
 * Families.add's checks, LabelSet.with_label, the line's f-string and go_float); in a live worker at
 * 20 concurrent scrapes rendering was a third of the CPU. Everything else goes to the Python
 * `render_pdu` (the reference), unchanged: other metric types, scaled metrics, values of other types,
 * a family's first sample, a clash of HELP or TYPE, a duplicate series, strings that need escaping or
 * are not UTF-8, numbers this does not spell.
 * The labels of a row it has not seen yet are made by render.py's `_row_labels`, so the labelling
 * rules live in one place.
 *
 * Contract, checked by tests/probers/snmp/test_render_fast.py on the recorded round and on random
 * PDUs: the families (series, lines, order) and the errors are those of the Python path.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Set by configure(). */
static PyObject *python_render_pdu = NULL; /* render._render_pdu_python */
static PyObject *make_row_labels = NULL;   /* render._row_labels(plan, index, pdus, wrap) -> LabelSet */
static PyObject *go_float = NULL;          /* exposition.go_float, for the numbers spelled in Python */
static long kind_integer, kind_unsigned, kind_counter64, kind_octets, kind_oid, kind_ipaddress, kind_null;

static PyObject *s_fast, *s_families, *s_seen, *s_documentation, *s_type, *s_series, *s_key, *s_text, *s_labels;
static PyObject *s_names, *s_pieces, *s_gauge;

/* MetricPlan.fast's modes (plan.py). */
enum { MODE_NUMBER = 0, MODE_OCTET_STRING = 1, MODE_DISPLAY_STRING = 2 };

/* float64's mantissa: below it every whole number is exact, so its shortest digits are its own. */
#define EXACT_LIMIT 9007199254740992.0
#define WRAP_MASK ((UINT64_C(1) << 53) - 1)

/* Go's strconv.FormatFloat(v, 'g', -1, 64) for a whole number below 2^53 in magnitude, as
 * exposition.go_float spells it: plain below 1e6, else mantissa and a two-digit-minimum exponent. */
static void spell_whole(double number, char *out, size_t size) {
    long long whole = (long long)number;
    if (fabs(number) < 1e6) {
        snprintf(out, size, "%lld", whole);
        return;
    }
    char digits[24];
    int count = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(whole < 0 ? -whole : whole));
    int significant = count;
    while (significant > 1 && digits[significant - 1] == '0') {
        significant--;
    }
    const char *sign = whole < 0 ? "-" : "";
    if (significant == 1) {
        snprintf(out, size, "%s%ce+%02d", sign, digits[0], count - 1);
    } else {
        snprintf(out, size, "%s%c.%.*se+%02d", sign, digits[0], significant - 1, digits + 1, count - 1);
    }
}

/* A PDU value (kind, data) as values.py makes it: its kind and data; 0 for anything else. */
static int read_value(PyObject *value, long *tag, PyObject **data) {
    if (!PyTuple_CheckExact(value) || PyTuple_GET_SIZE(value) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(value, 0))) {
        return 0;
    }
    *tag = PyLong_AsLong(PyTuple_GET_ITEM(value, 0));
    if (*tag == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *data = PyTuple_GET_ITEM(value, 1);
    return 1;
}

/* The PDU's number, as render_pdu computes it for gauges and counters; 0 when C does not read this
 * value (the caller falls back). */
static int pdu_number(PyObject *value, int wrap, double *number) {
    long tag;
    PyObject *data;
    if (!read_value(value, &tag, &data) || !PyLong_CheckExact(data)) {
        return 0;
    }
    if (tag == kind_counter64 && wrap) {
        unsigned long long raw = PyLong_AsUnsignedLongLong(data);
        if (raw == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        *number = (double)(raw & WRAP_MASK);
        return 1;
    }
    if (tag != kind_integer && tag != kind_unsigned && tag != kind_counter64) {
        return 0;
    }
    *number = PyLong_AsDouble(data);
    if (*number == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* strings.value_as_string(value, kind) for OctetString (mode 1) and DisplayString (mode 2) without a
 * display hint; NULL without an exception when C does not read this value. */
static PyObject *pdu_string(PyObject *value, int mode) {
    long tag;
    PyObject *data;
    if (!read_value(value, &tag, &data)) {
        return NULL;
    }
    if (tag == kind_octets && PyBytes_CheckExact(data)) {
        const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t size = PyBytes_GET_SIZE(data);
        if (mode == MODE_DISPLAY_STRING) {
            PyObject *text = PyUnicode_DecodeUTF8((const char *)raw, size, "strict");
            if (text == NULL) {
                PyErr_Clear(); /* invalid UTF-8: strings.valid_utf8's replacement rules, in Python */
            }
            return text;
        }
        if (size == 0) {
            return PyUnicode_New(0, 127);
        }
        PyObject *text = PyUnicode_New(2 + 2 * size, 127);
        if (text == NULL) {
            PyErr_Clear();
            return NULL;
        }
        static const char hex[] = "0123456789ABCDEF";
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
        out[0] = '0';
        out[1] = 'x';
        for (Py_ssize_t i = 0; i < size; i++) {
            out[2 + 2 * i] = hex[raw[i] >> 4];
            out[3 + 2 * i] = hex[raw[i] & 15];
        }
        return text;
    }
    if ((tag == kind_oid || tag == kind_ipaddress) && PyUnicode_CheckExact(data)) {
        return Py_NewRef(data);
    }
    if ((tag == kind_integer || tag == kind_unsigned || tag == kind_counter64) && PyLong_CheckExact(data)) {
        PyObject *text = PyObject_Str(data);
        if (text == NULL) {
            PyErr_Clear();
        }
        return text;
    }
    if (tag == kind_null) {
        return PyUnicode_New(0, 127);
    }
    return NULL;
}

/* Whether a label value needs exposition._escape_label's escapes. */
static int needs_escape(PyObject *text) {
    return PyUnicode_FindChar(text, '\\', 0, PY_SSIZE_T_MAX, 1) != -1 ||
           PyUnicode_FindChar(text, '"', 0, PY_SSIZE_T_MAX, 1) != -1 ||
           PyUnicode_FindChar(text, '\n', 0, PY_SSIZE_T_MAX, 1) != -1;
}

/* One piece of a string being assembled: a slice of a str, or ASCII text from C. */
typedef struct {
    PyObject *text; /* NULL: `ascii` */
    Py_ssize_t start, length;
    const char *ascii;
} Piece;

static Piece whole(PyObject *text) {
    return (Piece){text, 0, PyUnicode_GET_LENGTH(text), NULL};
}

static Piece ascii(const char *text) {
    return (Piece){NULL, 0, (Py_ssize_t)strlen(text), text};
}

/* The pieces joined into a new str, in one allocation (PyUnicode_FromFormat parses its format on
 * every call, which cost more than the copying). */
static PyObject *assemble(const Piece *pieces, int count) {
    Py_ssize_t length = 0;
    Py_UCS4 widest = 127;
    for (int i = 0; i < count; i++) {
        length += pieces[i].length;
        if (pieces[i].text != NULL && PyUnicode_MAX_CHAR_VALUE(pieces[i].text) > widest) {
            widest = PyUnicode_MAX_CHAR_VALUE(pieces[i].text);
        }
    }
    PyObject *out = PyUnicode_New(length, widest);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (int i = 0; i < count; i++) {
        const Piece *piece = &pieces[i];
        if (piece->text != NULL) {
            if (PyUnicode_CopyCharacters(out, at, piece->text, piece->start, piece->length) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        } else {
            for (Py_ssize_t j = 0; j < piece->length; j++) {
                PyUnicode_WRITE(PyUnicode_KIND(out), PyUnicode_DATA(out), at + j, (Py_UCS1)piece->ascii[j]);
            }
        }
        at += piece->length;
    }
    return out;
}

/* LabelSet.with_label(name, value)'s text, key and labels, from the row's LabelSet fields (`name` is
 * not among its labels, `value` needs no escapes); 0 when C does not do it. */
static int with_string_label(PyObject *base_text, PyObject *base_key, PyObject *base_labels, PyObject *base_names,
                             PyObject *base_pieces, PyObject *name, PyObject *value, PyObject **text, PyObject **key,
                             PyObject **labels) {
    if (!PyUnicode_CheckExact(base_text) || !PyTuple_CheckExact(base_key) ||
        !PyDict_CheckExact(base_labels) || !PyList_CheckExact(base_names) || !PyList_CheckExact(base_pieces)) {
        return 0;
    }
    Py_ssize_t count = PyList_GET_SIZE(base_names);
    if (PyList_GET_SIZE(base_pieces) != count || PyTuple_GET_SIZE(base_key) != count + 1 ||
        (count > 0 && PyUnicode_GET_LENGTH(base_text) < 2)) {
        return 0;
    }
    /* bisect_left over the sorted names: where the new label goes. */
    Py_ssize_t position = count;
    for (Py_ssize_t i = 0; i < count; i++) {
        int after = PyUnicode_Compare(name, PyList_GET_ITEM(base_names, i));
        if (after == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (after <= 0) {
            position = i;
            break;
        }
    }
    *key = PyTuple_New(count + 2);
    PyObject *length = PyLong_FromSsize_t(count + 1);
    if (*key == NULL || length == NULL) {
        Py_XDECREF(length);
        return -1;
    }
    PyTuple_SET_ITEM(*key, 0, length);
    for (Py_ssize_t i = 0, j = 0; i <= count; i++) {
        PyObject *item = i == position ? value : PyTuple_GET_ITEM(base_key, 1 + j++);
        PyTuple_SET_ITEM(*key, i + 1, Py_NewRef(item));
    }
    if (position == count && count > 0) { /* the usual case: the text so far, then the new label */
        Piece parts[] = {{base_text, 0, PyUnicode_GET_LENGTH(base_text) - 1, NULL}, ascii(","), whole(name),
                         ascii("=\""), whole(value), ascii("\"}")};
        *text = assemble(parts, 6);
    } else {
        PyObject *piece = assemble((Piece[]){whole(name), ascii("=\""), whole(value), ascii("\"")}, 4);
        PyObject *pieces = piece == NULL ? NULL : PyList_New(count + 1);
        if (pieces == NULL) {
            Py_XDECREF(piece);
            return -1;
        }
        for (Py_ssize_t i = 0, j = 0; i <= count; i++) {
            PyObject *item = i == position ? piece : PyList_GET_ITEM(base_pieces, j++);
            PyList_SET_ITEM(pieces, i, Py_NewRef(item));
        }
        Py_DECREF(piece);
        PyObject *comma = PyUnicode_FromString(",");
        PyObject *joined = comma == NULL ? NULL : PyUnicode_Join(comma, pieces);
        Py_XDECREF(comma);
        Py_DECREF(pieces);
        *text = joined == NULL ? NULL : assemble((Piece[]){ascii("{"), whole(joined), ascii("}")}, 3);
        Py_XDECREF(joined);
    }
    if (*text == NULL) {
        return -1;
    }
    *labels = PyDict_Copy(base_labels);
    if (*labels == NULL || PyDict_SetItem(*labels, name, value) < 0) {
        return -1;
    }
    return 1;
}

/* render_pdu(out, plan, index, value, pdus, wrap_counters, rendered, label_cache), as render.py's. */
static PyObject *render_pdu(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "render_pdu takes 8 arguments");
        return NULL;
    }
    if (python_render_pdu == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_renderfast.configure() was not called");
        return NULL;
    }
    PyObject *out = args[0], *plan = args[1], *index = args[2], *value = args[3], *pdus = args[4];
    PyObject *rendered = args[6], *label_cache = args[7];
    int wrap = PyObject_IsTrue(args[5]);
    if (wrap < 0) {
        return NULL;
    }
    PyObject *fast = NULL, *row = NULL, *cached = NULL, *families = NULL, *seen_all = NULL;
    PyObject *family = NULL, *documentation = NULL, *type = NULL, *text = NULL, *labels = NULL;
    PyObject *key = NULL, *line = NULL, *number_object = NULL, *series = NULL, *entry = NULL;
    PyObject *string = NULL, *base_names = NULL, *base_pieces = NULL, *base_text = NULL, *base_key = NULL;
    PyObject *base_labels = NULL;
    PyObject *result = NULL;
    double number;

    fast = PyObject_GetAttr(plan, s_fast);
    if (fast == NULL) {
        goto done;
    }
    if (fast == Py_None || !PyTuple_CheckExact(fast) || PyTuple_GET_SIZE(fast) != 5 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(fast, 4))) {
        goto python;
    }
    PyObject *name = PyTuple_GET_ITEM(fast, 0), *help = PyTuple_GET_ITEM(fast, 1);
    PyObject *kind = PyTuple_GET_ITEM(fast, 2), *recipe = PyTuple_GET_ITEM(fast, 3);
    long mode = PyLong_AsLong(PyTuple_GET_ITEM(fast, 4));
    if (mode == MODE_NUMBER) {
        if (!pdu_number(value, wrap, &number)) {
            goto python;
        }
    } else {
        number = 1.0;
        kind = s_gauge;
        string = pdu_string(value, (int)mode);
        if (string == NULL || needs_escape(string)) {
            goto python;
        }
    }

    /* The row's labels: from this scrape's cache, else made (and cached) by render._row_labels. */
    row = PyTuple_Pack(2, recipe, index);
    if (row == NULL) {
        goto done;
    }
    cached = PyDict_GetItemWithError(label_cache, row);
    if (cached != NULL) {
        Py_INCREF(cached);
    } else if (PyErr_Occurred()) {
        goto done;
    } else {
        PyObject *call[4] = {plan, index, pdus, args[5]};
        cached = PyObject_Vectorcall(make_row_labels, call, 4, NULL);
        if (cached == NULL || PyDict_SetItem(label_cache, row, cached) < 0) {
            goto done;
        }
    }

    /* Families.add's checks; anything but the plain case is left to it. */
    families = PyObject_GetAttr(rendered, s_families);
    seen_all = families == NULL ? NULL : PyObject_GetAttr(out, s_seen);
    if (seen_all == NULL || !PyDict_CheckExact(families) || !PyDict_CheckExact(seen_all)) {
        goto done_or_python;
    }
    family = PyDict_GetItemWithError(families, name);
    if (family == NULL) {
        goto done_or_python;
    }
    Py_INCREF(family);
    documentation = PyObject_GetAttr(family, s_documentation);
    type = documentation == NULL ? NULL : PyObject_GetAttr(family, s_type);
    if (type == NULL) {
        goto done;
    }
    int same = PyObject_RichCompareBool(documentation, help, Py_EQ);
    if (same == 1) {
        same = PyObject_RichCompareBool(type, kind, Py_EQ);
    }
    if (same < 0) {
        goto done;
    }
    if (!same) {
        goto python;
    }
    PyObject *seen = PyDict_GetItemWithError(seen_all, name);
    if (seen == NULL) {
        goto done_or_python;
    }
    text = PyObject_GetAttr(cached, s_text);
    labels = text == NULL ? NULL : PyObject_GetAttr(cached, s_labels);
    key = labels == NULL ? NULL : PyObject_GetAttr(cached, s_key);
    if (key == NULL) {
        goto done;
    }
    if (string != NULL) { /* the string as one more label, as render_pdu's with_label */
        if (!PyDict_CheckExact(labels)) {
            goto python;
        }
        int present = PyDict_Contains(labels, name);
        if (present < 0) {
            goto done;
        }
        if (present) {
            goto python;
        }
        base_names = PyObject_GetAttr(cached, s_names);
        base_pieces = base_names == NULL ? NULL : PyObject_GetAttr(cached, s_pieces);
        if (base_pieces == NULL) {
            goto done;
        }
        base_text = text, base_key = key, base_labels = labels;
        text = key = labels = NULL;
        int made = with_string_label(base_text, base_key, base_labels, base_names, base_pieces, name, string, &text,
                                     &key, &labels);
        if (made < 0) {
            goto done;
        }
        if (made == 0) {
            goto python;
        }
    }
    if (!PyDict_CheckExact(seen) || !PyUnicode_CheckExact(text)) {
        goto python;
    }
    int duplicate = PyDict_Contains(seen, text);
    if (duplicate < 0) {
        goto done;
    }
    if (duplicate) {
        goto python; /* the error message is Families.add's */
    }

    /* TextFamily.add: the line, then the series. */
    number_object = PyFloat_FromDouble(number);
    if (number_object == NULL) {
        goto done;
    }
    if (number == floor(number) && fabs(number) < EXACT_LIMIT) {
        char spelled[40];
        spell_whole(number, spelled, sizeof spelled);
        line = assemble((Piece[]){whole(name), whole(text), ascii(" "), ascii(spelled), ascii("\n")}, 5);
    } else {
        PyObject *go_text = PyObject_CallOneArg(go_float, number_object);
        if (go_text == NULL) {
            goto done;
        }
        line = assemble((Piece[]){whole(name), whole(text), ascii(" "), whole(go_text), ascii("\n")}, 5);
        Py_DECREF(go_text);
    }
    if (line == NULL) {
        goto done;
    }
    series = PyObject_GetAttr(family, s_series);
    if (series == NULL) {
        goto done;
    }
    if (!PyList_CheckExact(series)) {
        goto python;
    }
    entry = PyTuple_Pack(4, key, line, labels, number_object);
    if (entry == NULL || PyDict_SetItem(seen, text, labels) < 0) {
        goto done;
    }
    if (PyList_Append(series, entry) < 0) {
        PyDict_DelItem(seen, text);
        goto done;
    }
    result = Py_NewRef(Py_None);
    goto done;

done_or_python:
    if (PyErr_Occurred()) {
        goto done;
    }
python:
    result = PyObject_Vectorcall(python_render_pdu, args, 8, NULL);
done:
    Py_XDECREF(fast);
    Py_XDECREF(row);
    Py_XDECREF(cached);
    Py_XDECREF(families);
    Py_XDECREF(seen_all);
    Py_XDECREF(family);
    Py_XDECREF(documentation);
    Py_XDECREF(type);
    Py_XDECREF(text);
    Py_XDECREF(labels);
    Py_XDECREF(key);
    Py_XDECREF(line);
    Py_XDECREF(number_object);
    Py_XDECREF(series);
    Py_XDECREF(entry);
    Py_XDECREF(string);
    Py_XDECREF(base_names);
    Py_XDECREF(base_pieces);
    Py_XDECREF(base_text);
    Py_XDECREF(base_key);
    Py_XDECREF(base_labels);
    return result;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *render, *labels, *spell;
    long integer, unsigned_, counter64, octets, oid, ipaddress, null;
    if (!PyArg_ParseTuple(args, "OOOlllllll", &render, &labels, &spell, &integer, &unsigned_, &counter64, &octets,
                          &oid, &ipaddress, &null)) {
        return NULL;
    }
    Py_XSETREF(python_render_pdu, Py_NewRef(render));
    Py_XSETREF(make_row_labels, Py_NewRef(labels));
    Py_XSETREF(go_float, Py_NewRef(spell));
    kind_integer = integer;
    kind_unsigned = unsigned_;
    kind_counter64 = counter64;
    kind_octets = octets;
    kind_oid = oid;
    kind_ipaddress = ipaddress;
    kind_null = null;
    Py_RETURN_NONE;
}

/* 'g' of a whole number, as the C path spells it: for the tests, which hold it to exposition.go_float. */
static PyObject *spell(PyObject *self, PyObject *arg) {
    double number = PyFloat_AsDouble(arg);
    if (number == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (number != floor(number) || !(fabs(number) < EXACT_LIMIT)) {
        PyErr_SetString(PyExc_ValueError, "not a whole number below 2**53");
        return NULL;
    }
    char spelled[40];
    spell_whole(number, spelled, sizeof spelled);
    return PyUnicode_FromString(spelled);
}

static PyMethodDef methods[] = {
    {"render_pdu", (PyCFunction)(void (*)(void))render_pdu, METH_FASTCALL,
     "render_pdu(out, plan, index, value, pdus, wrap_counters, rendered, label_cache), as render.py's."},
    {"configure", configure, METH_VARARGS,
     "configure(python_render_pdu, row_labels, go_float, INTEGER, UNSIGNED, COUNTER64, OCTETS, OID, IPADDRESS, "
     "NULL)"},
    {"spell_whole", spell, METH_O, "spell_whole(number): a whole number below 2**53 as the C path spells it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_renderfast", "render.py's render_pdu for plain gauges, counters and strings, in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__renderfast(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {{&s_fast, "fast"}, {&s_families, "families"}, {&s_seen, "_seen"},
                 {&s_documentation, "documentation"}, {&s_type, "type"}, {&s_series, "series"}, {&s_key, "key"},
                 {&s_text, "text"}, {&s_labels, "labels"}, {&s_names, "names"}, {&s_pieces, "pieces"},
                 {&s_gauge, "gauge"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&module_def);
}
