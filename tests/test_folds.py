import numpy as np
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.corpus import Corpus
from emoconf_tf.folds import make_folds


def corpus(groups=("s1", "s2", "s3", "s4", "s5"), split=None):
    n = len(groups) * 2
    group = np.repeat(np.asarray(groups, dtype=object), 2)
    return Corpus(
        ids=np.array([f"u{i}" for i in range(n)], dtype=object),
        features=np.zeros((n, 2), np.float32), labels=np.zeros(n, np.int64), avd=np.full((n, 3), 4, np.float32),
        class_names=("a", "b"), scale=(1.0, 7.0), speaker=np.full(n, "", object), group=group,
        split=np.asarray(split if split is not None else [""] * n, dtype=object), feature_names=("f1", "f2"),
        name="toy",
    )


def test_group_folds_test_k_validation_next_training_rest():
    folds = make_folds(corpus(), "group")
    assert len(folds) == 5
    c = corpus()
    for k, fold in enumerate(folds):
        test_group = {c.group[i] for i in fold.test}
        validation_group = {c.group[i] for i in fold.validation}
        train_groups = {c.group[i] for i in fold.train}
        assert test_group == {f"s{k + 1}"}
        assert validation_group == {f"s{(k + 1) % 5 + 1}"}  # next session, cyclically: s5 -> s1
        assert len(train_groups) == 3 and not train_groups & (test_group | validation_group)


def test_every_group_is_tested_once():
    folds = make_folds(corpus(), "group")
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(10))


def test_fewer_than_three_groups_is_refused():
    with pytest.raises(EmoconfError, match="at least 3 groups.*found 1"):
        make_folds(corpus(groups=("s1",)), "group")


def test_split_fold_needs_all_three_parts():
    split = ["train"] * 6 + ["test"] * 4
    with pytest.raises(EmoconfError, match="no 'validation' rows"):
        make_folds(corpus(split=split), "split")


def test_split_fold_uses_the_split_column():
    split = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    (fold,) = make_folds(corpus(split=split), "split")
    assert list(fold.train) == list(range(6)) and list(fold.validation) == [6, 7] and list(fold.test) == [8, 9]


def test_table_without_split_column_says_what_to_do():
    with pytest.raises(EmoconfError, match="no 'split' column.*--cv group"):
        make_folds(corpus(), "split")
