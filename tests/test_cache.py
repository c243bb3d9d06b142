"""The per-arch cache is trustworthy: results follow the code (fingerprints), concurrent jobs train an arch
once (per-arch locks), and writes are atomic with readable permissions."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nasflow.cache import atomic_path, code_fingerprint, module_closure

ROOT = Path(__file__).resolve().parents[1]
SETTING = {"epochs": 1, "batch_size": 64, "lr": 0.05, "weight_decay": 3e-4, "channels": 4, "cells_per_stage": 1,
           "image_size": 8}


def test_closure_follows_imports_and_the_space_registry():
    closure = module_closure("nasflow.estimators.proxy", "nasflow.spaces.nb201")
    # imports at the top, inside functions and via strings (nasflow.registry names the spaces and the network
    # modules proxy training builds from)
    assert {"nasflow.train", "nasflow.data", "nasflow.registry", "nasflow.models.nb201", "nasflow.models.ops",
            "nasflow.spaces.darts"} <= set(closure)
    assert "nasflow.analysis.report" not in closure and "nasflow.search.differentiable" not in closure
    assert "stages.proxy_train" in module_closure("stages.proxy_train")
    with pytest.raises(ValueError):
        module_closure("torch.nn")


def _fingerprint_in(tree: Path, *modules) -> str:
    code = f"from nasflow.cache import code_fingerprint; print(code_fingerprint(*{modules!r}))"
    r = subprocess.run([sys.executable, "-c", code], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_fingerprint_changes_with_the_code_it_depends_on_only(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "nasflow", tree / "nasflow", ignore=shutil.ignore_patterns("__pycache__"))
    modules = ("nasflow.estimators.proxy", "nasflow.spaces.nb201")
    before = _fingerprint_in(tree, *modules)
    assert before == code_fingerprint(*modules)  # the copy is the same code
    with open(tree / "nasflow/analysis/report.py", "a") as f:  # not imported by proxy training
        f.write("\n# an edit elsewhere\n")
    assert _fingerprint_in(tree, *modules) == before
    with open(tree / "nasflow/models/nb201_supernet.py", "a") as f:  # a model proxy training never builds
        f.write("\n# an edit of the supernet\n")
    assert _fingerprint_in(tree, *modules) == before
    # the space module names no network code; proxy training reaches it through the registry
    assert not any(m.startswith("nasflow.models") for m in module_closure("nasflow.spaces.nb201"))
    with open(tree / "nasflow/models/nb201.py", "a") as f:  # the network proxy training builds
        f.write("\n# a fix in the network\n")
    after_network_edit = _fingerprint_in(tree, *modules)
    assert after_network_edit != before
    with open(tree / "nasflow/models/ops.py", "a") as f:  # an uncommitted edit of an op counts
        f.write("\n# a fix in an op\n")
    assert _fingerprint_in(tree, *modules) not in (before, after_network_edit)


@pytest.fixture(scope="module")
def digits():
    from nasflow.data import load_dataset

    return load_dataset("digits", subset=128)


def test_results_are_reused_only_by_the_same_code(tmp_path, digits, monkeypatch):
    import nasflow.estimators.proxy as proxy
    from nasflow.spaces import get_space

    space = get_space("nb201")
    archs = space.sample(2, seed=3)
    kw = dict(space=space, setting=SETTING, splits=digits, seed=0, device="cpu", work_dir=tmp_path, progress=False)
    trained = []
    real = proxy._train_group
    monkeypatch.setattr(proxy, "_train_group", lambda group, **k: trained.extend(group) or real(group, **k))

    first = proxy.train_archs(archs, **kw)
    assert trained == archs and all(r["fingerprint"] == first[0]["fingerprint"] for r in first)
    assert proxy.train_archs(archs, **kw) == first and trained == archs  # same code: reused, nothing trained

    monkeypatch.setattr(proxy, "code_fingerprint", lambda *m: "0123456789abcdef")  # as after an edit
    again = proxy.train_archs(archs, **kw)
    assert trained == archs * 2  # retrained, every arch
    assert all(r["fingerprint"] == "0123456789abcdef" for r in again)
    assert [r["final_acc"] for r in again] == [r["final_acc"] for r in first]  # (the code did not really change)
    stored = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert {r["fingerprint"] for r in stored} == {"0123456789abcdef"}


def test_a_checkpoint_from_other_code_is_not_resumed(tmp_path, digits):
    import torch

    from nasflow.estimators.proxy import arch_seed, depth_of, train_arch, train_config
    from nasflow.registry import build_network
    from nasflow.spaces import get_space
    from nasflow.train import train

    space = get_space("nb201")
    arch = space.sample(1, seed=5)[0]
    setting = {**SETTING, "epochs": 2}
    kw = dict(space=space, setting=setting, splits=digits, seed=0, device="cpu", progress=False)
    straight = train_arch(arch, **kw, fingerprint="aaaa")

    def one_epoch(fingerprint):  # a job killed after its first epoch
        s = arch_seed(0, arch)
        torch.manual_seed(s)
        model = build_network(space, arch, channels=4, depth=depth_of(space, setting),
                              num_classes=digits.num_classes)
        train(model, digits, train_config(setting), seed=s, device="cpu", checkpoint=tmp_path / "a.pt",
              progress=False, stop_after_epochs=1, fingerprint=fingerprint)

    one_epoch("bbbb")
    other = train_arch(arch, **kw, checkpoint=tmp_path / "a.pt", fingerprint="aaaa")
    assert other["resumed_from"] is None and other["fingerprint"] == "aaaa"  # started again
    (tmp_path / "a.pt").unlink()
    one_epoch("aaaa")
    same = train_arch(arch, **kw, checkpoint=tmp_path / "a.pt", fingerprint="aaaa")
    assert same["resumed_from"] == 1  # same code: resume stays free
    assert other["final_acc"] == same["final_acc"] == straight["final_acc"]


WORKER = textwrap.dedent("""
    import json, os, sys
    import nasflow.estimators.proxy as proxy
    from nasflow.data import load_dataset
    from nasflow.spaces import get_space

    log, work, archs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    real = proxy._train_group
    def counted(group, **kw):  # one line per training actually started, appended atomically (O_APPEND)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, "".join(json.dumps([os.getpid(), arch]) + "\\n" for arch in group).encode())
        os.close(fd)
        return real(group, **kw)
    proxy._train_group = counted
    setting, pack = json.loads(sys.argv[4]), int(sys.argv[5])
    results = proxy.train_archs(archs, space=get_space("nb201"), setting=setting,
                                splits=load_dataset("digits", subset=256), seed=0, device="cpu", work_dir=work,
                                progress=False, pack=pack)
    print(json.dumps({r["arch"]: r["final_acc"] for r in results}))
""")


@pytest.mark.parametrize("pack", [1, 2])
def test_two_processes_train_each_shared_arch_once(tmp_path, pack):
    # with pack 2 each job holds two archs' locks at once while it trains them side by side
    from nasflow.spaces import get_space

    a = get_space("nb201").sample(5, seed=11)
    jobs = [a[0:4], [a[3], a[2], a[1], a[4]]]  # three archs in common, met in opposite orders
    log, work = tmp_path / "trained.log", tmp_path / "work"
    setting = {**SETTING, "epochs": 2}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # two jobs, one core each: no oversubscription
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(log), str(work), json.dumps(j), json.dumps(setting),
                               str(pack)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for j in jobs]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    trained = [json.loads(line)[1] for line in log.read_text().splitlines()]
    assert sorted(trained) == sorted(a), "every arch trained exactly once"
    for arch in set(jobs[0]) & set(jobs[1]):  # the waiting job read the other's result
        assert outs[0][arch] == outs[1][arch]
    files = sorted(work.glob("*.json"))
    assert len(files) == 5 and all(json.loads(f.read_text())["arch"] in a for f in files)  # each JSON whole
    assert not list(work.glob("*.tmp")) and not list(work.glob("*.pt"))


def test_atomic_writes_are_readable_by_others_and_never_half_done(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
            assert not (tmp_path / "a.json").exists()
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        with pytest.raises(RuntimeError):
            with atomic_path(tmp_path / "b.json") as tmp:
                tmp.write_text("{half")
                raise RuntimeError
        assert list(tmp_path.iterdir()) == [tmp_path / "a.json"]
    finally:
        os.umask(old)


@pytest.mark.slow
def test_snakemake_retrains_after_a_code_edit_and_reuses_otherwise(tmp_path, engine_env):
    from tests.test_engines import make_study, run

    study = make_study(tmp_path)
    smk = [sys.executable, "-m", "snakemake", "--cores", "2"]
    target = "results/proxy/bpe1.json"
    run([*smk, target], study, engine_env)
    work = next((study / "results/work").glob("bpe1-*"))

    def cached():
        return {p.name: (p.stat().st_mtime_ns, json.loads(p.read_text())) for p in sorted(work.glob("*.json"))}

    first = cached()
    assert len(first) == 4
    run([*smk, "--forceall", target], study, engine_env)  # unchanged code: the stage reruns, the archs are reused
    assert cached() == first
    with open(study / "nasflow/models/ops.py", "a") as f:  # an (uncommitted) edit of code that shapes results
        f.write("\n# a fix in an op\n")
    r = run([*smk, target], study, engine_env)
    assert "proxy_train" in r.stdout + r.stderr  # Snakemake reran the stage (a code input changed) ...
    edited = cached()
    for name, (mtime, result) in edited.items():  # ... and every arch was trained again by the new code
        assert mtime != first[name][0]
        assert result["fingerprint"] != first[name][1]["fingerprint"]
        assert result["final_acc"] == first[name][1]["final_acc"]  # (a comment changes no number)
    gathered = json.loads((study / target).read_text())
    assert {r["fingerprint"] for r in gathered["results"]} == {r["fingerprint"] for _, r in edited.values()}
    assert len(gathered["provenance"]["fingerprint"]) == 16  # the artifact records the code that made it


def test_stage_outputs_get_the_usual_permissions(tmp_path, engine_env):
    """On a shared file system colleagues must be able to read the results (mkstemp alone gives 0600)."""
    from tests.test_engines import make_study

    study = make_study(tmp_path)
    shards = []
    for i in range(2):
        shard = study / f"results/proxy/x/shard-{i}-of-2.json"
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_text(json.dumps({"kind": "proxy", "shard": [i, 2], "seconds": 1.0, "device": "cpu",
                                     "results": [{"id": i, "arch": "a", "final_acc": 1.0, "seconds": 1.0}]}))
        shards.append(str(shard))
    script = ("import os, subprocess, sys; os.umask(0o022); "
              "subprocess.run([sys.executable, '-m', 'stages.sample_archs', '--params', 'params.yaml', "
              "'--out', 'results/archs.jsonl'], check=True); "
              "subprocess.run([sys.executable, '-m', 'stages.gather', '--out', 'results/proxy/x.json', *sys.argv[1:]], "
              "check=True)")
    subprocess.run([sys.executable, "-c", script, *shards], cwd=study, env=engine_env, check=True)
    for out in ("results/archs.jsonl", "results/proxy/x.json"):
        assert (study / out).stat().st_mode & 0o777 == 0o644, out
