"""The API's scorer calls XGBoost's C prediction directly; its scores must be XGBoost's own, bit for bit."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ativo.evaluate.suite import request_rows
from ativo.model.served import DenseScorer, ServedModel


@pytest.fixture(scope="module")
def model(spec, small_boosters):
    booster = small_boosters["good"]
    booster.set_param({"nthread": 1})
    return ServedModel(spec=spec, name=spec.name, version="1", booster=booster, sha256="")


@pytest.fixture(scope="module")
def matrix(model, spec, adult_split):
    m = model.encode(request_rows(spec, adult_split.test, 300))
    assert np.isnan(m).any(), "the sample should hold missing values"
    return m


@pytest.mark.parametrize("rows", [1, 2, 64, 65, 300])
def test_scores_are_inplace_predicts_for_every_batch_size(model, matrix, rows):
    expected = model.booster.inplace_predict(matrix[:rows])
    got = model.score(matrix[:rows])
    assert got.dtype == np.float32 and got.shape == (rows,)
    np.testing.assert_array_equal(got, expected)


def test_a_view_or_a_float64_matrix_scores_the_same(model, matrix):
    expected = model.booster.inplace_predict(matrix[::3])
    np.testing.assert_array_equal(DenseScorer(model.booster)(matrix[::3]), expected)  # not contiguous
    np.testing.assert_array_equal(DenseScorer(model.booster)(matrix[::3].astype(np.float64)), expected)


def test_each_result_is_the_callers_own(model, matrix):
    scorer = DenseScorer(model.booster)
    first = scorer(matrix[:5])
    kept = first.copy()
    scorer(matrix[100:200])  # the booster's buffer is overwritten by the next call
    np.testing.assert_array_equal(first, kept)


def test_threads_score_at_once_with_their_own_scorers(model, matrix):
    expected = model.booster.inplace_predict(matrix)
    wrong: list[int] = []

    def work(k: int) -> None:
        for i in range(200):
            lo = (i * 7 + k) % 290
            if not np.array_equal(model.score(matrix[lo : lo + 10]), expected[lo : lo + 10]):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_a_matrix_of_the_wrong_width_is_refused(model, matrix):
    with pytest.raises(ValueError, match="columns"):
        model.score(matrix[:, :-1])
