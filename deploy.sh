#!/usr/bin/env bash
# Deploy the classifier to Google Cloud Functions (2nd gen) from this folder.
#   ./deploy.sh            deploy
#   ./deploy.sh --dry-run  print the gcloud command instead of running it
# Settings (environment variables, with defaults):
#   PUBLIC=0: only callers with an identity token of an account granted roles/run.invoker;
#   PUBLIC=1: anyone (the page in a browser), at the owner's cost, capped by MAX_INSTANCES
#   FUNCTION_NAME=genre-classifier  REGION=us-central1  PROJECT=(gcloud's default)
#   MEMORY=1GiB  CPU=1  TIMEOUT=60s  MAX_INSTANCES=10  CONCURRENCY=4
#   the function's settings (inference/config.py, docs/configuration.md) are passed to it when set;
#   YTDLP_COOKIES_SECRET=name of a Secret Manager secret holding a cookies.txt, mounted at
#   /secrets/cookies.txt and used as YTDLP_COOKIES;
#   YTDLP_PROXY_SECRET=name of a secret holding the proxy URL (credentials stay out of the config),
#   not with YTDLP_PROXY;
#   YTDLP_VERSION=latest (the newest release on the package index, found with pip; a dry run leaves
#   it unresolved) or a version: deploy that yt-dlp instead of requirements.txt's pin (restored
#   after); unset: the pin.
#   GENRE_ALLOWED_BUCKETS=the buckets whose gs:// links the function reads (docs/batch.md)
#   ./deploy.sh --job [--dry-run]: deploy and start a Cloud Run job that classifies a bucket with the
#   function: LIBRARY=gs://BUCKET/PREFIX/ (required) RESULTS=gs://BUCKET/PREFIX/ (required)
#   ENDPOINT=the function's https URL (required)  JOB_NAME=genre-batch  TASKS=10 (shards)
#   PARALLELISM=TASKS  JOBS_PER_TASK=16 (requests in flight per task)  TASK_TIMEOUT=24h
set -euo pipefail
cd "$(dirname "$0")"

dry_run=0
job=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --job) job=1 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown argument: $arg (use --dry-run, --job or --help)" >&2; exit 2 ;;
  esac
done

need_gcloud() {
  if (( ! dry_run )) && ! command -v gcloud >/dev/null 2>&1; then
    echo "deploy.sh: gcloud is not installed or not on PATH; install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), run 'gcloud init', then retry" >&2
    exit 127
  fi
}

# --job: the batch client as a Cloud Run job, one shard a task (CLOUD_RUN_TASK_INDEX/COUNT), results
# as part files under RESULTS; a task that fails is retried and resumes from its parts
if (( job )); then
  for name in LIBRARY RESULTS; do
    if [[ "${!name:-}" != gs://?* ]]; then echo "deploy.sh --job: set $name=gs://BUCKET/PREFIX/" >&2; exit 2; fi
  done
  if [[ "${ENDPOINT:-}" != https://?* ]]; then echo "deploy.sh --job: set ENDPOINT to the function's https URL (gcloud functions describe genre-classifier --gen2 --region=us-central1 --format='value(serviceConfig.uri)')" >&2; exit 2; fi
  for value in "$LIBRARY" "$RESULTS" "$ENDPOINT"; do
    if [[ "$value" == *,* ]]; then echo "deploy.sh --job: $value: a comma cannot be passed in the job's arguments" >&2; exit 2; fi
  done
  cmd=(gcloud run jobs deploy "${JOB_NAME:-genre-batch}" --source=. --region="${REGION:-us-central1}"
    --tasks="${TASKS:-10}" --parallelism="${PARALLELISM:-${TASKS:-10}}" --max-retries=3
    --task-timeout="${TASK_TIMEOUT:-24h}" --memory=1Gi --cpu=1 --command=python
    "--args=-m,inference,batch,$LIBRARY,--endpoint,$ENDPOINT,--out,$RESULTS,--jobs,${JOBS_PER_TASK:-16}"
    --execute-now)
  if [[ -n "${PROJECT:-}" ]]; then cmd+=(--project="$PROJECT"); fi
  need_gcloud
  if (( dry_run )); then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
  exec "${cmd[@]}"
fi

if [[ -n "${GENRE_DEV_ALLOW_LOOPBACK_LINKS:-}" ]]; then
  echo "deploy.sh: GENRE_DEV_ALLOW_LOOPBACK_LINKS is for local development only (links could reach the function's own machine); unset it to deploy" >&2
  exit 2
fi
# the settings as the function will read them at start (inference/config.py): one it could not run with
# would stop every instance, so it is refused here, named (the cookies come from a secret, not from here)
if command -v python3 > /dev/null; then
  if ! refused="$(env -u YTDLP_COOKIES python3 -m inference.config 2>&1)"; then
    echo "deploy.sh: $refused" >&2
    exit 2
  fi
else
  echo "deploy.sh: warning: no python3 to check the settings with; the function checks them as it starts" >&2
fi
case "${PUBLIC:-0}" in
  0) access=--no-allow-unauthenticated ;;
  1) access=--allow-unauthenticated ;;
  *) echo "deploy.sh: PUBLIC must be 0 (callers need an identity token) or 1 (anyone may call)" >&2; exit 2 ;;
esac
if [[ -n "${YTDLP_PROXY:-}" && -n "${YTDLP_PROXY_SECRET:-}" ]]; then
  echo "deploy.sh: set YTDLP_PROXY (the proxy URL, in the function's configuration) or YTDLP_PROXY_SECRET (a secret holding it), not both: each sets the function's YTDLP_PROXY" >&2
  exit 2
fi

# GENRE_MODEL: only models/*.onnx is uploaded of the model files (.gcloudignore), so the model and
# its serving twin must lie there; it is passed on as models/<name>, the path on the function's side
if [[ -n "${GENRE_MODEL:-}" ]]; then
  if [[ -d "$GENRE_MODEL" ]]; then
    echo "deploy.sh: GENRE_MODEL=$GENRE_MODEL is a folder: name the model's file, e.g. GENRE_MODEL=models/genre_cnn.onnx ./deploy.sh" >&2
    exit 2
  fi
  if [[ "$GENRE_MODEL" != *.onnx ]]; then
    echo "deploy.sh: GENRE_MODEL=$GENRE_MODEL is not an ONNX model (.onnx), the only model files uploaded (.gcloudignore): name the model's .onnx file, e.g. GENRE_MODEL=models/genre_cnn.onnx ./deploy.sh" >&2
    exit 2
  fi
  model_dir="$(cd "$(dirname "$GENRE_MODEL")" 2>/dev/null && pwd -P || true)"
  name="$(basename "$GENRE_MODEL")"
  if [[ "$model_dir" == "$(pwd -P)/models" && ! -f "models/$name" ]]; then
    echo "deploy.sh: GENRE_MODEL=$GENRE_MODEL: there is no models/$name; write it there (python -m export train FAMILY --data LIBRARY --out models/$name, which writes its serving twin beside it) or copy it and its twin there, then run GENRE_MODEL=models/$name ./deploy.sh" >&2
    exit 2
  fi
  if [[ "$model_dir" != "$(pwd -P)/models" ]]; then
    echo "deploy.sh: GENRE_MODEL=$GENRE_MODEL is not a file in $(pwd -P)/models/, the only folder of models that is uploaded: copy the model and its serving twin there (cp $GENRE_MODEL ${GENRE_MODEL%.onnx}.power.onnx models/), then run GENRE_MODEL=models/$name ./deploy.sh" >&2
    exit 2
  fi
  GENRE_MODEL="models/$name"
  twin="models/${name%.onnx}.power.onnx"
  # the function runs the twin but reports the model's sha256, so a twin derived from another version
  # of the model would serve that one unnoticed; a twin records the sha256 of the model it was derived
  # from (its source_sha256 metadata, which ONNX stores verbatim)
  if [[ ! -f "$twin" ]]; then
    echo "deploy.sh: warning: no serving twin $twin: the model will run from raw audio, slower (export/to_onnx.py derives the twin)" >&2
  else
    model_sha="$( (sha256sum "$GENRE_MODEL" 2>/dev/null || shasum -a 256 "$GENRE_MODEL") | cut -d' ' -f1)"  # shasum: macOS
    if ! grep -qF "$model_sha" "$twin"; then
      echo "deploy.sh: $twin is not the serving twin of $GENRE_MODEL: it does not record the model's sha256 (it was derived from another version of the model, or before twins recorded it); derive it again: python -m export.to_onnx $GENRE_MODEL" >&2
      exit 2
    fi
  fi
fi

env_vars=(ORT_DISABLE_TELEMETRY=1 MALLOC_ARENA_MAX=2)  # no telemetry; fewer glibc arenas: -70 MiB RSS under concurrency
env_vars+=(THREADS=64)  # functions-framework's gunicorn threads (default 4 per core): see docs/hardening.md, Hostile clients
# the variables of inference/config.py marked deployed, in its order (tests/test_deploy.py checks)
for name in GENRE_MODEL GENRE_DEFAULT_START_S GENRE_DEFAULT_DURATION_S GENRE_MAX_DURATION_S \
            GENRE_MAX_SOURCE_MINUTES GENRE_MAX_UPLOAD_MB GENRE_MAX_FETCH_MB GENRE_TIME_BUDGET_S \
            GENRE_MAX_QUEUE_S GENRE_ALLOWED_SITES GENRE_ALLOWED_BUCKETS GENRE_CORS_ORIGIN YTDLP_PROXY; do
  if [[ -n "${!name:-}" ]]; then env_vars+=("${name}=${!name}"); fi
done
if [[ -n "${YTDLP_COOKIES_SECRET:-}" ]]; then env_vars+=(YTDLP_COOKIES=/secrets/cookies.txt); fi
# gcloud splits the list at the delimiter given as ^DELIM^ (gcloud topic escaping): the first of these
# that no value holds, or a value holding it (a proxy's user:password@host) would be cut in two
delimiters='@|;~#'
delim=""
for (( i = 0; i < ${#delimiters}; i++ )); do
  if [[ "${env_vars[*]}" != *"${delimiters:i:1}"* ]]; then delim="${delimiters:i:1}"; break; fi
done
if [[ -z "$delim" ]]; then
  holders=()
  for pair in "${env_vars[@]}"; do
    if [[ "$pair" == *["$delimiters"]* ]]; then holders+=("${pair%%=*}"); fi
  done
  echo "deploy.sh: each delimiter deploy.sh can give gcloud's --set-env-vars (any of $delimiters) occurs in the values of ${holders[*]}: change a value (a proxy URL with such a password: use YTDLP_PROXY_SECRET)" >&2
  exit 2
fi

cmd=(gcloud functions deploy "${FUNCTION_NAME:-genre-classifier}"
  --gen2 --runtime=python311 --trigger-http "$access"
  --entry-point=classify --source=.
  --region="${REGION:-us-central1}"
  --memory="${MEMORY:-1GiB}" --cpu="${CPU:-1}" --timeout="${TIMEOUT:-60s}"
  --max-instances="${MAX_INSTANCES:-10}" --concurrency="${CONCURRENCY:-4}"
  "--set-env-vars=^${delim}^$(IFS="$delim"; echo "${env_vars[*]}")")
if [[ -n "${PROJECT:-}" ]]; then cmd+=(--project="$PROJECT"); fi
secrets=()
if [[ -n "${YTDLP_COOKIES_SECRET:-}" ]]; then secrets+=("/secrets/cookies.txt=${YTDLP_COOKIES_SECRET}:latest"); fi
if [[ -n "${YTDLP_PROXY_SECRET:-}" ]]; then secrets+=("YTDLP_PROXY=${YTDLP_PROXY_SECRET}:latest"); fi
if (( ${#secrets[@]} )); then cmd+=("--set-secrets=$(IFS=,; echo "${secrets[*]}")"); fi

need_gcloud
pinned="$(sed -n 's/^yt-dlp\[default\]==\([^ ]*\).*/\1/p' requirements.txt)"
ytdlp="${YTDLP_VERSION:-$pinned}"
if [[ "$ytdlp" == latest ]] && (( dry_run )); then  # a dry run reaches no network: it stays latest
  echo "deploy.sh: YTDLP_VERSION=latest: the newest yt-dlp is looked up with pip when deploying, not in a dry run" >&2
elif [[ "$ytdlp" == latest ]]; then
  ytdlp="$(python3 -m pip index versions yt-dlp 2>/dev/null | sed -n 's/^yt-dlp (\(.*\))$/\1/p')"
  if [[ -z "$ytdlp" ]]; then echo "deploy.sh: the newest yt-dlp could not be found (python3 -m pip index versions yt-dlp)" >&2; exit 1; fi
fi
if [[ ! "$ytdlp" =~ ^(latest|[0-9][0-9.]*)$ ]]; then echo "deploy.sh: YTDLP_VERSION must be latest or a version such as 2026.10.26" >&2; exit 2; fi
if [[ "$ytdlp" != "$pinned" ]]; then echo "deploy.sh: deploying yt-dlp $ytdlp instead of the pinned $pinned" >&2; fi

if (( dry_run )); then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
if [[ "$ytdlp" != "$pinned" ]]; then  # the upload's requirements.txt names it for the build; the pin comes back after
  pins="$(mktemp)"  # outside this folder: it must not be uploaded
  cp requirements.txt "$pins"
  trap 'cp "$pins" requirements.txt && rm -f "$pins"' EXIT
  sed -i.bak "s/^yt-dlp\[default\]==$pinned/yt-dlp[default]==$ytdlp/" requirements.txt && rm requirements.txt.bak
fi
"${cmd[@]}"
