import numpy as np
import pytest

from emoconf_tf import EmoconfError
from emoconf_tf.corpus import Corpus
from emoconf_tf.folds import check_fold_count, cv_for_dataset, fold_assignment, fold_groups, make_folds


def corpus(groups=("s1", "s2", "s3", "s4", "s5"), split=None, speakers=None):
    n = len(groups) * 2
    group = np.repeat(np.asarray(groups, dtype=object), 2)
    speaker = np.full(n, "", object) if speakers is None else np.repeat(np.asarray(speakers, dtype=object), 2)
    return Corpus(
        ids=np.array([f"u{i}" for i in range(n)], dtype=object),
        features=np.zeros((n, 2), np.float32), labels=np.zeros(n, np.int64), avd=np.full((n, 3), 4, np.float32),
        class_names=("a", "b"), scale=(1.0, 7.0), speaker=speaker, group=group,
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
    with pytest.raises(EmoconfError, match=r"^toy: cv='group' needs at least 3 groups or folds \(test, validation, "
                                           r"training\); found 1: s1$"):
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
    with pytest.raises(EmoconfError, match=r"^toy: the table has no 'split' column; add one \(train/validation/test\) "
                                           r"or use cv='group' with a 'group' \(or 'speaker'\) column$"):
        make_folds(corpus(), "split")


def test_an_unknown_cv_mode_names_the_argument():
    with pytest.raises(EmoconfError, match=r"^cv 'groups': choose one of split, group$") as raised:
        make_folds(corpus(), "groups")
    assert raised.value.argument == "cv"


# === Leave-speakers-out: speakers when there are no groups, and folds=K ===

def test_group_folds_fall_back_to_speakers_when_the_table_has_no_groups():
    speakers = ("spk1", "spk2", "spk3", "spk4")
    folds = make_folds(corpus(groups=("",) * 4, speakers=speakers), "group")
    assert [fold.name for fold in folds] == ["test=spk1 validation=spk2", "test=spk2 validation=spk3",
                                             "test=spk3 validation=spk4", "test=spk4 validation=spk1"]
    assert list(folds[0].test) == [0, 1] and list(folds[0].validation) == [2, 3] and list(folds[0].train) == [4, 5, 6, 7]


def test_neither_groups_nor_speakers_is_refused_naming_both_columns():
    with pytest.raises(EmoconfError, match=r"^toy: cv='group' needs a non-empty 'group' column \(e.g. the recording "
                                           r"session\) or, for leave-speakers-out folds, a 'speaker' column$"):
        make_folds(corpus(groups=("",) * 4), "group")


def test_fold_groups_puts_the_largest_group_first_into_the_emptiest_fold():
    # counts a 4, b 3, c 2, d 2, e 1 -> a:0 (4 0 0), b:1 (4 3 0), c:2 (4 3 2), d:2 (4 3 4), e:1 (4 4 4)
    rows = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2 + ["e"])
    assert fold_groups(rows, 3) == {"a": 0, "b": 1, "c": 2, "d": 2, "e": 1}
    assert fold_groups(rows[::-1], 3) == fold_groups(rows, 3)  # the counts decide, not the row order


def test_ten_speakers_in_five_folds_of_two_each_tested_once():
    speakers = [f"spk{i:02d}" for i in range(10)]
    c = corpus(groups=("",) * 10, speakers=speakers)
    folds = make_folds(c, "group", folds=5)
    assert len(folds) == 5
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(20))
    for fold in folds:
        assert len({c.speaker[i] for i in fold.test}) == 2  # two speakers a fold, never split
        assert not {c.speaker[i] for i in fold.train} & {c.speaker[i] for i in fold.test}
    # equal counts: spk00 -> 0, spk01 -> 1, ..., spk04 -> 4, spk05 -> 0, ...; validation = the next fold
    assert folds[0].name == "test=spk00+spk05 validation=spk01+spk06"


def test_fold_assignment_lists_every_utterance_in_every_fold():
    c = corpus()
    folds = make_folds(c, "group")
    table = fold_assignment(c, folds)
    assert len(table) == 5 * len(c) and set(table["part"]) == {"train", "validation", "test"}
    first = table[table["fold"] == 0].set_index("id")["part"]
    assert first["u0"] == "test" and first["u2"] == "validation" and first["u9"] == "train"


@pytest.mark.parametrize(("folds", "message"), [
    (2, r"^folds 2: need at least 3 \(a test, a validation and a training fold\)$"),
    (11, r"^folds 11: only 10 groups/speakers to gather into folds$"),
])
def test_bad_fold_counts_are_refused(folds, message):
    with pytest.raises(EmoconfError, match=message) as raised:
        make_folds(corpus(groups=("",) * 10, speakers=[f"s{i}" for i in range(10)]), "group", folds=folds)
    assert raised.value.argument == "folds"


def test_folds_with_the_split_column_is_refused():
    with pytest.raises(EmoconfError, match=r"^folds 5: folds are made from groups or speakers; use it with "
                                           r"cv='group'$") as raised:
        make_folds(corpus(split=["train"] * 6 + ["validation"] * 2 + ["test"] * 2), "split", folds=5)
    assert raised.value.argument == "folds"


def test_check_fold_count_accepts_three_or_more():
    assert check_fold_count(3) == 3
    with pytest.raises(EmoconfError, match=r"^folds 2: need at least 3") as raised:
        check_fold_count(2)
    assert raised.value.argument == "folds"


def test_a_dataset_without_a_split_runs_leave_one_session_out():
    sessions = corpus(groups=("Ses01", "Ses02", "Ses03"))
    note = "folds: leave one session out (Ses01, Ses02, Ses03); iemocap/egemaps_v02 has no train/validation/test split"
    assert cv_for_dataset(sessions, "split", "iemocap/egemaps_v02") == ("group", note)
    assert cv_for_dataset(sessions, "group", "iemocap") == ("group", "")


def test_a_dataset_with_a_split_keeps_the_mode_asked_for():
    split = corpus(split=["train"] * 6 + ["validation"] * 2 + ["test"] * 2)
    assert cv_for_dataset(split, "split", "msp_podcast") == ("split", "")
