#!/usr/bin/env bash
# Deploy the classifier to Google Cloud Functions (2nd gen) from this folder.
#   ./deploy.sh            deploy
#   ./deploy.sh --dry-run  print the gcloud command instead of running it
# Settings (environment variables, with defaults):
#   PUBLIC=0: only callers with an identity token of an account granted roles/run.invoker;
#   PUBLIC=1: anyone (the page in a browser), at the owner's cost, capped by MAX_INSTANCES
#   FUNCTION_NAME=genre-classifier  REGION=us-central1  PROJECT=(gcloud's default)
#   MEMORY=1GiB  CPU=1  TIMEOUT=60s  MAX_INSTANCES=10  CONCURRENCY=4
#   the function's settings (inference/config.py, README) are passed to it when set;
#   YTDLP_COOKIES_SECRET=name of a Secret Manager secret holding a cookies.txt, mounted at
#   /secrets/cookies.txt and used as YTDLP_COOKIES;
#   YTDLP_PROXY_SECRET=name of a secret holding the proxy URL (credentials stay out of the config).
set -euo pipefail
cd "$(dirname "$0")"

dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown argument: $arg (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

case "${PUBLIC:-0}" in
  0) access=--no-allow-unauthenticated ;;
  1) access=--allow-unauthenticated ;;
  *) echo "deploy.sh: PUBLIC must be 0 (callers need an identity token) or 1 (anyone may call)" >&2; exit 2 ;;
esac

env_vars="ORT_DISABLE_TELEMETRY=1@MALLOC_ARENA_MAX=2"  # no telemetry; fewer glibc arenas: -70 MiB RSS under concurrency
env_vars+="@THREADS=64"  # functions-framework's gunicorn threads (default 4 per core): see README, Hostile clients
# the variables of inference/config.py marked deployed, in its order (tests/test_deploy.py checks)
for name in GENRE_MODEL GENRE_DEFAULT_START_S GENRE_DEFAULT_DURATION_S GENRE_MAX_DURATION_S \
            GENRE_MAX_SOURCE_MINUTES GENRE_MAX_UPLOAD_MB GENRE_MAX_FETCH_MB GENRE_TIME_BUDGET_S \
            GENRE_MAX_QUEUE_S GENRE_ALLOWED_SITES GENRE_CORS_ORIGIN YTDLP_PROXY; do
  if [[ -n "${!name:-}" ]]; then env_vars+="@${name}=${!name}"; fi
done
if [[ -n "${YTDLP_COOKIES_SECRET:-}" ]]; then env_vars+="@YTDLP_COOKIES=/secrets/cookies.txt"; fi

cmd=(gcloud functions deploy "${FUNCTION_NAME:-genre-classifier}"
  --gen2 --runtime=python311 --trigger-http "$access"
  --entry-point=classify --source=.
  --region="${REGION:-us-central1}"
  --memory="${MEMORY:-1GiB}" --cpu="${CPU:-1}" --timeout="${TIMEOUT:-60s}"
  --max-instances="${MAX_INSTANCES:-10}" --concurrency="${CONCURRENCY:-4}"
  "--set-env-vars=^@^${env_vars}")
if [[ -n "${PROJECT:-}" ]]; then cmd+=(--project="$PROJECT"); fi
secrets=()
if [[ -n "${YTDLP_COOKIES_SECRET:-}" ]]; then secrets+=("/secrets/cookies.txt=${YTDLP_COOKIES_SECRET}:latest"); fi
if [[ -n "${YTDLP_PROXY_SECRET:-}" ]]; then secrets+=("YTDLP_PROXY=${YTDLP_PROXY_SECRET}:latest"); fi
if (( ${#secrets[@]} )); then cmd+=("--set-secrets=$(IFS=,; echo "${secrets[*]}")"); fi

if (( dry_run )); then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
if ! command -v gcloud >/dev/null 2>&1; then
  echo "deploy.sh: gcloud is not installed or not on PATH; install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), run 'gcloud init', then retry" >&2
  exit 127
fi
exec "${cmd[@]}"
