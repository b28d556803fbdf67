"""Long steps show a tqdm.auto bar on stderr (a widget in JupyterLab), and none when NNLENS_PROGRESS=0."""
from nnlens import data, sweeps, train


def _square(x):
    return {"y": x * x}


def _fit():
    td = data.teacher(32, 4, seed=0)
    spec = {"name": "twolayer", "d": 4, "h": 8, "activation": "tanh", "train_a": False}
    cfg = train.TrainConfig(optimizer="sgd", lr=0.1, epochs=3, batch_size=0, schedule="constant", loss="mse")
    return train.fit(spec, td, cfg, cache=False)


def test_sweeps_and_training_show_progress_on_stderr(monkeypatch, capsys):
    monkeypatch.setenv("NNLENS_PROGRESS", "1")
    df = sweeps.run(_square, [{"x": i} for i in range(3)], backend="sequential")
    assert list(df["y"]) == [0, 1, 4]
    out = capsys.readouterr()
    assert out.out == "" and "_square" in out.err and "0/3" in out.err  # drawn at start, cleared at the end
    _fit()
    out = capsys.readouterr()
    assert out.out == "" and "twolayer/sgd" in out.err and "/3" in out.err


def test_no_progress_when_switched_off(monkeypatch, capsys):
    monkeypatch.setenv("NNLENS_PROGRESS", "0")
    sweeps.run(_square, [{"x": i} for i in range(3)], backend="sequential")
    _fit()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_stored_jobs_are_counted_in_the_bar(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NNLENS_PROGRESS", "1")
    sweeps.run(_square, [{"x": i} for i in range(2)], backend="sequential", store=tmp_path)
    capsys.readouterr()
    sweeps.run(_square, [{"x": i} for i in range(4)], backend="sequential", store=tmp_path)
    err = capsys.readouterr().err
    assert "2 of 4 jobs stored" in err and "0/2" in err
