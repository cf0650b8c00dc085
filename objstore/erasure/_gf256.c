/* Parity of one stripe: parity[r] = XOR over j of matrix[r][j] * data[j], bytewise in
 * GF(2^8) with zfec's field (polynomial x^8 + x^4 + x^3 + x^2 + 1, 0x11d).
 *
 * The matrix is given by the caller (objstore/erasure/codec.py derives zfec's own from
 * zfec), so the parity is byte for byte what zfec computes and zfec decodes it. A product
 * by a constant c is looked up per nibble: c*x = L[x & 15] ^ H[x >> 4], sixteen-entry
 * tables that AVX2's byte shuffle applies to 32 bytes at once (plain table lookups where
 * the CPU has no AVX2). Where the CPU has GFNI, a product by a constant is one affine
 * instruction instead (the product by c is linear over GF(2): an 8x8 bit matrix), 32 or 64
 * bytes at once, and each parity row is summed in a register over the K data shards and
 * stored once. The GIL is released while it computes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

static uint8_t MUL[256][256];

static void init_tables(void) {
    uint8_t exp[512];
    int log[256];
    int x = 1;
    for (int i = 0; i < 255; i++) {
        exp[i] = (uint8_t)x;
        log[x] = i;
        x <<= 1;
        if (x & 0x100) x ^= 0x11d;
    }
    for (int i = 255; i < 512; i++) exp[i] = exp[i - 255];
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++)
            MUL[a][b] = (a == 0 || b == 0) ? 0 : exp[log[a] + log[b]];
}

/* out ^= c * src over n bytes (out = c * src when first). */
static void mul_add_scalar(uint8_t *out, const uint8_t *src, size_t n, uint8_t c, int first) {
    const uint8_t *t = MUL[c];
    if (first) {
        for (size_t i = 0; i < n; i++) out[i] = t[src[i]];
    } else {
        for (size_t i = 0; i < n; i++) out[i] ^= t[src[i]];
    }
}

#ifdef HAVE_AVX2_PATH
__attribute__((target("avx2")))
static void mul_add_avx2(uint8_t *out, const uint8_t *src, size_t n, uint8_t c, int first) {
    uint8_t lo[16], hi[16];
    for (int x = 0; x < 16; x++) {
        lo[x] = MUL[c][x];
        hi[x] = MUL[c][x << 4];
    }
    const __m256i tlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo));
    const __m256i thi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hi));
    const __m256i mask = _mm256_set1_epi8(0x0f);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i p = _mm256_xor_si256(
            _mm256_shuffle_epi8(tlo, _mm256_and_si256(v, mask)),
            _mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi64(v, 4), mask)));
        if (!first) p = _mm256_xor_si256(p, _mm256_loadu_si256((const __m256i *)(out + i)));
        _mm256_storeu_si256((__m256i *)(out + i), p);
    }
    mul_add_scalar(out + i, src + i, n - i, c, first);
}

/* The 8x8 bit matrix of x -> c * x for GF2P8AFFINEQB: byte 7 - i of the result holds the
 * row of output bit i (bit j set when bit i of c * 2^j is set). */
static uint64_t affine_matrix(uint8_t c) {
    uint64_t q = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t row = 0;
        for (int j = 0; j < 8; j++) row |= (uint64_t)((MUL[c][1 << j] >> i) & 1) << j;
        q |= row << (8 * (7 - i));
    }
    return q;
}

/* out = XOR over j of c_j * src_j (rows[j] the matrices of c_j), n bytes; the tail past
 * the last whole vector by table. */
__attribute__((target("gfni,avx2")))
static void row_gfni256(uint8_t *out, const uint8_t *const *src, Py_ssize_t k, const uint64_t *rows,
                        const uint8_t *coef, Py_ssize_t at, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i acc = _mm256_gf2p8affine_epi64_epi8(
            _mm256_loadu_si256((const __m256i *)(src[0] + at + i)), _mm256_set1_epi64x((long long)rows[0]), 0);
        for (Py_ssize_t j = 1; j < k; j++)
            acc = _mm256_xor_si256(acc, _mm256_gf2p8affine_epi64_epi8(
                _mm256_loadu_si256((const __m256i *)(src[j] + at + i)), _mm256_set1_epi64x((long long)rows[j]), 0));
        _mm256_storeu_si256((__m256i *)(out + i), acc);
    }
    for (Py_ssize_t j = 0; j < k; j++) mul_add_scalar(out + i, src[j] + at + i, n - i, coef[j], j == 0);
}

__attribute__((target("gfni,avx512f,avx512bw")))
static void row_gfni512(uint8_t *out, const uint8_t *const *src, Py_ssize_t k, const uint64_t *rows,
                        const uint8_t *coef, Py_ssize_t at, size_t n) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i acc = _mm512_gf2p8affine_epi64_epi8(
            _mm512_loadu_si512((const void *)(src[0] + at + i)), _mm512_set1_epi64((long long)rows[0]), 0);
        for (Py_ssize_t j = 1; j < k; j++)
            acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8(
                _mm512_loadu_si512((const void *)(src[j] + at + i)), _mm512_set1_epi64((long long)rows[j]), 0));
        _mm512_storeu_si512((void *)(out + i), acc);
    }
    for (Py_ssize_t j = 0; j < k; j++) mul_add_scalar(out + i, src[j] + at + i, n - i, coef[j], j == 0);
}
#endif

/* 0: tables, 1: AVX2 shuffles, 2: GFNI (256-bit), 3: GFNI (512-bit) */
static int simd_level = 0;
static int best_level = 0;

/* Columns per pass: the output rows being built stay in the L1/L2 cache while every data
 * shard's slice is folded into them. */
#define BLOCK 8192

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *blocks_arg;
    Py_buffer matrix;
    if (!PyArg_ParseTuple(args, "Oy*", &blocks_arg, &matrix)) return NULL;
    PyObject *result = NULL;
    Py_buffer *views = NULL;
    PyObject **outs = NULL;
    const uint8_t **srcs = NULL;
    uint64_t *rows = NULL;
    Py_ssize_t k = 0, m = 0, got = 0;
    PyObject *seq = PySequence_Fast(blocks_arg, "blocks must be a sequence of buffers");
    if (seq == NULL) goto done;
    k = PySequence_Fast_GET_SIZE(seq);
    if (k < 1 || matrix.len % k != 0) {
        PyErr_SetString(PyExc_ValueError, "matrix must hold M rows of K coefficients");
        goto done;
    }
    m = matrix.len / k;
    views = PyMem_Calloc((size_t)k, sizeof(Py_buffer));
    outs = PyMem_Calloc((size_t)(m ? m : 1), sizeof(PyObject *));
    if (views == NULL || outs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < k; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, got), &views[got], PyBUF_SIMPLE) < 0) goto done;
        if (views[got].len != views[0].len) {
            got++;
            PyErr_SetString(PyExc_ValueError, "blocks must all have the same length");
            goto done;
        }
    }
    Py_ssize_t width = views[0].len;
    for (Py_ssize_t r = 0; r < m; r++) {
        outs[r] = PyBytes_FromStringAndSize(NULL, width);
        if (outs[r] == NULL) goto done;
    }
    const uint8_t *coef = (const uint8_t *)matrix.buf;
    srcs = PyMem_Malloc((size_t)k * sizeof(uint8_t *));
    rows = PyMem_Malloc((size_t)(m * k > 0 ? m * k : 1) * sizeof(uint64_t));
    if (srcs == NULL || rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < k; j++) srcs[j] = (const uint8_t *)views[j].buf;
    int level = simd_level;
    if (level >= 2)
        for (Py_ssize_t i = 0; i < m * k; i++) rows[i] = affine_matrix(coef[i]);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t at = 0; at < width; at += BLOCK) {
        size_t n = (size_t)(width - at < BLOCK ? width - at : BLOCK);
        for (Py_ssize_t r = 0; r < m; r++) {
            uint8_t *out = (uint8_t *)PyBytes_AS_STRING(outs[r]) + at;
#ifdef HAVE_AVX2_PATH
            if (level == 3) {
                row_gfni512(out, srcs, k, rows + r * k, coef + r * k, at, n);
                continue;
            }
            if (level == 2) {
                row_gfni256(out, srcs, k, rows + r * k, coef + r * k, at, n);
                continue;
            }
#endif
            for (Py_ssize_t j = 0; j < k; j++) {
                const uint8_t *src = srcs[j] + at;
#ifdef HAVE_AVX2_PATH
                if (level == 1) {
                    mul_add_avx2(out, src, n, coef[r * k + j], j == 0);
                    continue;
                }
#endif
                mul_add_scalar(out, src, n, coef[r * k + j], j == 0);
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(m);
    if (result == NULL) goto done;
    for (Py_ssize_t r = 0; r < m; r++) {
        PyList_SET_ITEM(result, r, outs[r]);
        outs[r] = NULL;
    }
done:
    PyMem_Free(srcs);
    PyMem_Free(rows);
    if (outs != NULL) {
        for (Py_ssize_t r = 0; r < m; r++) Py_XDECREF(outs[r]);
        PyMem_Free(outs);
    }
    if (views != NULL) {
        for (Py_ssize_t j = 0; j < got; j++) PyBuffer_Release(&views[j]);
        PyMem_Free(views);
    }
    Py_XDECREF(seq);
    PyBuffer_Release(&matrix);
    return result;
}

static const char *LEVELS[] = {"none", "avx2", "gfni", "gfni-avx512"};

static PyObject *simd(PyObject *self, PyObject *noargs) {
    return PyUnicode_FromString(LEVELS[simd_level]);
}

/* Use the named instructions (one of LEVELS the CPU has; for tests and comparisons);
 * returns the name of those used before. */
static PyObject *select_simd(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) return NULL;
    for (int level = 0; level <= best_level; level++) {
        if (strcmp(name, LEVELS[level]) == 0) {
            PyObject *before = PyUnicode_FromString(LEVELS[simd_level]);
            simd_level = level;
            return before;
        }
    }
    PyErr_Format(PyExc_ValueError, "%s is not available here (best: %s)", name, LEVELS[best_level]);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(blocks, matrix) -> [parity bytes]: blocks are K equal-length buffers, matrix M*K "
     "coefficients row by row; parity r is XOR_j matrix[r*K+j] * blocks[j] in GF(2^8) (0x11d)."},
    {"simd", simd, METH_NOARGS,
     "The vector instructions in use: 'gfni-avx512', 'gfni' (with AVX2), 'avx2' or 'none'."},
    {"select", select_simd, METH_O,
     "select(name) -> the name used before: compute with the named instructions from now on "
     "(any of simd()'s names up to the best this CPU has)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gf256", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gf256(void) {
    init_tables();
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        best_level = 1;
        if (__builtin_cpu_supports("gfni")) {
            best_level = 2;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) best_level = 3;
        }
    }
#endif
    simd_level = best_level;
    return PyModule_Create(&module);
}
