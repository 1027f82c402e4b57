"""deploy.sh with a fake `gcloud` that records its arguments, and what .gcloudignore lets through."""
import hashlib
import re
import shlex
import shutil
import subprocess

import pathspec
import pytest

from inference import config

import local_http
from conftest import ROOT

FAKE_GCLOUD = """#!/bin/sh
printf '%s\\n' "$@" > "$GCLOUD_ARGS"
cp requirements.txt "$GCLOUD_ARGS.requirements"
"""
DEFAULTS = ["functions", "deploy", "genre-classifier", "--gen2", "--runtime=python311", "--trigger-http",
            "--no-allow-unauthenticated", "--entry-point=classify", "--source=.", "--region=us-central1",
            "--memory=1GiB", "--cpu=1", "--timeout=60s", "--max-instances=10", "--concurrency=4",
            "--set-env-vars=^@^ORT_DISABLE_TELEMETRY=1@MALLOC_ARENA_MAX=2@THREADS=64"]  # 64: docs/hardening.md


def tool_dir(path, *tools: str):
    """A folder holding only the given programs (links to the real ones), for a bare PATH."""
    path.mkdir()
    for tool in tools:
        (path / tool).symlink_to(shutil.which(tool))
    return path


def deploy(tmp_path, *args, path: str | None = None, root=ROOT, **env_vars):
    """deploy.sh (of root) run with a clean environment: (completed process, gcloud's arguments or
    None). Programs a test puts in tmp_path/fake-bin come before the real ones, as gcloud does."""
    recorded = tmp_path / "gcloud-args"
    if path is None:
        fake = tmp_path / "fake-bin"
        fake.mkdir(exist_ok=True)
        (fake / "gcloud").write_text(FAKE_GCLOUD)
        (fake / "gcloud").chmod(0o755)
        path = f"{fake}:/usr/bin:/bin"
    env = {"PATH": path, "HOME": str(tmp_path), "GCLOUD_ARGS": str(recorded), **env_vars}
    done = subprocess.run([str(root / "deploy.sh"), *args], env=env, capture_output=True, text=True, timeout=30)
    return done, recorded.read_text().splitlines() if recorded.exists() else None


def set_env_vars(args) -> list[str]:
    """The NAME=VALUE items of --set-env-vars, split as gcloud does (^DELIM^ sets the delimiter)."""
    arg = next(a for a in args if a.startswith("--set-env-vars="))
    delim, listed = re.fullmatch(r"--set-env-vars=\^([^^]+)\^(.*)", arg).groups()
    return listed.split(delim)


def checkout(tmp_path, **models: bytes):
    """deploy.sh in a folder of its own whose models/ holds only the given files (name=bytes)."""
    root = tmp_path / "checkout"
    (root / "models").mkdir(parents=True)
    (root / "inference").mkdir()
    for name in ("deploy.sh", "requirements.txt", "inference/__init__.py", "inference/config.py"):  # config: its check
        shutil.copy2(ROOT / name, root / name)
    for name, data in models.items():
        (root / "models" / name).write_bytes(data)
    return root


def model_and_twin(name: str, twin_of: bytes = b"the model") -> dict[str, bytes]:
    """A model and its serving twin, recording as ONNX does (its metadata verbatim in the file) the sha256
    of the model it was derived from: twin_of, the model itself unless told otherwise."""
    source = hashlib.sha256(twin_of).hexdigest().encode()
    return {f"{name}.onnx": b"the model", f"{name}.power.onnx": b"\x08\x07...\x0asource_sha256\x12\x40" + source}


def test_defaults(tmp_path):
    done, args = deploy(tmp_path)
    assert done.returncode == 0, done.stderr
    assert args == DEFAULTS


def test_public_only_when_asked(tmp_path):
    done, args = deploy(tmp_path, PUBLIC="1")
    assert done.returncode == 0, done.stderr
    assert args == [a.replace("--no-allow-unauthenticated", "--allow-unauthenticated") for a in DEFAULTS]
    (tmp_path / "again").mkdir()
    done, args = deploy(tmp_path / "again", PUBLIC="yes")
    assert done.returncode == 2 and args is None and "PUBLIC must be 0" in done.stderr


def test_overrides_by_environment(tmp_path):
    done, args = deploy(tmp_path, FUNCTION_NAME="genres", REGION="europe-west1", PROJECT="my-proj", MEMORY="512MiB",
                        CONCURRENCY="2", GENRE_ALLOWED_SITES="youtube.com,youtu.be", GENRE_TIME_BUDGET_S="20",
                        YTDLP_PROXY="http://proxy.example:3128", YTDLP_COOKIES_SECRET="yt-cookies")
    assert done.returncode == 0, done.stderr
    assert args[:3] == ["functions", "deploy", "genres"]
    for expected in ("--region=europe-west1", "--project=my-proj", "--memory=512MiB", "--concurrency=2",
                     "--set-secrets=/secrets/cookies.txt=yt-cookies:latest"):
        assert expected in args
    env_vars = next(a for a in args if a.startswith("--set-env-vars=^@^")).split("^@^", 1)[1].split("@")
    assert env_vars == ["ORT_DISABLE_TELEMETRY=1", "MALLOC_ARENA_MAX=2", f"THREADS={config.SERVER_THREADS}",
                        "GENRE_TIME_BUDGET_S=20",
                        "GENRE_ALLOWED_SITES=youtube.com,youtu.be", "YTDLP_PROXY=http://proxy.example:3128",
                        "YTDLP_COOKIES=/secrets/cookies.txt"]


def test_a_value_holding_the_delimiter_is_passed_whole_with_another(tmp_path):
    """A proxy's user:password@host was cut at @, gcloud's delimiter: "Bad syntax for dict arg"."""
    done, args = deploy(tmp_path, YTDLP_PROXY="http://user:p|ss@proxy.example:3128", GENRE_CORS_ORIGIN="https://a.b")
    assert done.returncode == 0, done.stderr
    assert args[-1].startswith("--set-env-vars=^;^")  # @ and | taken
    assert set_env_vars(args)[-2:] == ["GENRE_CORS_ORIGIN=https://a.b", "YTDLP_PROXY=http://user:p|ss@proxy.example:3128"]


def test_values_holding_every_delimiter_are_refused_by_name(tmp_path):
    done, args = deploy(tmp_path, "--dry-run", YTDLP_PROXY="http://user:p|;~@proxy.example:3128/#")
    assert done.returncode == 2 and args is None and done.stdout == ""
    assert "occurs in the values of YTDLP_PROXY: change a value" in done.stderr, done.stderr


def test_a_proxy_as_a_setting_and_as_a_secret_is_refused(tmp_path):
    """Both set YTDLP_PROXY, --set-env-vars and --set-secrets, which gcloud refuses together."""
    done, args = deploy(tmp_path, YTDLP_PROXY="http://proxy.example:3128", YTDLP_PROXY_SECRET="yt-proxy")
    assert done.returncode == 2 and args is None
    assert "set YTDLP_PROXY (the proxy URL, in the function's configuration) or YTDLP_PROXY_SECRET" in done.stderr
    (tmp_path / "secret").mkdir()
    done, args = deploy(tmp_path / "secret", YTDLP_PROXY_SECRET="yt-proxy")
    assert done.returncode == 0 and "--set-secrets=YTDLP_PROXY=yt-proxy:latest" in args, done.stderr
    assert not any(item.startswith("YTDLP_PROXY=") for item in set_env_vars(args))


@pytest.mark.parametrize("name, value", [("GENRE_MAX_UPLOAD_MB", "abc"), ("GENRE_MAX_QUEUE_S", "inf"),
                                         ("GENRE_CORS_ORIGIN", "https://a.example, https://b.example")])
def test_a_setting_the_function_cannot_start_with_is_refused_before_deploying(tmp_path, name, value):
    """Deployed, it would stop every instance at start (inference/config.py); here it is named first."""
    done, args = deploy(tmp_path, **{name: value})
    assert done.returncode == 2 and args is None
    assert done.stderr.startswith(f"deploy.sh: {name}={value!r}: must be "), done.stderr


def test_dry_run_prints_the_command_and_calls_nothing(tmp_path):
    done, args = deploy(tmp_path, "--dry-run", REGION="asia-east1")
    assert done.returncode == 0 and args is None
    printed = done.stdout.split()
    assert printed[0] == "gcloud" and printed[1:4] == ["functions", "deploy", "genre-classifier"]
    assert "--region=asia-east1" in printed


def test_the_model_setting_is_passed_on(tmp_path):
    root = checkout(tmp_path, **model_and_twin("mine"))
    done, args = deploy(tmp_path, "--dry-run", root=root, GENRE_MODEL="models/mine.onnx")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "@GENRE_MODEL=models/mine.onnx" in done.stdout


def test_a_model_in_models_is_passed_on_by_its_path_in_the_upload(tmp_path):
    root = checkout(tmp_path, **model_and_twin("mine"))
    done, args = deploy(tmp_path, "--dry-run", root=root, GENRE_MODEL=str(root / "models" / "mine.onnx"))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "@GENRE_MODEL=models/mine.onnx" in done.stdout


def test_a_twin_derived_from_another_version_of_the_model_is_refused(tmp_path):
    """The function would run the old twin while reporting the new model's sha256."""
    root = checkout(tmp_path, **model_and_twin("mine", twin_of=b"last week's model"))
    done, args = deploy(tmp_path, "--dry-run", root=root, GENRE_MODEL="models/mine.onnx")
    assert done.returncode == 2 and done.stdout == ""
    assert "models/mine.power.onnx is not the serving twin of models/mine.onnx" in done.stderr, done.stderr
    assert "python -m export.to_onnx models/mine.onnx" in done.stderr


def test_a_model_without_its_twin_is_deployed_with_a_warning(tmp_path):
    root = checkout(tmp_path, **{"mine.onnx": b"the model"})
    done, args = deploy(tmp_path, "--dry-run", root=root, GENRE_MODEL="models/mine.onnx")
    assert done.returncode == 0 and "@GENRE_MODEL=models/mine.onnx" in done.stdout
    assert "warning: no serving twin models/mine.power.onnx" in done.stderr


@pytest.mark.parametrize("model", ["models/README.md", "models/genre_cnn.json"])
def test_a_model_that_is_not_onnx_is_refused(tmp_path, model):
    """Only models/*.onnx is uploaded: the function could not load it."""
    done, args = deploy(tmp_path, "--dry-run", GENRE_MODEL=model)
    assert done.returncode == 2 and done.stdout == ""
    assert f"GENRE_MODEL={model} is not an ONNX model (.onnx)" in done.stderr, done.stderr


@pytest.mark.parametrize("folder", ["models/", "models"])
def test_a_folder_as_the_model_is_refused_plainly(tmp_path, folder):
    done, args = deploy(tmp_path, "--dry-run", GENRE_MODEL=folder)
    assert done.returncode == 2 and done.stdout == ""
    assert f"GENRE_MODEL={folder} is a folder: name the model's file" in done.stderr, done.stderr
    assert "GENRE_MODEL=models/models" not in done.stderr  # was: cp models/.onnx models/.power.onnx ...


def test_a_model_outside_the_upload_is_refused_saying_where_to_put_it(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "mine.onnx").write_bytes(b"onnx")
    model = str(tmp_path / "elsewhere" / "mine.onnx")
    done, args = deploy(tmp_path, "--dry-run", GENRE_MODEL=model)
    assert done.returncode == 2 and args is None and done.stdout == ""
    assert f"is not a file in {ROOT}/models/" in done.stderr
    assert f"cp {model} {model[:-5]}.power.onnx models/" in done.stderr
    assert "GENRE_MODEL=models/mine.onnx ./deploy.sh" in done.stderr


def test_a_model_missing_from_models_is_not_told_to_copy_it_onto_itself(tmp_path):
    done, args = deploy(tmp_path, "--dry-run", GENRE_MODEL="models/missing.onnx")
    assert done.returncode == 2 and args is None and done.stdout == ""
    assert "there is no models/missing.onnx" in done.stderr and "models/missing.onnx models/" not in done.stderr
    assert "--out models/missing.onnx" in done.stderr, done.stderr  # was: cp models/missing.onnx ... models/


def test_another_yt_dlp_goes_up_in_the_upload_and_the_pin_comes_back(tmp_path):
    pinned = (ROOT / "requirements.txt").read_text()
    done, args = deploy(tmp_path, YTDLP_VERSION="2099.1.2")
    assert done.returncode == 0 and args == DEFAULTS, done.stderr
    assert "deploying yt-dlp 2099.1.2 instead of the pinned 2026.10.26" in done.stderr
    uploaded = (tmp_path / "gcloud-args.requirements").read_text()
    assert uploaded == pinned.replace("yt-dlp[default]==2026.10.26", "yt-dlp[default]==2099.1.2") != pinned
    assert (ROOT / "requirements.txt").read_text() == pinned


def test_the_newest_yt_dlp_is_found_on_the_package_index(tmp_path):
    """pip's own look-up (PIP_INDEX_URL honoured), here against a local index of one newer release."""
    index = tmp_path / "index" / "simple" / "yt-dlp"
    index.mkdir(parents=True)
    (index / "index.html").write_text('<a href="yt_dlp-2099.1.2-py3-none-any.whl">yt_dlp-2099.1.2-py3-none-any.whl</a>')
    with local_http.Server(tmp_path / "index") as url:
        done, args = deploy(tmp_path, YTDLP_VERSION="latest", PIP_INDEX_URL=f"{url}/simple")
    assert done.returncode == 0 and "deploying yt-dlp 2099.1.2 instead of the pinned" in done.stderr, done.stderr
    assert "yt-dlp[default]==2099.1.2" in (tmp_path / "gcloud-args.requirements").read_text()


def test_a_dry_run_with_the_newest_yt_dlp_looks_nothing_up(tmp_path):
    """A dry run reaches no network: pip (any python3) is not run, the version is left as latest."""
    (tmp_path / "fake-bin").mkdir()
    (tmp_path / "fake-bin" / "python3").write_text('#!/bin/sh\necho "$*" >> "$HOME/python3-ran"\n')
    (tmp_path / "fake-bin" / "python3").chmod(0o755)
    done, args = deploy(tmp_path, "--dry-run", YTDLP_VERSION="latest")
    assert done.returncode == 0 and done.stdout.startswith("gcloud functions deploy"), done.stderr
    assert (tmp_path / "python3-ran").read_text() == "-m inference.config\n"  # the settings' check, no pip
    assert "the newest yt-dlp is looked up with pip when deploying, not in a dry run" in done.stderr
    assert "deploying yt-dlp latest instead of the pinned 2026.10.26" in done.stderr


def test_a_yt_dlp_version_that_is_not_one_is_refused(tmp_path):
    done, args = deploy(tmp_path, "--dry-run", YTDLP_VERSION="1; rm -rf /")
    assert done.returncode == 2 and "YTDLP_VERSION must be latest or a version" in done.stderr


def test_deploy_passes_on_the_settings_of_config():
    """deploy.sh's list of variables is config.py's deployed ones, in the same order."""
    listed = re.search(r"^for name in ([A-Z_\s\\]+); do$", (ROOT / "deploy.sh").read_text(), re.M).group(1).split()
    assert [name for name in listed if name != "\\"] == [v.name for v in config.VARIABLES.values() if v.deployed]


def test_the_docs_list_the_settings_of_config():
    rows = [f"| `{v.name}` | {f'`{v.default}`' if v.default else ''} | {v.what} |" for v in config.VARIABLES.values()]
    table = "\n".join(["| variable | default | what |", "|---|---|---|", *rows])
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert table + "\n\n" in docs, f"docs/configuration.md's table should read:\n{table}"


def test_the_local_development_switch_is_refused(tmp_path):
    done, args = deploy(tmp_path, "--dry-run", GENRE_DEV_ALLOW_LOOPBACK_LINKS="1")
    assert done.returncode == 2 and args is None and done.stdout == ""
    assert "GENRE_DEV_ALLOW_LOOPBACK_LINKS is for local development only" in done.stderr


def test_gcloud_missing_is_a_clear_error(tmp_path):
    bare = tool_dir(tmp_path / "bin", "bash", "dirname")
    done, args = deploy(tmp_path, path=str(bare))
    assert done.returncode == 127 and args is None
    assert "gcloud is not installed" in done.stderr and "cloud.google.com/sdk" in done.stderr


def test_help(tmp_path):
    done, args = deploy(tmp_path, "--help")
    assert done.returncode == 0 and args is None
    assert done.stdout.startswith("# Deploy the classifier") and "YTDLP_PROXY_SECRET" in done.stdout
    assert "set -euo" not in done.stdout


def test_unknown_argument(tmp_path):
    done, args = deploy(tmp_path, "--prod")
    assert done.returncode == 2 and args is None and "unknown argument: --prod" in done.stderr


UPLOAD = {"main.py", "requirements.txt", "web/index.html", "models/genre_cnn.onnx", "models/genre_cnn.power.onnx",
          "models/genre_musicnn.onnx", "models/genre_musicnn.power.onnx",
          *(f"inference/{p.name}" for p in (ROOT / "inference").glob("*.py"))}
JUNK = [".venv/lib/site.py", ".cache/musicnn/musicnn-0.1.0-py3-none-any.whl", "inference/__pycache__/x.cpython-311.pyc",
        "tests/screenshots/page.png",
        ".pytest_cache/v/x", ".hypothesis/examples/x", "build/x.o", "export/train.py", "bench/serving.py",
        "models/confusion.png", "models/crossval.json", "openapi.yaml", ".git/config", ".ruff_cache/0.17/x",
        # what the docs' commands write in this folder, and what a user may keep in it
        "gtzan.jsonl", "results.jsonl", "results.csv", "mine/mine.onnx", "mine/mine.power.onnx", "mine/mine.json",
        "mine/crossval_mine.json", "cookies.txt", "song.flac", "notes/todo.md", "inference/notes.txt",
        "web/draft.html", "models/mine.onnx.bak", ".env"]


def test_the_files_the_docs_commands_write_here_stay_out():
    """Every `--out` of the README and docs names a file that .gcloudignore leaves out."""
    written = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for path in re.findall(r"--out[ =]([\w./-]+)", page.read_text()):
            written.add(path.removeprefix("./").rstrip("/") + ("/x.onnx" if path.endswith("/") else ""))
    written = {p for p in written if not p.startswith(("~", "/", "../"))}
    assert written and uploaded(written) == set(), sorted(uploaded(written))


def uploaded(paths) -> set[str]:
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".gcloudignore").read_text().splitlines())
    return {p for p in paths if not spec.match_file(p)}


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def test_gcloudignore_lets_through_only_what_the_function_needs():
    assert uploaded(tracked()) == UPLOAD
    assert uploaded(JUNK) == set()
    size = sum((ROOT / p).stat().st_size for p in UPLOAD)
    assert size < 8 * 2**20, f"the upload is {size} bytes"


@pytest.mark.skipif(not shutil.which("gcloud"), reason="gcloud is not installed (as in CI); the pathspec check runs")
def test_gcloud_agrees_where_it_is_installed():
    out = subprocess.run(["gcloud", "meta", "list-files-for-upload", "."], cwd=ROOT, capture_output=True,
                         text=True, timeout=120).stdout.split()
    assert set(out) == UPLOAD


JOB = {"LIBRARY": "gs://my-music/catalogue/", "RESULTS": "gs://my-results/run-1/",
       "ENDPOINT": "https://genre-classifier-abc-uc.a.run.app"}


def test_a_job_over_a_bucket_is_one_command_and_its_dry_run_shows_it(tmp_path):
    done, args = deploy(tmp_path, "--job", "--dry-run", TASKS="20", **JOB)
    assert done.returncode == 0 and args is None, done.stderr
    printed = shlex.split(done.stdout)  # as a shell runs it
    assert printed[:5] == ["gcloud", "run", "jobs", "deploy", "genre-batch"]
    for expected in ("--tasks=20", "--parallelism=20", "--max-retries=3", "--execute-now", "--command=python",
                     "--args=-m,inference,batch,gs://my-music/catalogue/,--endpoint,"
                     "https://genre-classifier-abc-uc.a.run.app,--out,gs://my-results/run-1/,--jobs,16"):
        assert expected in printed
    (tmp_path / "run").mkdir()
    done, args = deploy(tmp_path / "run", "--job", REGION="europe-west1", PROJECT="p", **JOB)
    assert done.returncode == 0 and args[:4] == ["run", "jobs", "deploy", "genre-batch"], done.stderr
    assert "--region=europe-west1" in args and "--project=p" in args and "--tasks=10" in args


@pytest.mark.parametrize("missing, says", [("LIBRARY", "set LIBRARY=gs://"), ("RESULTS", "set RESULTS=gs://"),
                                           ("ENDPOINT", "set ENDPOINT to the function's https URL")])
def test_a_job_without_its_bucket_or_endpoint_is_refused(tmp_path, missing, says):
    done, args = deploy(tmp_path, "--job", **{k: v for k, v in JOB.items() if k != missing})
    assert done.returncode == 2 and args is None and says in done.stderr


def test_the_function_is_given_its_allowed_buckets(tmp_path):
    done, args = deploy(tmp_path, "--dry-run", GENRE_ALLOWED_BUCKETS="my-music")
    assert done.returncode == 0 and "@GENRE_ALLOWED_BUCKETS=my-music" in done.stdout
