"""stages/bpe_search.py pieces that need no training: adopting the choice into a params file."""
import json

import yaml

from stages.bpe_search import adopt
from stages.common import ROOT, load_params


def test_adopt_writes_the_choice_as_yaml_that_reads_back_as_numbers(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("\nsettings:\n", "\nsettings:   # the budgets\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    params = load_params(path)
    full = {**params["settings"]["bpe1"], "weight_decay": 4e-5, "lr": 1e-5}  # json.dumps would write 4e-05
    out = tmp_path / "bpe_search"
    out.mkdir()
    (out / "best.json").write_text(json.dumps({"setting": "e1-b64", "full": full}))
    adopt(params, path, out)
    again = load_params(path)
    assert again["settings"]["bpe_search"] == full
    assert "# the budgets" in path.read_text() and "# nasflow demo study" in path.read_text()  # comments kept
    assert yaml.safe_load(path.read_text())["settings"]["bpe_search"]["weight_decay"] == 4e-5


def test_a_search_estimator_may_name_the_budget_searchs_choice(tmp_path, monkeypatch):
    from stages.search_setting import estimator_setting

    params = load_params(ROOT / "params.yaml")
    params["search"]["estimators"] = ["proxy_bpe_search"]
    monkeypatch.chdir(tmp_path)
    # before the search ran: Snakemake names the file (params known at DAG time), the stage says what is missing
    assert estimator_setting(params, "proxy_bpe_search", resolve=False)["values"] == "results/bpe_search/best.json"
    import pytest

    from nasflow.errors import CheckpointError

    with pytest.raises(CheckpointError, match="missing input file: results/bpe_search/best.json"):
        estimator_setting(params, "proxy_bpe_search")
    full = {**params["settings"]["bpe1"], "epochs": 1}
    (tmp_path / "results" / "bpe_search").mkdir(parents=True)
    (tmp_path / "results" / "bpe_search" / "best.json").write_text(json.dumps({"setting": "e1", "full": full}))
    assert estimator_setting(params, "proxy_bpe_search") == {"estimator": "proxy_bpe_search", "setting": "bpe_search",
                                                            "values": full}
