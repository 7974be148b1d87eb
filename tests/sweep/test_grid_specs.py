"""The grid specs in configs/sweeps compose, for every run, the config the retired scripts/fmnist_table.py
and scripts/fed_table.py trained (configs/fmnist_lt/ce.yaml + the method's overrides + the grid budget),
so the same seeds and budget give the same metrics as the tables in docs/results.md."""

import dataclasses
import json
from pathlib import Path

import pytest

from nclab.fed.config import load_fed_config
from nclab.sweep import expand, load_spec
from nclab.train import load_config
from tests.sweep.helpers import ROOT

SWEEPS = ROOT / "configs" / "sweeps"
RESULTS = ROOT / "results"

OLD_RECIPE = """
data: {name: fmnist, imbalance: 100}
model: {name: cnn_small, feature_dim: 128}
head: {name: linear}
loss: {name: ce}
optim: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5e-4}
sched: {kind: cosine, warmup_epochs: 1}
train: {epochs: 8, batch_size: 128, seed: 0}
"""
BUDGET = ["train.epochs=5", "data.val_fraction=0.1", "train.nc_every=1000", "train.eval_batch_size=1000"]
ZOO = {  # scripts/fmnist_table.py as it was (LAST = 4)
    "ce": [],
    "ce_ls": ["loss.kwargs.label_smoothing=0.1"],
    "focal": ["loss.name=focal", "loss.kwargs.gamma=1.0"],
    "cb": ["loss.name=cb", "loss.kwargs.beta=0.9999"],
    "ldam_drw": ["head.name=cosine", "head.kwargs.tau=1.0", "loss.name=ldam", "loss.kwargs.drw_epoch=4"],
    "la": ["loss.name=la", "loss.kwargs.tau=1.0"],
    "balanced_softmax": ["loss.name=balanced_softmax"],
    "sampler_cb": ["sampler.name=class_balanced"],
    "sampler_sqrt": ["sampler.name=square_root"],
    "sampler_progressive": ["sampler.name=progressive"],
    "drs": ["sampler.name=drs", "sampler.kwargs.start_epoch=4"],
    "mixup": ["train.mixup_alpha=0.2"],
    "wb": ["optim.weight_decay=5e-3", "optim.head_weight_decay=5e-3", "stage2.method=wb"],
    "fixed_etf_dr": [
        "model.feature_dim=10",
        "head.name=fixed_etf",
        "head.kwargs.normalize=true",
        "loss.name=dr",
    ],
    "fixed_etf_ce": ["model.feature_dim=10", "head.name=fixed_etf"],
}
STAGE2 = {"crt", "tau_norm", "lws"}  # "@ce" + stage2.method=<name>


def _effective(cfg) -> dict:
    """The config as training reads it: LDAM's default margin and scale, a null head weight decay (= the
    backbone's) written out, the K a fixed-ETF fragment reads."""
    d = dataclasses.asdict(cfg)
    if d["loss"]["name"] == "ldam":
        d["loss"]["kwargs"] = {"max_margin": 0.5, "scale": 30.0, **d["loss"]["kwargs"]}
    if d["optim"]["head_weight_decay"] is None:
        d["optim"]["head_weight_decay"] = d["optim"]["weight_decay"]
    d["data"].pop("num_classes")
    return d


@pytest.mark.parametrize("grid", ["fmnist_zoo", "fmnist_spa", "fmnist_etf"])
def test_fmnist_grid_specs_compose_the_scripts_configs(tmp_path, grid):
    old = tmp_path / "ce.yaml"
    old.write_text(OLD_RECIPE)
    runs = expand(load_spec(SWEEPS / f"{grid}.yaml"), tmp_path / "out")
    assert len({r.label for r in runs}) == len(runs)
    for r in runs:
        method = r.axes["method"]
        if method in STAGE2:
            assert r.source.axes == {**r.axes, "method": "ce"} and r.source.seed == r.seed
            assert r.overrides == [f"stage2.method={method}"] and r.files == []
            continue
        align = r.axes.get("align", "none")
        script = [f"data.imbalance={r.axes['imbalance']}", f"train.seed={r.seed}", *BUDGET, *ZOO[method]]
        if align != "none":
            script.append(f"align.strategies=[{align}]")
        assert _effective(load_config(r.files, r.overrides)) == _effective(load_config(old, script)), r.label


@pytest.mark.parametrize("spec", sorted(p.name for p in SWEEPS.glob("*.yaml")))
def test_every_sweep_spec_composes_a_valid_config_for_every_run(spec):
    """A spec's files and overrides compose, run by run, a config the schema accepts, so a grid never fails
    hours in on a typo in its last cell."""
    s = load_spec(SWEEPS / spec)
    load = load_fed_config if s.command == "fed" else load_config
    for r in expand(s, Path("out")):
        base = r.source or r  # a run that starts from another one adds its overrides to that run's config
        cfg = load(base.files, [*base.overrides, *(r.overrides if r.source else [])])
        assert (cfg.seed if s.command == "fed" else cfg.train.seed) == r.seed, r.label


def test_zoo_at_the_budget_is_the_zoo_with_the_budget_grids_settings():
    """configs/sweeps/fmnist_zoo_budget.yaml trains the runs of fmnist_zoo.yaml at the 30-epoch budget with
    the evaluation settings of fmnist_spa_if1000.yaml, so its CE, LA, Balanced Softmax and LDAM-DRW runs at
    IF = 1000 are the SpA grid's runs without alignment."""
    old = {r.key: r for r in expand(load_spec(SWEEPS / "fmnist_zoo.yaml"), Path("a"))}
    new = expand(load_spec(SWEEPS / "fmnist_zoo_budget.yaml"), Path("b"))
    assert {r.key for r in new} == set(old)
    spa = {
        (r.axes["method"], r.seed): r
        for r in expand(load_spec(SWEEPS / "fmnist_spa_if1000.yaml"), Path("c"))
        if r.axes["align"] == "none"
    }
    budget = ["train.epochs=30", "train.eval_every=5", "train.eval_batch_size=128", "train.channels_last=on"]
    for r in new:
        if r.source is not None:
            assert r.source.axes == {**r.axes, "method": "ce"} and r.overrides == old[r.key].overrides
            continue
        want = dataclasses.asdict(load_config(old[r.key].files, [*old[r.key].overrides, *budget]))
        assert dataclasses.asdict(load_config(r.files, r.overrides)) == want, r.label
        twin = spa.get((r.axes["method"], r.seed))
        if r.axes["imbalance"] == "1000" and twin is not None:
            assert dataclasses.asdict(load_config(twin.files, twin.overrides)) == want, r.label


def test_fed_grid_spec():
    runs = expand(load_spec(SWEEPS / "fed_fmnist.yaml"), Path("out"))
    assert len(runs) == 3 * 5 * 3
    for r in runs:
        cfg = load_fed_config(r.files, r.overrides)
        assert cfg.rounds == 5 and cfg.seed == r.seed
        assert cfg.method == r.axes["method"].replace("_cpc", "")
        expect_c = {"pcdd2": 2, "pcdd3": 3, "lt100_pcdd2": 2}[r.axes["setting"]]
        assert cfg.partition.classes_per_client == expect_c
        assert cfg.gela_c == (expect_c if r.axes["method"] == "fedgela_cpc" else None)
        assert cfg.data.imbalance == (100.0 if r.axes["setting"].startswith("lt100") else 1.0)


def test_fed_converge_spec_trains_every_method_with_the_authors_optimiser():
    runs = expand(load_spec(SWEEPS / "fed_fmnist_converge.yaml"), Path("out"))
    assert len(runs) == 5 * 3
    for r in runs:
        cfg = load_fed_config(r.files, r.overrides)
        assert (cfg.rounds, cfg.eval_every, cfg.seed, cfg.clients_per_round) == (100, 5, r.seed, 10)
        assert (cfg.partition.kind, cfg.partition.num_clients, cfg.partition.classes_per_client) == ("pcdd", 50, 2)
        assert cfg.data.imbalance == 1.0 and cfg.data.val_fraction == 0.1
        local = (cfg.local.lr, cfg.local.momentum, cfg.local.weight_decay, cfg.local.batch_size)
        assert local == (0.01, 0.9, 1e-4, 64) and cfg.local.drop_last and cfg.local.grad_clip == 20.0
        assert cfg.aggregate_by == "batches"
        method = r.axes["method"]
        assert cfg.method == ("fedgela" if method.startswith("fedgela") else method)
        assert cfg.gela_c == (2 if method == "fedgela_cpc" else None)
        assert cfg.head.name == ("gela_authors" if method == "fedgela_authors" else "")


def _in_setting(pcdd2: dict, setting: str) -> dict:
    """A resolved PCDD-2 config (as a dict) moved to a settings grid's ``setting``: PCDD-3 holds 3 classes
    per client, lt100_pcdd2 draws from the IF = 100 profile; nothing else differs."""
    if setting == "pcdd3":
        pcdd2["partition"]["classes_per_client"] = 3
    else:
        pcdd2["data"]["imbalance"] = 100.0
    return pcdd2


def test_fed_converge_settings_spec_is_the_pcdd2_protocol_on_pcdd3_and_the_if100_profile():
    pcdd2 = {
        r.axes["method"]: r for r in expand(load_spec(SWEEPS / "fed_fmnist_converge.yaml"), Path("a")) if r.seed == 0
    }
    runs = expand(load_spec(SWEEPS / "fed_fmnist_converge_settings.yaml"), Path("out"))
    assert len(runs) == 2 * 3 * 3
    for r in runs:
        cfg = dataclasses.asdict(load_fed_config(r.files, r.overrides))
        twin = pcdd2[r.axes["method"]]
        want = dataclasses.asdict(load_fed_config(twin.files, [*twin.overrides, f"seed={r.seed}"]))
        assert cfg == _in_setting(want, r.axes["setting"]), r.label


def test_fed_fair_pcdd2_spec_is_the_converge_protocol_with_a_learning_rate_axis():
    """fed_fmnist_fair_pcdd2.yaml: fed_fmnist_converge.yaml's runs of FedAvg, FedAvg + ETF, nclab's
    FedGELA (C = K and C = classes per client) and the authors' variant, and FedProx (FedAvg's run with
    method fedprox), with local.lr 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03 or 0.1 and nothing else
    changed."""
    converge = {
        (r.axes["method"], r.seed): r for r in expand(load_spec(SWEEPS / "fed_fmnist_converge.yaml"), Path("a"))
    }
    runs = expand(load_spec(SWEEPS / "fed_fmnist_fair_pcdd2.yaml"), Path("out"))
    assert len(runs) == 6 * 7 * 3
    for r in runs:
        cfg = dataclasses.asdict(load_fed_config(r.files, r.overrides))
        twin = converge[("fedavg" if r.axes["method"] == "fedprox" else r.axes["method"], r.seed)]
        want = dataclasses.asdict(load_fed_config(twin.files, twin.overrides))
        want["local"]["lr"] = float(r.axes["lr"])
        if r.axes["method"] == "fedprox":
            want["method"] = "fedprox"
        assert cfg == want, r.label


def test_fed_fair_settings_spec_is_the_settings_protocol_with_a_learning_rate_axis():
    """fed_fmnist_fair_settings.yaml: fed_fmnist_converge_settings.yaml's runs (PCDD-3 and the IF = 100
    profile) with fed_fmnist_fair_pcdd2.yaml's learning-rate axis plus 0.3 and nothing else changed
    (FedProx: FedAvg's run with method fedprox); the authors' FedGELA variant and FedGELA with
    C = classes per client (not in the converge grid) are fed_fmnist_fair_pcdd2.yaml's runs of them
    with the setting changed (C follows it: 3 on PCDD-3)."""
    settings = {
        (r.axes["setting"], r.axes["method"], r.seed): r
        for r in expand(load_spec(SWEEPS / "fed_fmnist_converge_settings.yaml"), Path("a"))
    }
    pcdd2_spec = load_spec(SWEEPS / "fed_fmnist_fair_pcdd2.yaml")
    pcdd2_rates = pcdd2_spec.axes["lr"]
    pcdd2 = {(r.axes["method"], r.axes["lr"], r.seed): r for r in expand(pcdd2_spec, Path("b"))}
    spec = load_spec(SWEEPS / "fed_fmnist_fair_settings.yaml")
    assert list(spec.axes["lr"]) == [*pcdd2_rates, "0.3"]
    assert all(spec.axes["lr"][k] == v for k, v in pcdd2_rates.items())
    runs = expand(spec, Path("out"))
    assert len(runs) == 2 * 6 * 8 * 3
    for r in runs:
        cfg = dataclasses.asdict(load_fed_config(r.files, r.overrides))
        if r.axes["method"] in ("fedgela_authors", "fedgela_cpc"):
            twin = pcdd2[(r.axes["method"], "0.01", r.seed)]
            want = _in_setting(dataclasses.asdict(load_fed_config(twin.files, twin.overrides)), r.axes["setting"])
            if r.axes["method"] == "fedgela_cpc":  # C is the setting's classes per client
                assert want["gela_c"] == 2
                want["gela_c"] = want["partition"]["classes_per_client"]
        else:
            twin = settings[(r.axes["setting"], r.axes["method"].replace("fedprox", "fedavg"), r.seed)]
            want = dataclasses.asdict(load_fed_config(twin.files, twin.overrides))
            want["method"] = r.axes["method"]
        want["local"]["lr"] = float(r.axes["lr"])
        assert cfg == want, r.label


def test_the_whole_fair_grid_is_the_union_of_its_two_cuts():
    """fed_fmnist_fair.yaml: 3 settings x 6 methods x 8 learning rates x 3 seeds, and every run of
    fed_fmnist_fair_pcdd2.yaml (PCDD-2) and fed_fmnist_fair_settings.yaml is one of its runs with the same
    resolved config; PCDD-2 at 0.3, in neither cut, is the cut's run at 0.1 with the rate changed."""
    whole = {
        (r.axes["setting"], r.axes["method"], r.axes["lr"], r.seed): r
        for r in expand(load_spec(SWEEPS / "fed_fmnist_fair.yaml"), Path("out"))
    }
    assert len(whole) == 3 * 6 * 8 * 3
    cuts = {
        ("pcdd2", r.axes["method"], r.axes["lr"], r.seed): r
        for r in expand(load_spec(SWEEPS / "fed_fmnist_fair_pcdd2.yaml"), Path("a"))
    }
    cuts |= {
        (r.axes["setting"], r.axes["method"], r.axes["lr"], r.seed): r
        for r in expand(load_spec(SWEEPS / "fed_fmnist_fair_settings.yaml"), Path("b"))
    }
    assert set(whole) - set(cuts) == {("pcdd2", m, "0.3", s) for m in {k[1] for k in whole} for s in (0, 1, 2)}
    for key, r in whole.items():
        cfg = dataclasses.asdict(load_fed_config(r.files, r.overrides))
        twin = cuts.get(key) or cuts[(*key[:2], "0.1", key[3])]
        want = dataclasses.asdict(load_fed_config(twin.files, twin.overrides))
        want["local"]["lr"] = float(key[2])
        assert cfg == want, r.label


@pytest.mark.parametrize(
    ("grid", "source"),
    [("fed_fmnist_fair_pcdd2", "fed_fmnist_converge"), ("fed_fmnist_fair_settings", "fed_fmnist_converge_settings")],
)
def test_the_fair_grids_records_copied_from_the_converge_grids_are_their_runs(grid, source):
    """The lr = 0.01 records of the fair grids' methods that the converge grids ran were copied from them
    (the same resolved config and seed): the same rows and counts, a config that differs in run_dir
    only. The others (a method the converge grid lacks) were trained here."""
    from omegaconf import OmegaConf

    in_source = set(load_spec(SWEEPS / f"{source}.yaml").axes["method"])
    copied = []
    for p in sorted((RESULTS / grid).glob("**/lr=0.01/seed=*/sweep.json")):
        rec = json.loads(p.read_text())
        assert ("copied_from" in rec) == (rec["axes"]["method"] in in_source), p
        if "copied_from" in rec:
            copied.append((p.parent, rec))
    assert copied
    for d, rec in copied:
        src = ROOT / rec["copied_from"]
        assert src.is_relative_to(RESULTS / source)
        # the same axes and seed: the source's path is the copy's without its lr=0.01 part
        assert src.relative_to(RESULTS / source) == d.relative_to(RESULTS / grid).parent.parent / d.name
        for f in ("metrics.jsonl", "classes.json"):
            assert (d / f).read_bytes() == (src / f).read_bytes(), d / f
        a, b = (OmegaConf.to_container(OmegaConf.load(x / "config.yaml")) for x in (d, src))
        assert a.pop("run_dir") != b.pop("run_dir") and a == b


@pytest.mark.parametrize(
    ("spec", "changes"),
    [
        ("fed_fmnist_gela_floor", {"fedgela_floor": {"gela_phi_min": 1.0}}),
        (
            "fed_fmnist_gela_scales",
            {
                "fedgela_equal": {"gela_phi_min": 1.0, "gela_phi_max": 1.0},
                "fedgela_missing1": {"gela_phi_missing": 1.0},
            },
        ),
    ],
)
def test_fed_gela_scale_specs_are_the_if100_fedgela_run_with_its_scales_changed(spec, changes):
    """fed_fmnist_gela_floor.yaml and fed_fmnist_gela_scales.yaml: fed_fmnist_converge_settings.yaml's
    IF = 100 FedGELA runs with only the scale options of each arm changed, under the same axis names (so
    one table pairs them)."""
    settings = {
        (r.axes["setting"], r.axes["method"], r.seed): r
        for r in expand(load_spec(SWEEPS / "fed_fmnist_converge_settings.yaml"), Path("a"))
    }
    runs = expand(load_spec(SWEEPS / f"{spec}.yaml"), Path("out"))
    assert len(runs) == 3 * len(changes) and {r.axes["setting"] for r in runs} == {"lt100_pcdd2"}
    for r in runs:
        cfg = dataclasses.asdict(load_fed_config(r.files, r.overrides))
        twin = settings[("lt100_pcdd2", "fedgela", r.seed)]
        want = dataclasses.asdict(load_fed_config(twin.files, twin.overrides))
        change = changes[r.axes["method"]]
        assert all(want[k] != v for k, v in change.items())  # the twin has the paper's rule
        assert cfg == {**want, **change}, r.label


def test_every_record_in_results_is_a_run_of_its_spec_that_a_sweep_skips():
    """results/NAME holds compact records (config, counts, rows, sweep.json) of the runs of one spec: each
    is a run of the spec its sweep.json names (same axes and seed, same place), and complete, so
    `nclab sweep SPEC --out results/NAME` on a fresh clone trains only what is missing (docs/sweep.md).
    A run still training here (its checkpoints beside it, never committed) is left out."""
    from nclab.rundir import RunDir
    from nclab.sweep.execute import RECORD

    records = sorted(p.parent for p in RESULTS.glob(f"*/**/{RECORD}"))
    assert records, "results/ holds no records"
    runs_of: dict[Path, set[Path]] = {}
    for d in records:
        if (d / "checkpoints").is_dir():
            continue  # being trained by a sweep on this machine
        rec = json.loads((d / RECORD).read_text())
        out = RESULTS / d.relative_to(RESULTS).parts[0]
        spec = ROOT / rec["spec"]
        if spec not in runs_of:
            runs_of[spec] = {r.dir.resolve() for r in expand(load_spec(spec), out)}
        assert d.resolve() in runs_of[spec], f"{d} is not a run of {rec['spec']}"
        assert RunDir(d).is_complete(), f"{d} is incomplete"


@pytest.mark.parametrize("grid", ["fmnist_spa_if1000", "fmnist_spa_if100"])
def test_spa_grids_use_the_settings_the_tuning_chose(grid):
    """Each strategy of the SpA grids runs with the setting of configs/sweeps/fmnist_spa_tune.yaml that has
    the best last-epoch validation balanced accuracy in its records (results/fmnist_spa_tune)."""
    from nclab.rundir import RunDir

    tune = expand(load_spec(SWEEPS / "fmnist_spa_tune.yaml"), RESULTS / "fmnist_spa_tune")
    best: dict[str, tuple[float, list[str]]] = {}
    for r in tune:
        strategy = r.axes["setting"].split("_")[0]
        if strategy == "none":
            continue
        rows, torn = RunDir(r.dir).rows()
        assert not torn, r.dir
        score = rows[-1]["val/balanced_acc"]
        if strategy not in best or score > best[strategy][0]:
            best[strategy] = (score, [o for o in r.overrides if o.startswith("align.")])
    assert set(best) == {"slerp", "proj", "reg"}
    chosen = load_spec(SWEEPS / f"{grid}.yaml").axes["align"]
    for strategy, (_, overrides) in best.items():
        assert sorted(chosen[strategy].overrides) == sorted(overrides), strategy


def test_la_tuned_arm_uses_the_tau_the_tuning_chose():
    """The `la_tau2` baseline of the SpA grid is LA at the tau of configs/sweeps/fmnist_la_tune.yaml with
    the best last-epoch validation balanced accuracy in its records (results/fmnist_la_tune)."""
    from nclab.rundir import RunDir

    tune = expand(load_spec(SWEEPS / "fmnist_la_tune.yaml"), RESULTS / "fmnist_la_tune")
    scores = {}
    for r in tune:
        rows, torn = RunDir(r.dir).rows()
        assert not torn and RunDir(r.dir).is_complete(), r.dir
        scores[float(r.axes["tau"])] = rows[-1]["val/balanced_acc"]
    best = max(scores, key=scores.get)
    assert min(scores) < best < max(scores), "the best tau is at the grid's edge: widen the grid"
    arm = [
        r
        for r in expand(load_spec(SWEEPS / "fmnist_spa_if1000.yaml"), Path("x"))
        if r.axes["method"] == "la_tau2"
    ]
    assert len(arm) == 4 * 5
    for r in arm:
        cfg = load_config(r.files, r.overrides)
        assert cfg.loss.name == "la" and cfg.loss.kwargs["tau"] == best, r.label


def test_tuned_zoo_uses_the_settings_the_tuning_chose():
    """configs/sweeps/fmnist_zoo_tuned.yaml runs each method whose tuning (results/fmnist_lt_tune: best
    last-epoch validation balanced accuracy) chose a value other than the zoo's default at that value,
    and no other method but CE, its baseline."""
    from nclab.rundir import RunDir

    method_of = {
        "focal": "focal",
        "cb": "cb",
        "ldam": "ldam_drw",
        "mixup": "mixup",
        "ls": "ce_ls",
        "wb": "wb",
    }
    tune = load_spec(SWEEPS / "fmnist_lt_tune.yaml")
    best: dict[str, tuple[float, str]] = {}
    for r in expand(tune, RESULTS / "fmnist_lt_tune"):
        rows, torn = RunDir(r.dir).rows()
        assert not torn and RunDir(r.dir).is_complete(), r.dir
        method = method_of[r.axes["setting"].split("_")[0]]
        score = rows[-1]["val/balanced_acc"]
        if method not in best or score > best[method][0]:
            best[method] = (score, r.axes["setting"])
    chosen = {m: tune.axes["setting"][setting] for m, (_, setting) in best.items()}
    zoo = load_spec(SWEEPS / "fmnist_zoo_budget.yaml").axes["method"]
    tuned = load_spec(SWEEPS / "fmnist_zoo_tuned.yaml").axes["method"]
    for method, choice in chosen.items():
        value = load_config(list(choice.files), list(choice.overrides))
        if value == load_config(list(zoo[method].files), list(zoo[method].overrides)):
            assert method not in tuned, f"{method}: the tuning kept its default"
        else:
            arm = tuned[method]
            assert load_config(list(arm.files), list(arm.overrides)) == value, method
    assert set(tuned) - set(chosen) == {"ce"}


def _results_table_commands() -> list[list[str]]:
    """The `nclab table results/... --block NAME` commands of docs/results.md's bash blocks, with their
    continuation lines joined and the shell variables they set (M="...") expanded."""
    import re
    import shlex

    text = (ROOT / "docs" / "results.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        env: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if m := re.fullmatch(r'(\w+)="(.*)"', line):
                env[m[1]] = m[2]
            elif line.startswith("nclab table results/") and "--block" in line:
                for k, v in env.items():
                    line = line.replace(f"${k}", v)
                commands.append(shlex.split(line)[1:])
    return commands


def test_docs_results_tables_regenerate_from_results(tmp_path, monkeypatch):
    """Every table of docs/results.md that its text says comes from results/ is what `nclab table` writes
    from the committed records today, on a fresh clone included."""
    from nclab.cli import main

    doc = ROOT / "docs" / "results.md"
    copy = tmp_path / "results.md"
    copy.write_text(doc.read_text())
    commands = _results_table_commands()
    assert len(commands) >= 4, commands
    monkeypatch.chdir(ROOT)
    for argv in commands:
        if not Path(argv[1]).exists():  # a grid not run yet: its block says so
            name = argv[argv.index("--block") + 1]
            assert f"<!-- {name}:begin -->\nNot yet run." in copy.read_text(), name
            continue
        argv[argv.index("--out") + 1] = str(copy)
        assert main(argv) == 0, argv
    assert copy.read_text() == doc.read_text()
