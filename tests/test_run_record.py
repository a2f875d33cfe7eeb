"""WORKDIR/run.json: written by a new run, compared by a resumed one, one-line refusals and logs."""

import json

import pytest

from nestgen.training.run_record import RUN_FILE, RunMismatch, changes, data_record, settle


def _record(**edits):
    record = {"trainer": "classifier", "model": {"kind": "classifier", "dims": (32, 64), "heads": [2, 2]},
              "data": data_record("zip:data/train.zip", "train", None, 512, ["cat", "dog"]), "global_batch": 32,
              "seed": 0, "image_size": 32, "recipe": {"augment": {"pad": 4}}}
    for key, value in edits.items():
        *parents, leaf = key.split("__")
        node = record
        for name in parents:
            node = node[name]
        node[leaf] = value
    return record


def test_a_new_run_writes_its_record_and_the_same_run_resumes_silently(tmp_path):
    logged = []
    assert settle(tmp_path, _record(), resuming=False, log=logged.append) == {}
    written = json.loads((tmp_path / RUN_FILE).read_text())
    assert written["model"]["dims"] == [32, 64] and written["data"]["num_examples"] == 512
    assert settle(tmp_path, _record(), resuming=True, log=logged.append) == {}  # tuples and lists alike
    assert logged == [] and not list(tmp_path.glob(".*.tmp"))


def test_the_data_spec_is_recorded_with_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert data_record("zip:data/train.zip", "train", 256, 256, [])["spec"] == f"zip:{tmp_path}/data/train.zip"
    assert data_record("tfds:cifar10", "train", None, 50_000, [])["spec"] == "tfds:cifar10"


def test_changed_fields_are_refused_in_one_line_naming_every_one_old_to_new(tmp_path):
    settle(tmp_path, _record(), resuming=False)
    before = (tmp_path / RUN_FILE).read_bytes()
    new = _record(model__dims=[16, 64], seed=3, global_batch=64, data__num_examples=500, recipe__augment={"pad": 2})
    with pytest.raises(RunMismatch) as error:
        settle(tmp_path, new, resuming=True, may_change=("recipe",))
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, ValueError)
    for part in ("model.dims [32, 64] → [16, 64]", "data.num_examples 512 → 500", "global_batch 32 → 64",
                 "seed 0 → 3", "use a new --workdir, or put the old values back"):
        assert part in message
    assert "recipe." not in message and "a resume may change only the recipe" in message  # allowed: not refused
    assert (tmp_path / RUN_FILE).read_bytes() == before


def test_allowed_changes_are_logged_in_one_line_and_recorded(tmp_path):
    settle(tmp_path, _record(), resuming=False)
    logged = []
    allowed = settle(tmp_path, _record(global_batch=8), resuming=True, may_change=("global_batch", "recipe"),
                     log=logged.append)
    assert allowed == {"global_batch": (32, 8)}
    assert len(logged) == 1 and "global_batch 32 → 8" in logged[0] and "\n" not in logged[0]
    assert json.loads((tmp_path / RUN_FILE).read_text())["global_batch"] == 8


def test_a_workdir_from_before_run_records_resumes_and_gets_one(tmp_path):
    logged = []
    settle(tmp_path, _record(seed=5), resuming=True, log=logged.append)
    assert json.loads((tmp_path / RUN_FILE).read_text())["seed"] == 5
    assert len(logged) == 1 and f"no {RUN_FILE}" in logged[0]


def test_an_unreadable_record_is_named(tmp_path):
    (tmp_path / RUN_FILE).write_text("{not json")
    with pytest.raises(RunMismatch, match=f"{RUN_FILE} cannot be read .*delete it to resume"):
        settle(tmp_path, _record(), resuming=True)
    # a new run (no checkpoint) simply records itself
    settle(tmp_path, _record(), resuming=False)
    assert json.loads((tmp_path / RUN_FILE).read_text())["trainer"] == "classifier"


def test_changes_walks_nested_fields_and_missing_ones():
    assert changes({"a": {"b": 1, "c": [1]}, "d": 2}, {"a": {"b": 1, "c": [2]}, "e": 3}) == {
        "a.c": ([1], [2]), "d": (2, None), "e": (None, 3)}
