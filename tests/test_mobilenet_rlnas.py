"""RLNAS in the MobileNet-like space: the supernet's path sampling and weight sharing, the angle, evolution
under a FLOPs limit, the imagenet folder loader and the paper's params file."""
from __future__ import annotations

import copy
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nasflow.counting import count_flops
from nasflow.data import load_dataset
from nasflow.errors import DataError, ParamsError
from nasflow.estimators.mobilenet_angle import MobileNetAngleScorer, mobilenet_angle
from nasflow.estimators.rlnas import SupernetScorer, build_supernet
from nasflow.models.mobilenet import build_mobilenet, flops_of
from nasflow.models.mobilenet_supernet import MobileNetSupernet
from nasflow.search.rlnas_evolution import evolution_search, flops_limit
from nasflow.spaces import mobilenet as space
from stages.common import load_params, validate_params

ROOT = Path(__file__).resolve().parents[1]
SETTING = {"channels": 8, "image_size": 8, "batch_size": 8}  # width 0.2
# RLNAS' published arch (retrain_architecture/retrain.sh --model_id)
RLNAS_ARCH = space.from_rlnas_code([2, 0, -1, 2, 2, 0, 2, 4, 0, 4, 4, 2, 4, 2, 4, 2, 0, 0, 0, 2, 2])


@pytest.fixture(scope="module")
def supernet() -> MobileNetSupernet:
    return build_supernet(SETTING, 3, 0, "mobilenet")


def test_paths_are_uniform_over_each_blocks_choices_and_resume_from_the_saved_rng(supernet):
    first = list(space.FIRST_BLOCKS)
    allowed = [[0, 1, 2, 3, 4, 5] + ([] if b in first else [-1]) for b in range(space.N_BLOCKS)]
    rng = random.Random(0)  # the draws by hand: one uniform choice per block among its allowed codes, per batch
    by_hand = [tuple(a[rng.randrange(len(a))] for a in allowed) for _ in range(400)]
    codes = np.array(by_hand)
    assert (codes[:, first] >= 0).all()                     # no skip where a stage starts
    others = [b for b in range(space.N_BLOCKS) if b not in first]
    counts = np.array([(codes[:, others] == c).sum() for c in (-1, 0, 1, 2, 3, 4, 5)])
    assert counts.min() > 0.8 * counts.mean()               # 7 choices, uniform
    x = torch.zeros(2, 3, 8, 8)
    net = copy.deepcopy(supernet)
    net.reseed(0)
    net.eval()
    with torch.no_grad():
        drawn = [net(x) is not None and net.last_sampled for _ in range(2)]
        assert drawn == by_hand[:2]                         # the supernet draws exactly these paths
        state = net.state_dict()                            # the path RNG travels in the state dict
        expected = [net(x) is not None and net.last_sampled for _ in range(2)]
        other = MobileNetSupernet(0.2, 3, input_size=8, seed=99)
        other.load_state_dict(state)
        other.eval()
        assert [other(x) is not None and other.last_sampled for _ in range(2)] == expected == by_hand[2:4]


def test_a_fixed_arch_runs_the_network_of_that_arch_with_the_shared_weights(supernet):
    torch.manual_seed(0)
    net = build_mobilenet(RLNAS_ARCH, width=0.2, num_classes=3, input_size=8)
    codes = space.to_rlnas_code(RLNAS_ARCH)
    shared = supernet.state_dict()
    mapped = {}
    for name in net.state_dict():
        if name.startswith("blocks."):
            _, b, rest = name.split(".", 2)
            name_in_supernet = f"blocks.{b}.ops.{codes[int(b)]}.{rest}"
        else:
            name_in_supernet = name
        mapped[name] = shared[name_in_supernet]
    net.load_state_dict(mapped)
    x = torch.randn(4, 3, 8, 8)
    supernet.eval(), net.eval()
    with torch.no_grad():
        torch.testing.assert_close(supernet(x, RLNAS_ARCH), net(x))


def test_angle_is_the_arccos_of_the_hand_built_vectors_cosine(supernet):
    init = copy.deepcopy(supernet.state_dict())
    torch.manual_seed(1)
    final = {k: v + 0.05 * torch.randn_like(v) if torch.is_tensor(v) and v.is_floating_point() else v
             for k, v in init.items()}
    archs = [RLNAS_ARCH, ",".join(["k7e6"] * 21), space.sample(1, seed=3)[0]]

    def vector(state, arch):  # RLNAS' get_arch_vector, written out by parameter name
        names = ["stem.conv.0.weight", "stem.first_block.conv.0.weight", "stem.first_block.conv.3.weight",
                 "head.conv.0.weight", "head.classifier.1.weight"]
        parts = [state[n].double().flatten() for n in names]
        for b, code in enumerate(space.to_rlnas_code(arch)):
            if code == -1:
                spec = space.layout(0.2, 8).blocks[b]
                parts.append(torch.eye(spec.oup, spec.inp, dtype=torch.float64).flatten())
            else:
                parts += [state[f"blocks.{b}.ops.{code}.conv.{i}.{p}"].double().flatten()
                          for i, p in ((0, "weight"), (1, "weight"), (1, "bias"), (3, "weight"), (4, "weight"),
                                       (4, "bias"), (6, "weight"))]
        return torch.cat(parts)

    expected = [math.acos(float(torch.nn.functional.cosine_similarity(vector(init, a), vector(final, a), dim=0)))
                for a in archs]
    fast = MobileNetAngleScorer(init, final, supernet).scores(archs)
    np.testing.assert_allclose(fast, expected, rtol=1e-9)
    assert mobilenet_angle(init, final, archs[0], supernet) == pytest.approx(expected[0], rel=1e-9)
    assert MobileNetAngleScorer(init, init, supernet).score(archs[2]) == 0.0
    scorer = SupernetScorer(init, final, SETTING, None, seed=0, device="cpu", space="mobilenet")  # the stages' path
    np.testing.assert_allclose(scorer.score("angle", archs)[0], expected, rtol=1e-9)


def test_evolution_never_scores_an_arch_over_the_flops_limit():
    limit = 400_000  # width 0.2, 8 px, 10 classes: the archs span ~340k..475k
    constraint = flops_limit(space, limit, width=0.2, input_size=8, num_classes=10)
    scored: list[str] = []

    def score(archs):
        scored.extend(archs)
        return [-float(flops_of(a, width=0.2, input_size=8, num_classes=10)) for a in archs]

    found = evolution_search(score, space=space, seed=0, population=10, topk=3, n_mutations=4, n_crossovers=4,
                             mutation_prob=0.2, generations=3, constraint=constraint)
    def table_flops(arch):
        return flops_of(arch, width=0.2, input_size=8, num_classes=10, convention="rlnas")

    assert len(scored) == found["n_scored"] == 30 and len(set(scored)) == 30
    heaviest = max(scored, key=table_flops)
    # cross-check on the built network (nasflow counting) plus thop's extra (in - 2) per class for the classifier
    net = build_mobilenet(heaviest, width=0.2, num_classes=10, input_size=8)
    assert count_flops(net, (3, 8, 8)) + (1728 - 2) * 10 == table_flops(heaviest) <= limit
    assert sum(table_flops(a) > limit for a in space.sample(20, seed=1)) > 5  # the limit binds
    assert all(b in space.allowed_choices(i) for a in scored for i, b in enumerate(space.parse(a)))


def test_flops_limits_a_limit_below_the_smallest_arch_is_one_line_error():
    kw = dict(width=0.2, input_size=8, num_classes=10)
    smallest = flops_of(",".join("k3e3" if b in space.FIRST_BLOCKS else "skip" for b in range(21)),
                        convention="rlnas", **kw)
    assert flops_limit(space, smallest, **kw)(space.sample(1, seed=0)[0]) is False
    with pytest.raises(ParamsError, match=r"^evolution.max_flops: .* below the smallest arch's") as e:
        flops_limit(space, smallest - 1, **kw)
    assert "\n" not in str(e.value)
    from nasflow.spaces import nb201

    with pytest.raises(ParamsError, match="mobilenet space only"):
        flops_limit(nb201, 1e9, width=1.0, input_size=32, num_classes=10)


def _image_tree(root: Path) -> dict[str, tuple[int, int, int]]:
    from PIL import Image

    colours = {"cat": (255, 0, 0), "dog": (0, 255, 0), "eel": (0, 0, 255)}
    for split, n in (("train", 3), ("val", 2)):
        for name, rgb in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), rgb).save(folder / f"{i}.png")
    return colours


def test_imagenet_reads_an_image_folder_tree_at_the_settings_size(tmp_path):
    colours = _image_tree(tmp_path / "tree")
    splits = load_dataset("imagenet", path=tmp_path / "tree", image_size=4)
    assert tuple(splits.x_train.shape) == (9, 3, 4, 4) and tuple(splits.x_eval.shape) == (6, 3, 4, 4)
    assert splits.x_train.dtype == torch.uint8 and splits.num_classes == 3
    assert splits.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # classes: sorted folder names
    for x, y in zip(splits.x_eval, splits.y_eval):  # a solid colour stays that colour after the resize
        assert x[:, 0, 0].tolist() == list(colours[sorted(colours)[int(y)]])
    (tmp_path / "tree2" / "train").mkdir(parents=True)
    (tmp_path / "tree" / "train").rename(tmp_path / "tree2" / "train")
    with pytest.raises(DataError, match="val: no such folder"):
        load_dataset("imagenet", path=tmp_path / "tree2", image_size=4)


def test_paper_params_pass_and_the_space_rejects_what_it_cannot_run(capsys):
    params = load_params(ROOT / "params" / "paper-mobilenet-imagenet.yaml")
    assert params["space"] == "mobilenet" and params["evolution"]["max_flops"] == 475e6
    sn = params["settings"]["supernet"]
    assert (sn["epochs"], sn["batch_size"], sn["lr"], sn["weight_decay"], sn["label_smoothing"]) == (
        120, 512, 0.25, 4e-5, 0.1)  # REFERENCE.md, "MobileNet-like space"
    base = yaml.safe_load((ROOT / "params" / "paper-mobilenet-imagenet.yaml").read_text())

    def error(edit) -> str:
        p = copy.deepcopy(base)
        edit(p)
        with pytest.raises(ParamsError) as e:
            validate_params(p, "p.yaml")
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "differentiable searches run in the nb201 and darts" in error(
        lambda p: p["differentiable"].update(methods=["gdas"]))
    assert "settings.full.cells_per_stage: the mobilenet space has a fixed depth" in error(
        lambda p: p["settings"]["full"].update(cells_per_stage=5))
    assert "'all' enumerates the nb201 space only" in error(lambda p: p["supernet"].update(arch_sets=["all"]))
    assert "data.path: required" in error(lambda p: p["data"].update(path=None))
    nb201 = yaml.safe_load((ROOT / "params.yaml").read_text())
    nb201["evolution"]["max_flops"] = 1e9
    with pytest.raises(ParamsError, match="evolution.max_flops: a FLOPs limit applies in the mobilenet space only"):
        validate_params(nb201, "p.yaml")


def test_a_mobilenet_setting_states_its_width_multiplier_or_the_stem_width():
    base = yaml.safe_load((ROOT / "params" / "paper-mobilenet-imagenet.yaml").read_text())

    def check(edit):
        p = copy.deepcopy(base)
        edit(p["settings"]["full"])
        return validate_params(p, "p.yaml")["settings"]["full"]

    def size(s, **keys):  # the setting with only these size keys
        s.pop("channels", None)
        s.pop("width", None)
        s.update(keys)

    assert check(lambda s: size(s, width=0.25))["channels"] == 10  # 40 × 0.25: the stem width build_network takes
    assert check(lambda s: size(s, channels=10))["channels"] == 10
    for edit, message in [
        (lambda s: size(s, width=0.3, channels=40), "width 0.3 means channels 12"),
        (lambda s: size(s, width=0.33), "not a whole number of stem channels"),
        (lambda s: size(s), r"give width \(the mobilenet width multiplier\) or channels"),
    ]:
        with pytest.raises(ParamsError, match=message):
            check(edit)
    nb201 = yaml.safe_load((ROOT / "params.yaml").read_text())
    nb201["settings"]["bpe1"]["width"] = 0.5
    with pytest.raises(ParamsError, match=r"settings.bpe1.width: a mobilenet key; the nb201 space takes channels"):
        validate_params(nb201, "p.yaml")
