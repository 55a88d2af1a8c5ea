"""AutoTrainer: config validation, search through the engine, plain Dask and locally, pruning,
weights-only export, and a real resume after killing a search process."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")
import sqlalchemy.exc  # noqa: E402  (optuna's storage layer)

from openautoglm.auto.autotrain.trainer import AutoTrainer  # noqa: E402
from openautoglm.auto.autotrain.config import AutoTrainConfigError, load_config  # noqa: E402
from openautoglm.models.registry import get_model
from openautoglm.glm.checkpoint import load_glm  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def tiny(tmp_path, **over):
    """A tiny search: 1-layer models of width 16, 10-20 steps (well under a second a trial)."""
    cfg = {
        "data": {"max_chars": 12_000},
        "model_space": {"n_layers": 1, "hidden": [8, 16], "heads": 2, "max_len": 32},
        "training": {"steps": {"low": 10, "high": 20}, "batch_size": 4, "seq_len": 24, "eval_every": 5},
        "search": {"trials": 3, "parallel": 3, "storage": str(tmp_path / "study.sqlite")},
        "evaluation": {"examples": 2, "prompt_chars": 16, "target_chars": 8},
        "cluster": {"policy": "sequential", "n_workers": 2},
        "output_dir": str(tmp_path / "out"),
    }
    for section, values in over.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- configuration -----------------------------------------------------------------------------
def test_example_config_loads_and_resolves_paths(tmp_path, monkeypatch):
    """Outputs (study, trial weights, export) go to the working directory, never beside the
    configuration: the example config used to write into tests/data/ of the repository."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(DATA / "autotrain.yaml")
    assert cfg.metric == "loss" and cfg.direction == "minimize"
    assert cfg.search.storage == str(tmp_path / "autotrain-study.sqlite")
    assert cfg.output_dir == tmp_path / "autotrain-out"
    assert cfg.export == tmp_path / "best_model.pt"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("x" * 2000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("data: {path: ../corpus.txt}\n")
    assert load_config(tmp_path / "sub" / "c.yaml").data.path == tmp_path / "sub" / ".." / "corpus.txt"
    space = cfg.search_space()
    assert space["n_layers"] == [1, 2] and space["heads"] == 2 and space["lr"].log


def test_bad_config_names_each_field_and_allowed_values():
    with pytest.raises(AutoTrainConfigError) as info:
        AutoTrainer(DATA / "autotrain_bad.yaml")
    msg = str(info.value)
    assert "metric: Input should be 'loss', 'bleu', 'rouge-1', 'rouge-2' or 'rouge-l' (got 'accuracy')" in msg
    assert "search.sampler: Input should be 'tpe' or 'random' (got 'grid')" in msg


@pytest.mark.parametrize(
    ("config", "match"),
    [({"model_space": {"hidden": [32], "heads": [3]}}, "hidden=32 is not a multiple of heads=3"),
     ({"training": {"lr": {"low": 0.1, "high": 0.01}}}, "training.lr: bad range"),
     ({"training": {"steps": "many"}}, "training.steps: must be a number, a list"),
     ({"training": {"seq_len": 256}}, "exceeds model_space.max_len"),
     ({"cluster": {"policy": "fastest"}}, "'heft', 'gnn', 'cpop', 'dask' or 'sequential'"),
     ({"data": {"path": "/no/such/file.txt"}}, "is not a file"),
     ({"serach": {}}, "serach: Extra inputs are not permitted"),
     ({"cluster": {"processes": True}}, "set search.storage")],
)
def test_invalid_fields_are_named(config, match):
    with pytest.raises(AutoTrainConfigError, match=match):
        load_config(config)


def test_missing_file_and_wrong_arguments(tmp_path):
    with pytest.raises(AutoTrainConfigError, match="not found"):
        AutoTrainer(tmp_path / "config.yaml")
    with pytest.raises(ValueError, match="exactly one"):
        AutoTrainer()


# --- searching -----------------------------------------------------------------------------------
def test_sequential_search_results_plot_and_export(tmp_path):
    trainer = AutoTrainer(config=tiny(tmp_path))
    df = trainer.search()
    assert list(df["trial"]) == [0, 1, 2] and set(df["state"]) == {"complete"}
    assert {"n_layers", "hidden", "heads", "steps", "lr", "loss", "seconds"} <= set(df.columns)
    assert (df["loss"] > 0).all() and (df["seconds"] > 0).all()
    assert trainer.plot().stat().st_size > 1000

    with pytest.raises(ValueError, match="export writes weights, not pickles"):
        trainer.export(tmp_path / "best_model.pkl")
    assert not (tmp_path / "best_model.pkl").exists()
    path = trainer.export(tmp_path / "best_model.pt")
    blob = torch.load(path, weights_only=True)  # tensors and strings only
    assert "state_dict" in blob
    model, tok, config = load_glm(path)
    best = trainer.best_trial
    assert config.hidden == best.params["hidden"]
    # The exported model is the one that was measured: same loss on the same windows.
    from openautoglm import glm

    text = glm.load_corpus(max_chars=12_000)
    _, val = glm.split_text(text, 0.1)
    again = glm.evaluate(model, tok, val, seq_len=24, batch_size=8, n_batches=4, seed=0)["loss"]
    assert again == pytest.approx(best.value, rel=1e-5)
    assert isinstance(get_model(str(path)).generate("The "), str)


def test_export_before_search_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="run search"):
        AutoTrainer(config=tiny(tmp_path)).export(tmp_path / "m.pt")


def test_search_through_engine_records_history(tmp_path):
    pytest.importorskip("distributed")
    from openautoglm.history.store import History

    trainer = AutoTrainer(config=tiny(tmp_path, cluster={"policy": "heft"},
                                      search={"trials": 4, "parallel": 4}))
    df = trainer.search()
    assert len(df) == 4 and set(df["state"]) == {"complete"}
    with History(tmp_path / "out" / "history.sqlite") as history:
        tasks = {e["task"] for e in history.executions()}
    assert {f"{step}-{n}" for step in ("prepare", "train", "evaluate") for n in range(4)} <= tasks


def test_plain_dask_and_text_metric(tmp_path):
    pytest.importorskip("distributed")
    trainer = AutoTrainer(config=tiny(tmp_path, cluster={"policy": "dask"}, metric="rouge-l",
                                      search={"trials": 2, "parallel": 2}))
    df = trainer.search()
    assert trainer.config.direction == "maximize"
    assert len(df) == 2 and df["rouge-l"].between(0, 1).all()


def test_wave_pipeline_costs_follow_model_size(tmp_path):
    trainer = AutoTrainer(config=tiny(tmp_path))
    small = trainer._ask()
    big = trainer._ask()
    small.params.update(n_layers=1, hidden=8, steps=10)
    big.params.update(n_layers=1, hidden=16, steps=20)
    graph = trainer.wave_pipeline([small, big]).compile()
    cost = {k: graph.cost[graph.index[k]] for k in graph.tasks}
    assert cost[f"train-{big.number}"] > 2 * cost[f"train-{small.number}"] * 0.9
    assert graph.dependencies(f"evaluate-{big.number}") == [f"train-{big.number}"]


def test_hopeless_trial_is_pruned(tmp_path):
    """Two good trials set the median; a third with a learning rate of 1e-7 never improves and
    is stopped at its first report."""
    cfg = tiny(tmp_path, search={"trials": 3, "parallel": 1}, training={"steps": 20, "lr": [5e-3, 1e-7]})
    trainer = AutoTrainer(config=cfg)
    for lr in (5e-3, 5e-3, 1e-7):
        trainer.study.enqueue_trial({"lr": lr, "hidden": 16})
    df = trainer.search()
    assert list(df["state"]) == ["complete", "complete", "pruned"]
    assert trainer.study.trials[2].last_step == 5  # stopped at the first report


def test_pruning_reaches_the_study_through_a_given_engine(tmp_path):
    """Dask serialises the graph even in-process: the trial jobs must carry no engine and must
    still report to the in-memory study of this process."""
    pytest.importorskip("distributed")
    from openautoglm.engine.engine import Engine

    cfg = tiny(tmp_path, search={"trials": 3, "parallel": 1, "storage": None},
               training={"steps": 20, "lr": [5e-3, 1e-7]}, cluster={"policy": "heft"})
    with Engine(n_workers=1, processes=False, dashboard=False, progress=False) as engine:
        trainer = AutoTrainer(config=cfg, engine=engine)
        for lr in (5e-3, 5e-3, 1e-7):
            trainer.study.enqueue_trial({"lr": lr, "hidden": 16})
        df = trainer.search()
    assert list(df["state"]) == ["complete", "complete", "pruned"]


# --- resuming after a real interruption ------------------------------------------------------
RESUME_SCRIPT = """
import sys, torch, optuna
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
from openautoglm.auto.autotrain.trainer import AutoTrainer
AutoTrainer(sys.argv[1]).search()
"""


@pytest.mark.slow
def test_killed_search_resumes_without_losing_trials(tmp_path):
    import yaml

    cfg = tiny(tmp_path, search={"trials": 4, "parallel": 1, "pruner": "none"},
               training={"steps": {"low": 150, "high": 200}, "eval_every": 25})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(RESUME_SCRIPT))
    env = {"PYTHONPATH": str(Path(__file__).parents[2] / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env)
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    try:
        # Watch the study at full speed; when it shows two finished trials and one that has
        # started training (it reports 6-8 losses in all), freeze the search (SIGSTOP) and look
        # again: what the frozen look sees is exactly what the kill leaves behind, so no trial
        # can finish between the look and the kill, however loaded the machine.
        deadline = time.monotonic() + 600

        def look() -> tuple[list, list]:
            try:
                trials = optuna.load_study(study_name="autotrain", storage=storage).trials
            except (KeyError, sqlalchemy.exc.OperationalError):  # no study yet / mid-commit
                trials = []
            done = [t for t in trials if t.state.name == "COMPLETE"]
            running = [t for t in trials if t.state.name == "RUNNING"
                       and 1 <= len(t.intermediate_values) <= 3]
            return done, running

        while time.monotonic() < deadline:
            assert proc.poll() is None, "the search finished before it could be interrupted"
            done, running = look()
            if len(done) >= 2 and running:
                proc.send_signal(signal.SIGSTOP)
                done, running = look()
                if len(done) >= 2 and running:
                    break
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        else:
            pytest.fail("the search did not reach 2 finished trials in 600 s")
        proc.kill()  # SIGKILL while frozen: no cleanup, exactly like a crash
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # What the crash left behind, read after the kill: finished trials and one cut mid-run.
    left = optuna.load_study(study_name="autotrain", storage=storage).trials
    before = {t.number: (t.params, t.value) for t in left if t.state.name == "COMPLETE"}
    cut = next(t for t in left if t.number == running[0].number)
    assert len(before) >= 2 and cut.state.name == "RUNNING"

    trainer = AutoTrainer(path)  # a new trainer on the same storage
    df = trainer.search()
    trials = trainer.study.trials
    for number, (params, value) in before.items():  # nothing finished was lost or re-run
        assert trials[number].params == params and trials[number].value == value
    assert trials[cut.number].state.name == "FAIL"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == cut.number]
    assert len(retry) == 1 and retry[0].params == cut.params and retry[0].state.name == "COMPLETE"
    assert (df["state"] == "complete").sum() == 4
    assert trainer.export(tmp_path / "best.safetensors").is_file()


def test_time_budget_stops_between_waves(tmp_path):
    trainer = AutoTrainer(config=tiny(tmp_path, search={"trials": 5, "parallel": 1, "timeout_s": 1e-3}))
    df = trainer.search()
    assert len(df) == 1  # the first wave runs, then the budget is spent


def test_wave_where_every_trial_fails_stops_with_the_error(tmp_path):
    """A learning rate of 1e6 diverges in every trial: stop with the reason, do not loop."""
    trainer = AutoTrainer(config=tiny(tmp_path, training={"lr": 1e6}))
    with pytest.raises(RuntimeError, match="all 3 trials of the wave failed; the first: metric is nan"):
        trainer.search()
    assert {t.state.name for t in trainer.study.trials} == {"FAIL"}


def test_failing_wave_leaves_no_running_trials(tmp_path):
    """Held-out examples longer than the validation text fail in prepare, for every trial at
    once: the error propagates and the wave's trials are closed, not left RUNNING."""
    from openautoglm.pipeline import TaskFailedError

    trainer = AutoTrainer(config=tiny(tmp_path, evaluation={"prompt_chars": 5000}))
    with pytest.raises(TaskFailedError, match="too short for evaluation.prompt_chars"):
        trainer.search()
    assert {t.state.name for t in trainer.study.trials} == {"FAIL"}


# --- waves -------------------------------------------------------------------------------------
def test_default_wave_asks_every_startup_trial_at_once(tmp_path):
    """Default waves are max(n_startup_trials, 2 x worker threads): the first wave is TPE's whole
    random startup (drawn independently, so asking them together changes nothing), later waves
    are TPE batches. Sequential runs use the configured threads too, so every policy runs the
    same search."""
    cfg = tiny(tmp_path, search={"trials": 7, "parallel": None, "n_startup_trials": 5},
               cluster={"policy": "sequential", "n_workers": 1, "threads_per_worker": 1})
    trainer = AutoTrainer(config=cfg)
    assert trainer.wave_size() == 5
    trainer.search()
    assert len(trainer.wave_times) == 2  # 5 startup trials, then the 2 left
    starts = [t.datetime_start for t in trainer.study.trials]
    first_done = min(t.datetime_complete for t in trainer.study.trials[:5])
    assert all(s < first_done for s in starts[:5]), "the startup trials were asked together"
    assert all(s > first_done for s in starts[5:])


@pytest.mark.parametrize("search, threads, wave", [
    ({"trials": 30}, 2, 10),                          # startup min(10, 30 // 3) = 10
    ({"trials": 6}, 4, 8),                            # startup 2; 2 x 4 threads keeps them busy
    ({"trials": 30, "n_startup_trials": 3}, 1, 3),
    ({"trials": 30, "parallel": 4}, 8, 4),            # an explicit wave size wins
])
def test_wave_size(search, threads, wave):
    assert load_config({"search": search}).search.wave_size(threads) == wave


def test_wave_size_follows_a_given_engines_threads(tmp_path):
    pytest.importorskip("distributed")
    from openautoglm.engine.engine import Engine

    with Engine(n_workers=3, threads_per_worker=2, processes=False, dashboard=False, progress=False) as engine:
        trainer = AutoTrainer(config=tiny(tmp_path, search={"trials": 6, "parallel": None},
                                          cluster={"policy": "heft"}), engine=engine)
        assert trainer.wave_size() == 12  # 2 x 6 threads; the config's 2 workers are not used
    assert AutoTrainer(config=trainer.config).wave_size() == 4  # no engine: 2 x cluster.n_workers


def test_pickle_export_is_refused_before_any_work(tmp_path):
    """``export: best.pkl`` fails when the trainer is built: no study, no trial, no output."""
    with pytest.raises(AutoTrainConfigError, match="export: .*pickle"):
        AutoTrainer(config=tiny(tmp_path, export=str(tmp_path / "best.pkl")))
    assert list(tmp_path.iterdir()) == []


def test_search_writes_the_configured_export(tmp_path):
    trainer = AutoTrainer(config=tiny(tmp_path, search={"trials": 2, "parallel": 2},
                                      export=str(tmp_path / "best.safetensors")))
    trainer.search()
    model, tok, config = load_glm(tmp_path / "best.safetensors")
    assert config.hidden == trainer.best_trial.params["hidden"]


def test_all_zero_text_metric_says_why(tmp_path):
    """rouge-l on 10-20 step character models: every trial scores 0.0. The search says so, with
    one model output and its reference (it used to finish silently with a flat table)."""
    trainer = AutoTrainer(config=tiny(tmp_path, metric="rouge-l", search={"trials": 2, "parallel": 2}))
    with pytest.warns(UserWarning, match=r"scored rouge-l = 0\.0: no word .* wrote '.*' for '.*'"):
        df = trainer.search()
    assert (df["rouge-l"] == 0.0).all()


@pytest.mark.timeout(300)
def test_trials_as_ddp_gangs_match_single_process_trials(tmp_path):
    """training.world_size: 2 trains each trial as a 2-rank gang (DDP on 2 worker processes):
    the same seeded trials reach the metric of one-process trials within 1e-4."""
    pytest.importorskip("distributed")
    search = {"trials": 2, "parallel": 2, "pruner": "none", "storage": None}
    one = AutoTrainer(config=tiny(tmp_path / "one", cluster={"policy": "heft"}, search=search))
    two = AutoTrainer(config=tiny(tmp_path / "two", search=search,
                                  training={"world_size": 2},
                                  cluster={"policy": "heft", "processes": True}))
    probe = AutoTrainer(config=tiny(tmp_path / "probe", search=search, training={"world_size": 2},
                                    cluster={"policy": "heft", "processes": True}))
    assert [t.gang for t in probe.wave_pipeline([probe._ask()]).tasks.values()] == [1, 2, 1]
    a, b = one.search(), two.search()
    assert set(b["state"]) == {"complete"} and len(b) == 2
    assert list(a["steps"]) == list(b["steps"]) and list(a["hidden"]) == list(b["hidden"])
    assert (a["loss"] - b["loss"]).abs().max() < 1e-4


@pytest.mark.parametrize("over, match", [
    ({"training": {"world_size": 2}, "cluster": {"policy": "sequential"}},
     "world_size=2 .*cluster.policy='sequential'"),
    ({"training": {"world_size": 2}, "cluster": {"policy": "heft"}},
     "set cluster.processes: true and cluster.n_workers >= 2"),
    ({"training": {"world_size": 2, "batch_size": [4, 5]},
      "cluster": {"policy": "heft", "processes": True}},
     r"training.batch_size=\[4, 5\] must be .*divisible by training.world_size=2"),
])
def test_world_size_needs_gangs_that_can_run(tmp_path, over, match):
    with pytest.raises(AutoTrainConfigError, match=match):
        AutoTrainer(config=tiny(tmp_path, **over))
