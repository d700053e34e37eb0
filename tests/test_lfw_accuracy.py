"""LFW View 1 pairsDevTest accuracy of the default pipeline at its packaged threshold."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.distances import get_metric
from facegate.thresholds import find_threshold, threshold_entry

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_dev_test_accuracy_at_the_calibrated_threshold(lfw_dev_test):
    lfw, pairs, embedded = lfw_dev_test
    assert len(pairs) == 1000
    index = {p: i for i, p in enumerate(embedded.paths)}
    a = np.array([index[str(lfw / "images" / p.first)] for p in pairs])
    b = np.array([index[str(lfw / "images" / p.second)] for p in pairs])
    same = np.array([p.same for p in pairs])
    threshold = find_threshold("dlib-resnet", "euclidean")
    assert threshold_entry("dlib-resnet", "euclidean")["calibrated_on"] == "LFW View 1 pairsDevTrain.txt"

    ok = embedded.ok[a] & embedded.ok[b]
    distances = get_metric("euclidean")(embedded.vectors[a[ok]], embedded.vectors[b[ok]])
    correct = int(((distances <= threshold) == same[ok]).sum())
    accuracy = correct / len(pairs)  # a pair with a face not found counts as an error
    print(f"LFW DevTest accuracy {accuracy:.4f} at threshold {threshold:.4f}; {int((~ok).sum())} pairs without a face")
    assert accuracy >= 0.985
