"""`nasflow table build`: the official releases (both formats, written here) -> the table, and every bad input."""
from __future__ import annotations

import bz2
import collections
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nasflow import bench
from nasflow.cli import main
from nasflow.spaces import nb201
from tests import release_fixtures as rf

CELLS = (0, 1, 6111, 15624)


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    root = tmp_path_factory.mktemp("release") / "NATS-tss-v1_0-3ffb9-simple"
    return root, rf.write_nats(root, CELLS)


@pytest.fixture(scope="module")
def built(nats, tmp_path_factory):
    out = tmp_path_factory.mktemp("table") / "nb201.parquet"
    assert main(["table", "build", "--from", str(nats[0]), "--out", str(out), "--quiet"]) == 0
    return out


def _final(trial, split, metric="acc"):
    key = {"acc": "eval_acc1es", "loss": "eval_losses"}[metric]
    return trial[key][f"{split}@{trial['epochs'] - 1}"]


def test_table_holds_what_the_release_holds(nats, built):
    _, cells = nats
    df = pd.read_parquet(built).set_index("index")
    assert list(df.index) == list(CELLS)
    for i in CELLS:
        row, c12, c200 = df.loc[i], cells[i]["12"], cells[i]["200"]
        assert row["arch"] == nb201.enumerate_all()[i]
        # 200 epochs, mean over seeds 777/888/999, with NB201's split names
        runs = [c200["all_results"][("cifar10-valid", s)] for s in (777, 888, 999)]
        assert row["cifar10_valid_valid_acc_200ep"] == pytest.approx(np.mean([_final(t, "x-valid") for t in runs]))
        assert row["cifar10_valid_acc_200ep"] == row["cifar10_valid_valid_acc_200ep"]  # today's name
        assert row["cifar10_valid_test_loss_200ep"] == pytest.approx(
            np.mean([_final(t, "ori-test", "loss") for t in runs]))
        c100 = [c200["all_results"][("cifar100", s)] for s in (777, 888, 999)]
        assert row["cifar100_test_acc_200ep"] == pytest.approx(np.mean([_final(t, "x-test") for t in c100]))
        assert row["cifar100_valtest_acc_200ep"] == pytest.approx(np.mean([_final(t, "ori-test") for t in c100]))
        assert row["cifar100_valid_acc_200ep_s888"] == _final(c100[1], "x-valid")
        # per-epoch curve: mean over seeds, epoch by epoch
        curve = np.mean([[t["eval_acc1es"][f"x-valid@{e}"] for e in range(200)] for t in runs], axis=0)
        np.testing.assert_allclose(row["cifar10_valid_valid_acc_curve_200ep"], curve, rtol=1e-6)
        train_loss = np.mean([list(t["train_losses"].values()) for t in runs], axis=0)
        np.testing.assert_allclose(row["cifar10_valid_train_loss_curve_200ep"], train_loss, rtol=1e-6)
        # 12 epochs: cifar10 has one seed, 111 (today's *_12ep_one_seed)
        c10 = c12["all_results"][("cifar10", 111)]
        assert row["cifar10_test_acc_12ep_one_seed"] == _final(c10, "ori-test") == row["cifar10_test_acc_12ep_s111"]
        assert row["cifar10_valid_seeds_12ep"] == 2 and row["cifar10_seeds_12ep"] == 1
        # recorded times: one epoch's training and one validation pass (NB201's `train_and_eval` charges
        # 12 x the first plus the second per query)
        cv = c12["all_results"][("cifar10-valid", 111)]
        assert row["cifar10_valid_train_seconds_per_epoch_12ep"] == pytest.approx(cv["train_times"][0])
        assert row["cifar10_valid_valid_eval_seconds_12ep"] == pytest.approx(cv["eval_times"]["x-valid@0"])
        assert row["cifar100_params_m"] == pytest.approx(float(c100[0]["params"]))
        assert row["imagenet16_120_latency_s"] == pytest.approx(
            float(c200["all_results"][("ImageNet16-120", 777)]["latency"][0]))
    # evaluated only after the last epoch in the 200-epoch schedule -> no curve for it
    assert "cifar100_test_acc_curve_200ep" not in df.columns
    assert "cifar100_test_acc_curve_12ep" in df.columns


def test_pth_and_archive_give_the_same_table(built, tmp_path):
    rf.write_pth(tmp_path / "NAS-Bench-201-v1_1-096897.pth", CELLS)
    out = tmp_path / "from-pth.parquet"
    assert main(["table", "build", "--from", str(tmp_path / "NAS-Bench-201-v1_1-096897.pth"), "--out", str(out),
                 "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(built))


def test_readers_take_the_built_table_and_the_csv(built, tmp_path):
    df = pd.read_parquet(built)
    values = bench.load_table(built, "cifar10_test_acc_200ep")
    assert values == dict(zip(df["arch"], df["cifar10_test_acc_200ep"]))
    assert "cifar10_valid_valid_acc_curve_200ep" in bench.columns(built)
    curves = bench.load_curves(built, "cifar10_valid_valid_acc_curve_12ep")
    np.testing.assert_allclose(curves[df["arch"][0]], df["cifar10_valid_valid_acc_curve_12ep"][0])
    with pytest.raises(Exception, match="per-epoch curve"):
        bench.load_table(built, "cifar10_valid_valid_acc_curve_12ep")
    with pytest.raises(Exception, match="not a column"):
        bench.load_table(built, "nope")
    csv = tmp_path / "t.csv"
    df[["index", "arch", "cifar10_test_acc_200ep"]].to_csv(csv, index=False)
    assert bench.load_table(csv, "cifar10_test_acc_200ep") == pytest.approx(values)


def _fails(source, out, capsys, *needles):
    assert main(["table", "build", "--from", str(source), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nasflow: error:"), err
    for needle in needles:
        assert needle in err, err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "a table was (half) written"
    return err


def _copy(nats, tmp_path):
    import shutil

    root = tmp_path / "release"
    shutil.copytree(nats[0], root)
    return root


def test_a_payload_never_runs(nats, tmp_path, capsys):
    marker = tmp_path / "pwned"
    root = _copy(nats, tmp_path)
    rf.dump_pbz2(collections.OrderedDict([("12", rf.Payload(marker)), ("200", {})]), root / "000001.pickle.pbz2")
    _fails(root, tmp_path / "t.parquet", capsys, "000001.pickle.pbz2", "posix.system")
    pth = tmp_path / "evil.pth"
    import torch

    torch.save({"meta_archs": rf.Payload(marker)}, pth, _use_new_zipfile_serialization=False)
    _fails(pth, tmp_path / "t.parquet", capsys, "evil.pth", "refused")
    assert not marker.exists(), "the payload ran"
    # the plain pickle module would have run it: the payload is real
    pickle.loads(bz2.decompress((root / "000001.pickle.pbz2").read_bytes()))
    assert marker.exists()


def test_damaged_and_inconsistent_releases(nats, tmp_path, capsys):
    out = tmp_path / "t.parquet"
    root = _copy(nats, tmp_path)
    data = (root / "000001.pickle.pbz2").read_bytes()
    (root / "000001.pickle.pbz2").write_bytes(data[: len(data) // 2])
    _fails(root, out, capsys, "000001.pickle.pbz2", "truncated")
    (root / "000001.pickle.pbz2").write_bytes(bz2.compress(b"not a pickle at all"))
    _fails(root, out, capsys, "000001.pickle.pbz2")
    (root / "000001.pickle.pbz2").write_bytes(data)

    (root / "000005.pickle.pbz2").write_bytes(data)  # cell 1's results under cell 5's name
    _fails(root, out, capsys, "000005.pickle.pbz2", "expected 5")
    (root / "000005.pickle.pbz2").unlink()

    cell = collections.OrderedDict([("12", rf.cell(1, "12")), ("200", rf.cell(1, "200"))])
    del cell["200"]["dataset_seed"]["cifar100"]
    rf.dump_pbz2(cell, root / "000001.pickle.pbz2")
    _fails(root, out, capsys, "000001.pickle.pbz2", "cifar100", "200-epoch")
    del cell["200"]
    rf.dump_pbz2(cell, root / "000001.pickle.pbz2")
    _fails(root, out, capsys, "000001.pickle.pbz2", "200-epoch schedule is missing")
    (root / "000001.pickle.pbz2").write_bytes(data)

    meta = rf.meta()
    meta["meta_archs"] = meta["meta_archs"][:100]
    rf.dump_pbz2(meta, root / "meta.pickle.pbz2")
    _fails(root, out, capsys, "meta.pickle.pbz2", "100 arch strings")
    (root / "meta.pickle.pbz2").unlink()
    _fails(root, out, capsys, "no meta.pickle.pbz2")
    _fails(tmp_path / "nothing-here", out, capsys, "not found")
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    _fails(tmp_path / "junk.pth", out, capsys, "junk.pth")


def test_command_line_in_a_real_process(built, tmp_path):
    """One line and status 2 from the installed entry point too (no traceback wall)."""
    r = subprocess.run([sys.executable, "-m", "nasflow", "table", "build", "--from", str(tmp_path / "none"),
                        "--out", str(tmp_path / "t.parquet")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
