from nclab.cli import main


def test_demo_runs_end_to_end_on_synthetic_data(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--data", "synthetic", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and "nc1" in out
    assert (tmp_path / "report.html").is_file() and (tmp_path / "demo_features.npz").is_file()
    assert (tmp_path / "ufm" / "hong_ling.png").is_file()
    assert (tmp_path / "runs" / "ce_spa_slerp" / "metrics.jsonl").is_file()
