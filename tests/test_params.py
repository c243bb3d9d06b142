"""params.yaml validation: a wrong key or value is one line naming it, exit status 2, no traceback."""
import copy
import subprocess
import sys

import pytest
import yaml

from nasflow.errors import ParamsError
from stages.common import ROOT, load_params, validate_params

DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_and_paper_params_are_valid():
    validate_params(copy.deepcopy(DEFAULT))
    for path in sorted((ROOT / "params").glob("*.yaml")):
        load_params(path)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(sead=1), "params.yaml: sead: unknown key (did you mean seed?)"),
    (lambda p: p["settings"]["bpe1"].update(epoch=3), "settings.bpe1.epoch: unknown key (did you mean epochs?)"),
    (lambda p: p["settings"]["bpe1"].update(weight_decya=3e-4),
     "params.yaml: settings.bpe1.weight_decya: unknown key (did you mean weight_decay?)"),
    (lambda p: p["sample"].update(narchs=3), "sample.narchs: unknown key (did you mean n_archs?)"),
    (lambda p: p["report"].update(zzz=3), "report.zzz: unknown key (known: bootstrap)"),
    (lambda p: p["settings"]["bpe1"].update(precision=8), "settings.bpe1.precision: 8 is not one of [16, 32]"),
    (lambda p: p["data"].update(dataset="mnist"), "data.dataset: 'mnist' is not one of"),
    (lambda p: p.update(space="resnet"), "space: 'resnet' is not one of"),
    (lambda p: p["proxy"].update(settings=["bpe3"]), "proxy.settings: unknown setting 'bpe3'"),
    (lambda p: p["settings"]["bpe1"].update(layers=6), "settings.bpe1.layers: not a key of the nb201 space"),
    (lambda p: p.update(ground_truth={"source": "table", "setting": "full"}), "ground_truth.path: required"),
    (lambda p: p["settings"]["bpe2"].update(epochs=0), "settings.bpe2.epochs: 0 is less than the minimum of 1"),
    (lambda p: p["differentiable"].update(layers=8), "differentiable.layers: not a key of the nb201 space"),
    (lambda p: p["differentiable"].update(overrides={"enas": {"batchsize": 128}}),
     "differentiable.overrides.enas.batchsize: unknown key (did you mean batch_size?)"),
    (lambda p: p["differentiable"].update(overrides={"enas": {"w_lr": -1}}), "differentiable.overrides.enas.w_lr: -1"),
    (lambda p: p["differentiable"].update(overrides={"enaz": {"w_lr": 1}}), "differentiable.overrides: unknown method 'enaz'"),
])
def test_bad_params_name_the_key(edit, message):
    params = copy.deepcopy(DEFAULT)
    edit(params)
    with pytest.raises(ParamsError) as e:
        validate_params(params)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


DARTS = yaml.safe_load((ROOT / "params" / "paper-darts-cifar10.yaml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["supernet"].update(arch_sets=["sampled", "all"]), "supernet.arch_sets: 'all' enumerates the nb201 space only"),
    (lambda p: p["differentiable"].update(methods=["gdas", "setn"]), "differentiable.methods: setn ranks every cell"),
    (lambda p: p["differentiable"].update(cells_per_stage=5), "differentiable.cells_per_stage: not a key of the darts space"),
    (lambda p: p["differentiable"].pop("layers"), "differentiable.layers: required in the darts space"),
    (lambda p: p["settings"]["supernet"].pop("layers"), "settings.supernet.layers: required in the darts space"),
    (lambda p: p["search"].update(estimators=["table"]), "search.estimators"),
])
def test_bad_darts_params_name_the_key(edit, message):
    params = copy.deepcopy(DARTS)
    edit(params)
    with pytest.raises(ParamsError) as e:
        validate_params(params)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_stage_reports_bad_params_in_one_line(tmp_path, engine_env):
    params = copy.deepcopy(DEFAULT)
    params["settings"]["bpe1"]["epohcs"] = 3
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    out = tmp_path / "archs.jsonl"
    r = subprocess.run([sys.executable, "-m", "stages.sample_archs", "--params", str(path), "--out", str(out)],
                       cwd=ROOT, env=engine_env, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "epohcs" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_defaults_are_neutral_and_filled_in_defaults_are_named(capsys):
    params = copy.deepcopy(DEFAULT)
    validate_params(params)
    assert capsys.readouterr().err == ""  # the demo states every protocol key
    assert params["supernet"]["grad_reset"] == "zeros"
    assert params["settings"]["bpe1"]["augment_order"] == "crop_then_resize"
    assert params["settings"]["full"]["augment_order"] == "resize_then_crop"
    params = copy.deepcopy(DEFAULT)
    for key in ("momentum", "nesterov", "grad_clip"):
        del params["settings"]["full"][key]
    del params["settings"]["bpe1"]["grad_clip"]
    del params["supernet"]["grad_reset"]
    validate_params(params)
    full, bpe1 = params["settings"]["full"], params["settings"]["bpe1"]
    assert (full["momentum"], full["nesterov"], full["grad_clip"]) == (0.9, False, None)
    assert bpe1["grad_clip"] is None and params["supernet"]["grad_reset"] == "zeros"
    err = capsys.readouterr().err.splitlines()
    assert err == ["params.yaml: settings.bpe1: filled in defaults grad_clip=null",
                   "params.yaml: settings.full: filled in defaults momentum=0.9, nesterov=false, grad_clip=null"]


def test_jobs_per_gpu_defaults_to_one_and_is_checked():
    params = copy.deepcopy(DEFAULT)
    params["parallel"].pop("jobs_per_gpu", None)
    assert validate_params(params)["parallel"]["jobs_per_gpu"] == 1
    params = copy.deepcopy(DEFAULT)
    params["parallel"]["jobs_per_gpu"] = 3
    assert validate_params(params)["parallel"]["jobs_per_gpu"] == 3
    for bad, message in [(0, "0 is less than the minimum of 1"), (1.5, "1.5 is not of type 'integer'")]:
        params["parallel"]["jobs_per_gpu"] = bad
        with pytest.raises(ParamsError, match=f"parallel.jobs_per_gpu: {message}"):
            validate_params(params)
