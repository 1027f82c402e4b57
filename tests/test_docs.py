"""The docs quote the committed figures: what the README, the model cards and the settings' table
say of cross-validation and calibration is what models/crossval_<family>.json holds, rounded as
written. A retrained model whose figures move fails here until its docs follow."""
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from inference import config

from conftest import ROOT

CARDS = (ROOT / "models" / "README.md").read_text()
README = (ROOT / "README.md").read_text()
FAMILIES = ("genre_musicnn", "genre_cnn")


def figures(family: str) -> dict:
    return json.loads((ROOT / "models" / f"crossval_{family}.json").read_text())


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def card(family: str) -> str:
    """The model's card, and its row of the candidates' table."""
    section = CARDS.split(f"# Model card: `{family}`", 1)[1].split("\n# ", 1)[0]
    row = re.search(rf"^\| (\*\*)?`{family}`(\*\*)? \(.*$", CARDS, re.M).group(0)
    return row + "\n" + section


def missing(text: str, quoted: list[str]) -> list[str]:
    """The figures not in the text (its lines joined: a figure may straddle a line break)."""
    text = " ".join(text.split())
    return [figure for figure in quoted if figure not in text]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_model_card_quotes_its_crossval_figures(family):
    grouped, two_fold, calibration = (figures(family)[k] for k in ("grouped", "two_fold", "calibration"))
    quoted = [percent(grouped["track_accuracy"]), percent(two_fold["track_accuracy"]),
              f"[{grouped['track_accuracy_min'] * 100:.1f}-{grouped['track_accuracy_max'] * 100:.1f}]",
              f"{calibration['before']['ece']:.3f}", f"{calibration['after_cross_fitted']['ece']:.3f}",
              f"temperature {calibration['temperature']:.2f}", f"{calibration['uncertain_below']:.3f}",
              *(f"{label} {f1:.2f}" for label, f1 in grouped["f1"].items())]
    assert missing(card(family), quoted) == []


def test_the_default_card_quotes_its_segment_accuracy_and_what_uncertain_buys():
    grouped, calibration = figures("genre_musicnn")["grouped"], figures("genre_musicnn")["calibration"]
    quoted = [percent(grouped["segment_accuracy"]), f"flags {calibration['flagged'] * 100:.0f}% of answers",
              f"right {percent(calibration['accuracy_not_flagged'])} of the time"]
    assert missing(card("genre_musicnn"), quoted) == []


def test_the_card_readme_and_outside_page_quote_the_in_labels_figures():
    """What crossval scored by leaving each label out, as the card, the README and the method's page
    quote it."""
    scored = figures("genre_musicnn")["in_labels"]
    outside, inside = scored["outside_under_half"], scored["inside_at_half_or_above"]
    auroc = scored["auroc"]
    low, high = min(auroc, key=auroc.get), max(auroc, key=auroc.get)
    page = (ROOT / "docs" / "outside-labels.md").read_text()
    assert missing(card("genre_musicnn"), [f"mean AUROC **{scored['auroc_mean']:.3f}**", percent(outside),
                                           f"{percent(inside)} of known music",
                                           f"{low} {auroc[low]:.3f} to {high} {auroc[high]:.3f}"]) == []
    assert missing(README, [f"mean AUROC of {scored['auroc_mean']:.2f}", f"puts {outside * 100:.0f}% of them",
                            f"keeps {inside * 100:.0f}% of known music"]) == []
    assert missing(page, [f"**{scored['auroc_mean']:.3f}**", f"**{percent(outside)}**", f"**{percent(inside)}**",
                          f"balanced ECE {scored['ece_balanced']:.3f}",
                          *(f"{a:.3f}" for a in auroc.values())]) == []
    kept = scored["inside_at_half_or_above_by_label"]
    row = " | ".join(f"**{v * 100:.0f}%**" if v < 0.5 else f"{v * 100:.0f}%" for v in kept.values())
    assert missing(page, [f"| inside at 0.5 or above | {row} |"]) == []


def test_the_readme_quotes_the_crossval_figures():
    musicnn, cnn = figures("genre_musicnn"), figures("genre_cnn")
    grouped = musicnn["grouped"]
    quoted = [f"**{percent(grouped['track_accuracy'])} of tracks right**",
              f"({grouped['track_accuracy_min'] * 100:.1f}-{percent(grouped['track_accuracy_max'])} over the shuffles",
              f"{percent(cnn['grouped']['track_accuracy'])}, at a twentieth",
              f"gives {percent(musicnn['two_fold']['track_accuracy'])} and "
              f"{percent(cnn['two_fold']['track_accuracy'])}",
              f"`uncertain` ({musicnn['calibration']['flagged'] * 100:.0f}% of them)",
              f"right {percent(musicnn['calibration']['accuracy_not_flagged'])} of the time",
              f"calibration error {musicnn['calibration']['after_cross_fitted']['ece']:.3f}"]
    assert missing(README, quoted) == []


def test_the_settings_table_quotes_both_models_accuracy():
    what = config.VARIABLES["GENRE_MODEL"].what
    quoted = [f"{figures('genre_cnn')['grouped']['track_accuracy'] * 100:.0f}%",
              percent(figures("genre_musicnn")["grouped"]["track_accuracy"])]
    assert missing(what, quoted) == []


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_of_the_docs_leads_to_a_file_and_heading():
    pages = [ROOT / "README.md", ROOT / "models" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M) if linked.suffix == ".md" and \
                linked.exists() else []
            if not linked.exists() or (anchor and anchor not in map(slug, headings)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_quotes_what_batch_answers_on_the_training_clips_with_the_mfcc_model(gtzan, tmp_path):
    """The README's command, run with the small model (seconds; the default's figures take a minute):
    a claim about the training clips is what they give, not a hope."""
    out = tmp_path / "gtzan.jsonl"
    env = {**os.environ, "GENRE_MODEL": str(ROOT / "models" / "genre_cnn.onnx")}
    subprocess.run([sys.executable, "-m", "inference", "batch", str(gtzan), "--out", str(out)], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    confidences = [row["confidence"] for row in rows]
    wrong = sum(row["genre"] != Path(row["input"]).parent.name for row in rows)
    flagged = sum(row["uncertain"] for row in rows)
    quoted = (f"the MFCC CNN 0.98 or more on {sum(c >= 0.98 for c in confidences) or 'none'}, median "
              f"{statistics.median(confidences):.3f}, {flagged} flagged and {wrong} wrong")
    assert len(rows) == 119 and missing(README, [quoted]) == []


def test_no_merge_leftovers_are_tracked():
    """docs/*.md.orig were (a merge's backups, read by no one and out of date)."""
    leftovers = subprocess.run(["git", "ls-files", "*.orig", "*.rej", "*.BACKUP.*", "*.LOCAL.*", "*.REMOTE.*"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert leftovers == []


def test_no_conflict_markers_are_tracked():
    """docs/api.md kept a merge's conflict markers, both sides, for a day."""
    found = subprocess.run(["git", "grep", "-n", "-E", "^(<{7}|>{7}) "], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == "", found.stdout
