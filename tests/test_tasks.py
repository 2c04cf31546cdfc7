"""The Task objects: each task's rules live in one place, and the other modules follow them."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench import tasks
from animerec_bench.errors import PredictionError
from animerec_bench.model import TASKS, Interactions


def test_every_task_declares_consistent_metadata():
    assert TASKS == tasks.NAMES
    for task in tasks.TASKS.values():
        assert task.primary == task.metrics[0]
        assert task.primary in dict((m, h) for h, m in task.columns)  # the table shows the sort key
        assert task.description and task.table_note
        assert tasks.get(task.name) is task
    with pytest.raises(ValueError, match="unknown task 'nope'; known: rating, interaction"):
        tasks.get("nope")


def test_masks_and_targets_come_from_the_task():
    part = Interactions(np.arange(4, dtype=np.int32), np.arange(4, dtype=np.int32),
                        np.array([0, 3, 8, 0], np.float32), np.array([1, -1, 0, 0], np.int8), 4, 4)
    assert part.task_mask("rating").tolist() == [False, True, True, False]
    assert part.task_mask("interaction").tolist() == [True, False, True, True]
    sub, y = part.for_task("interaction")
    assert y.dtype == np.float32 and y.tolist() == [1.0, 0.0, 0.0]
    assert sub.user.tolist() == [0, 2, 3]


def test_interaction_scores_must_be_probabilities():
    tasks.INTERACTION.check_scores("m", np.array([0.0, 1.0]))
    with pytest.raises(PredictionError, match="probabilities in \\[0, 1\\]"):
        tasks.INTERACTION.check_scores("m", np.array([0.2, 1.5]))
    tasks.RATING.check_scores("m", np.array([0.5, 10.5]))  # clipped when scored, not refused


def test_losses_match_the_keras_names_models_train_with():
    assert tasks.RATING.loss == "mse" and tasks.INTERACTION.loss == "binary_crossentropy"
    assert tasks.RATING.higher_is_better is False and tasks.INTERACTION.higher_is_better is True
