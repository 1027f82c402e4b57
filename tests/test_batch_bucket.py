"""`python -m inference batch` over a bucket of a real Cloud Storage emulator on 127.0.0.1 (tests/gcs.py):
prefixes listed page by page and sent as gs:// links, read here without --endpoint, and shards that
answer every object exactly once."""
import json
import os
import random
import re
import subprocess
import sys
import time

import pytest

from inference import batch, storage

import stand_in
from conftest import BUCKET_CLIPS, MANY_OBJECTS, ROOT

TRACKS = [f"gs://library/tracks/{clip}" for clip in BUCKET_CLIPS]


def run_batch(*args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", "batch", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


def rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_prefix_is_sent_as_gs_links_and_answered_by_the_function(gcs, bucket_function, tmp_path):
    out = tmp_path / "results.jsonl"
    done = run_batch("gs://library/tracks/", "--endpoint", bucket_function.url, "--out", str(out), env=gcs.env)
    assert done.returncode == 0, done.stderr
    found = rows(out.read_text())
    assert sorted(row["input"] for row in found) == sorted(TRACKS)  # list.txt is not audio: not an item
    assert all(row["source"]["site"] == "storage" for row in found)
    assert "6 items" in done.stderr


def test_a_prefix_is_read_here_without_an_endpoint(gcs, model_path, tmp_path):
    done = run_batch("gs://library/tracks/jazz/", "gs://library/bad/", env={**gcs.env, "GENRE_MODEL": str(model_path)})
    assert done.returncode == 0, done.stderr
    found = {row["input"]: row for row in rows(done.stdout)}
    assert set(found) == {TRACKS[2], TRACKS[3], "gs://library/bad/noise.mp3", "gs://library/bad/empty.flac"}
    assert "genre" in found[TRACKS[2]] and found["gs://library/bad/noise.mp3"]["error"]["code"] == "not_audio"
    assert found["gs://library/bad/empty.flac"]["error"]["code"] == "not_audio"


def test_lists_in_the_bucket_and_here_hold_gs_items(gcs, tmp_path, monkeypatch):
    """And an object pinned to its generation (gs://B/O#N) is an item as it is given."""
    (tmp_path / "mine.txt").write_text("gs://library/tracks/rock/rock.00001.flac\n")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    pinned = storage.version(TRACKS[3])
    with stand_in.StandIn() as endpoint:
        done = run_batch("gs://library/tracks/list.txt", str(tmp_path / "mine.txt"), pinned, "--endpoint",
                         endpoint.url, env=gcs.env)
    assert done.returncode == 0, done.stderr
    assert [row["input"] for row in rows(done.stdout)] != []
    assert sorted(link for _, link, _ in endpoint.seen) == sorted([TRACKS[0], TRACKS[1], TRACKS[2], pinned])


@pytest.mark.parametrize("where, says", [
    ("gs://library/nothing-here/", "no audio files or links found"),
    ("gs://nobucket/", "no such bucket or object"),
    ("gs://library/tracks/none.txt", "no such bucket or object"),
    ("gs://Bad_Bucket/", "valid bucket name"),
])
def test_an_empty_prefix_or_a_missing_bucket_is_a_bad_argument(gcs, where, says, tmp_path):
    with stand_in.StandIn() as endpoint:
        done = run_batch(where, "--endpoint", endpoint.url, "--out", str(tmp_path / "r.jsonl"), env=gcs.env)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not endpoint.seen


def test_the_first_request_goes_out_before_the_listing_ends(gcs):
    """10,000 objects are ten pages: the stand-in hears from the client before the last page is asked for."""
    with stand_in.StandIn() as endpoint:
        done = run_batch("gs://library/many/", "--endpoint", endpoint.url, "--shard", "0/20", env=gcs.env)
        assert done.returncode == 0, done.stderr
    pages = [line for line in gcs.requests() if "/b/library/o?" in line and "prefix=many" in line]
    assert len(pages) >= MANY_OBJECTS // 1000
    last_page = _logged_at(pages[-1])
    first_post = time.time() - (time.monotonic() - endpoint.seen[0][0])  # its wall-clock time
    assert first_post < last_page, (first_post, last_page)


def _logged_at(line: str) -> float:
    """The wall-clock time of an emulator's log line (time=2026-12-03T02:55:58.660Z)."""
    import datetime
    stamp = re.search(r"time=(\S+)Z", line).group(1)
    return datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.UTC).timestamp()


def test_shards_answer_every_object_exactly_once(gcs, tmp_path):
    """Three shards (one from CLOUD_RUN_TASK_INDEX/COUNT, as a Cloud Run job's task) over 10,000 objects."""
    answered = []
    with stand_in.StandIn() as endpoint:
        for index in range(3):
            env = {**gcs.env, "CLOUD_RUN_TASK_INDEX": str(index), "CLOUD_RUN_TASK_COUNT": "3"}
            shard = [] if index == 2 else ["--shard", f"{index}/3"]
            done = run_batch("gs://library/many/", "--endpoint", endpoint.url, *shard, env=env)
            assert done.returncode == 0, done.stderr
            answered.append([row["input"] for row in rows(done.stdout)])
    every = [f"gs://library/many/{i:05d}.mp3" for i in range(MANY_OBJECTS)]
    assert sorted(sum(answered, [])) == every  # disjoint, and none left out
    assert all(2800 < len(share) < 3900 for share in answered)
    assert sorted(link for _, link, _ in endpoint.seen) == every


def test_a_shard_is_the_same_whatever_the_order():
    items = [f"gs://b/{i}.flac" for i in range(2000)]
    shard = batch.Shard(1, 4)
    mixed = random.Random(0).sample(items, len(items))
    assert sorted(i for i in items if i in shard) == sorted(i for i in mixed if i in shard)
    assert {batch.Shard.parse("1/4")} == {shard}
    for bad in ("4/4", "-1/3", "1", "a/b"):
        with pytest.raises(Exception, match="a shard is I/N"):
            batch.Shard.parse(bad)


def bucket_rows(gcs, prefix: str) -> dict[str, list[str]]:
    """The inputs of each part file under gs://results/PREFIX, by the part's name."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs_client
    client = gcs_client.Client(project="test", client_options={"api_endpoint": gcs.url},
                               credentials=AnonymousCredentials())
    return {blob.name: [json.loads(line)["input"] for line in blob.download_as_text().splitlines()]
            for blob in client.list_blobs("results", prefix=prefix)}


def test_results_in_the_bucket_per_shard_resumed_and_never_rewritten(gcs):
    every = [f"gs://library/many/{i:05d}.mp3" for i in range(MANY_OBJECTS)]
    with stand_in.StandIn() as endpoint:
        for shard in ("0/2", "1/2"):  # the second writes beside the first's results, touching none of them
            done = run_batch("gs://library/many/", "--endpoint", endpoint.url, "--shard", shard,
                             "--out", "gs://results/run/", env=gcs.env)
            assert done.returncode == 0 and done.stdout == "", done.stderr
        written = bucket_rows(gcs, "run/")
        assert {name.split("/")[1] for name in written} == {"shard-00000-of-00002", "shard-00001-of-00002"}
        assert all(len(inputs) <= 1000 for inputs in written.values())  # flushed every 1000 rows
        assert sorted(sum(written.values(), [])) == every
        sent = len(endpoint.seen)
        again = run_batch("gs://library/many/", "--endpoint", endpoint.url, "--shard", "0/2",
                          "--out", "gs://results/run/", env=gcs.env)
        assert again.returncode == 0 and len(endpoint.seen) == sent, again.stderr  # nothing sent again
        assert re.search(r"0 items .* (\d+) skipped", again.stderr) and bucket_rows(gcs, "run/") == written
        other = run_batch("gs://library/many/", "--endpoint", endpoint.url, "--shard", "0/3",
                          "--out", "gs://results/run/", env=gcs.env)
    assert other.returncode == 2 and "holds the results of 2 shards, not 3" in other.stderr


def test_a_shard_stopped_midway_resumes_from_its_parts_each_item_once(gcs):
    every = [f"gs://library/many/{i:05d}.mp3" for i in range(MANY_OBJECTS)]
    args = ["gs://library/many/", "--shard", "1/4", "--out", "gs://results/stopped"]
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"tok-1"}
        endpoint.refuse_from(1500, {"tok-2"})
        stopped = run_batch(*args, "--endpoint", endpoint.url, "--token", "tok-1", env=gcs.env)
        assert stopped.returncode == 1 and "stopped" in stopped.stderr, stopped.stderr
        first = sum(bucket_rows(gcs, "stopped/").values(), [])
        assert 1000 <= len(first) < 1500
        endpoint.accepted = None
        endpoint.refuse_from(10**9, None)
        resumed = run_batch(*args, "--endpoint", endpoint.url, env=gcs.env)
    assert resumed.returncode == 0, resumed.stderr
    inputs = sum(bucket_rows(gcs, "stopped/").values(), [])
    assert sorted(inputs) == sorted(set(inputs)) and set(first) < set(inputs)
    assert sorted(inputs) == [item for item in every if item in batch.Shard(1, 4)]


def test_a_part_is_created_once_never_overwritten(gcs, monkeypatch):
    from inference import storage
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    storage.create("gs://results/once/part.jsonl", b"first\n", content_type="text/plain")
    with pytest.raises(FileExistsError, match="another run writes these results"):
        storage.create("gs://results/once/part.jsonl", b"second\n", content_type="text/plain")
    assert list(storage.under("gs://results/once/", suffixes={".jsonl"})) == \
        ["gs://results/once/part.jsonl"]


@pytest.mark.parametrize("args, says", [
    (["--csv", "--out", "gs://results/table/"], "--csv writes a local file"),
    (["--shard", "2/2"], "a shard is I/N with 0 <= I < N"),
    (["--out", "gs://nobucket/x/"], "no such bucket or object"),
])
def test_bad_bucket_options_are_bad_arguments(gcs, args, says):
    with stand_in.StandIn() as endpoint:
        done = run_batch("gs://library/tracks/", "--endpoint", endpoint.url, *args, env=gcs.env)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not endpoint.seen


def test_a_bad_cloud_run_task_index_is_a_bad_argument(gcs):
    done = run_batch("gs://library/tracks/", "--endpoint", "http://127.0.0.1:9/",
                     env={**gcs.env, "CLOUD_RUN_TASK_INDEX": "5", "CLOUD_RUN_TASK_COUNT": "3"})
    assert done.returncode == 2 and "CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT" in done.stderr, done.stderr
