"""The ImageNet16-120 reader reads third-party pickles with a restricted unpickler: the arrays, lists and dicts
of that format load, a pickle that tries to run code is refused in one line and runs nothing."""
import os
import pickle

import numpy as np
import pytest

from nasflow.data import load_dataset
from nasflow.errors import DataError

FILES = [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]


def _write_imagenet16(root, n=6, protocol=pickle.HIGHEST_PROTOCOL, seed=0):
    """NB201's layout: ImageNet16/train_data_batch_1..10 and val_data, each a dict of a flat uint8 'data'
    array (N, 3*16*16) and a list of 'labels' in 1..1000 (the training batches also carry a 'mean')."""
    rng = np.random.default_rng(seed)
    base = root / "ImageNet16"
    base.mkdir(parents=True)
    for name in FILES:
        entry = {"data": rng.integers(0, 256, (n, 3 * 16 * 16), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(1, 121, n)]}
        if name != "val_data":
            entry["mean"] = entry["data"].mean(axis=0)
        (base / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    return base


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_genuine_imagenet16_pickles_load(tmp_path, protocol):
    _write_imagenet16(tmp_path, protocol=protocol)
    s = load_dataset("imagenet16-120", root=tmp_path)
    assert s.x_train.shape == (60, 3, 16, 16) and s.num_classes == 120
    assert int(s.y_train.min()) >= 0 and int(s.y_train.max()) < 120


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evals:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("payload, global_name", [("system", f"{os.system.__module__}.system"),
                                                   ("eval", "__builtin__.eval")])  # protocol 2: Python 2 names
def test_pickle_that_runs_code_is_refused(tmp_path, payload, global_name):
    base = _write_imagenet16(tmp_path)
    marker = tmp_path / "pwned"
    evil = _RunsCode(marker) if payload == "system" else _Evals()
    (base / "train_data_batch_3").write_bytes(pickle.dumps({"data": evil, "labels": [1]}, protocol=2))
    with pytest.raises(DataError) as e:
        load_dataset("imagenet16-120", root=tmp_path)
    message = str(e.value)
    assert message.startswith(f"{base / 'train_data_batch_3'}: refuses to load: the pickle references {global_name}")
    assert "\n" not in message
    assert not marker.exists()


def test_other_classes_are_refused_too(tmp_path):
    import collections

    base = _write_imagenet16(tmp_path)
    (base / "val_data").write_bytes(pickle.dumps(collections.OrderedDict(data=np.zeros((1, 768), np.uint8),
                                                                         labels=[1])))
    with pytest.raises(DataError, match=r"val_data: refuses to load: the pickle references collections.OrderedDict"):
        load_dataset("imagenet16-120", root=tmp_path)


def test_corrupt_imagenet16_pickle_is_one_line(tmp_path):
    base = _write_imagenet16(tmp_path)
    good = (base / "train_data_batch_1").read_bytes()
    (base / "train_data_batch_1").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="train_data_batch_1: not a readable ImageNet16 pickle") as e:
        load_dataset("imagenet16-120", root=tmp_path)
    assert "\n" not in str(e.value)
