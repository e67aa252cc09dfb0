import numpy as np
import pytest

from bioscan5m.errors import BioscanError
from bioscan5m.tasks.metrics import (
    accuracy,
    auroc,
    labelled_mask,
    macro_accuracy,
    micro_accuracy,
    topk_accuracy,
)


def test_micro_and_macro_differ_on_an_imbalanced_set():
    # Class 0: 8 queries, all right; class 1: 2 queries, 1 right.
    y_true = np.array([0] * 8 + [1, 1])
    y_pred = np.array([0] * 8 + [1, 0])
    assert micro_accuracy(y_true, y_pred) == pytest.approx(9 / 10)
    assert macro_accuracy(y_true, y_pred) == pytest.approx((1.0 + 0.5) / 2)


def test_missing_truth_is_left_out_and_missing_prediction_is_wrong():
    y_true = np.array([2, -1, 2, 3, -1])
    y_pred = np.array([2, 5, -1, 3, 5])
    assert labelled_mask(y_true).tolist() == [True, False, True, True, False]
    assert micro_accuracy(y_true, y_pred) == pytest.approx(2 / 3)
    assert macro_accuracy(y_true, y_pred) == pytest.approx((0.5 + 1.0) / 2)


def test_names_work_like_codes():
    y_true = np.array(["Aedes", "Aedes", "Aedes", "Culex", None, ""], dtype=object)
    y_pred = np.array(["Aedes", "Aedes", "Culex", "Culex", "Culex", "Aedes"], dtype=object)
    result = accuracy(y_true, y_pred)
    assert result == {"micro": pytest.approx(3 / 4), "macro": pytest.approx((2 / 3 + 1) / 2), "queries": 4,
                      "classes": 2}


def test_nothing_labelled_gives_nan():
    assert np.isnan(micro_accuracy(np.array([-1, -1]), np.array([0, 1])))
    assert np.isnan(macro_accuracy(np.array([None], dtype=object), np.array(["x"], dtype=object)))


def test_topk_counts_a_hit_anywhere_in_the_first_k():
    y_true = np.array([1, 2, 3, 3])
    ranked = np.array([[1, 9, 9], [9, 2, 9], [9, 9, 3], [9, 9, 9]])
    assert topk_accuracy(y_true, ranked, 1) == pytest.approx(1 / 4)
    assert topk_accuracy(y_true, ranked, 2) == pytest.approx(2 / 4)
    assert topk_accuracy(y_true, ranked, 3) == pytest.approx(3 / 4)
    # Macro: classes 1 and 2 right, class 3 half right.
    assert topk_accuracy(y_true, ranked, 3, average="macro") == pytest.approx((1 + 1 + 0.5) / 3)
    with pytest.raises(BioscanError, match="1 <= k <= 3"):
        topk_accuracy(y_true, ranked, 4)


def test_auroc_hand_computed():
    # Positives 0.9, 0.4; negatives 0.5, 0.1: of 4 pairs, 3 are ordered right.
    assert auroc([True, True, False, False], [0.9, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert auroc([True, False], [0.2, 0.2]) == pytest.approx(0.5)
    assert np.isnan(auroc([True, True], [0.1, 0.3]))


def test_mismatched_lengths_are_an_error():
    with pytest.raises(BioscanError, match="3 true labels but 2 predictions"):
        micro_accuracy([1, 2, 3], [1, 2])
