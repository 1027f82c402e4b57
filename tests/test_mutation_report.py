"""tools/mutation.py --report on a clone with no kept sessions: it says so, not a table of zeros."""
import importlib.util

from conftest import ROOT


def test_a_fresh_clone_report_says_there_is_no_run_and_where_the_figures_are(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "tools" / "mutation.py")
    mutation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutation)
    monkeypatch.setattr(mutation, "SESSIONS", tmp_path / "none")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    mutation.report(["inference/segments.py", "main.py"], survivors=False)
    out = capsys.readouterr().out
    assert out.startswith("No kept session in none/ (a fresh clone has none)") and "docs/testing.md" in out
    assert "No run of the current version of:\n  inference/segments.py\n  main.py\n" in out
    assert " 0 " not in out
