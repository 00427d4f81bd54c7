#!/bin/sh
# The secrets of docker-compose.yaml, generated once into .env beside it (mode 0600), which compose reads:
#
#   deploy/compose/secrets.sh && docker compose up -d
#
# docker-compose.yaml requires each of them (${VAR:?…}) and refuses to start without them: no shipped default.
# A second run keeps every value already there (the databases and MinIO were initialised with them) and adds the
# ones missing. `--rotate NAME…` draws new values for the names given; read docs/deployment.md ("Secrets") for what each
# rotation needs (a database password also changes in PostgreSQL). ATIVO_ENV_FILE writes somewhere else.
set -eu

cd "$(dirname "$0")/../.."
env_file=${ATIVO_ENV_FILE:-.env}

# name:kind, kind being the number of random bytes, written in hex (safe in URIs and shells; S3 access keys hold
# at most 20 characters and secret keys 40), or fernet (Airflow's Fernet key)
GENERATED="POSTGRES_PASSWORD:32 AIRFLOW_DB_PASSWORD:32 MLFLOW_DB_PASSWORD:32 PLATFORM_DB_PASSWORD:32 REDIS_PASSWORD:32
MINIO_ROOT_USER:10 MINIO_ROOT_PASSWORD:20 S3_ACCESS_KEY_ID:10 S3_SECRET_ACCESS_KEY:20
AIRFLOW_JWT_SECRET:32 AIRFLOW_API_SECRET_KEY:32 AIRFLOW_FERNET_KEY:fernet GRAFANA_ADMIN_PASSWORD:32
ATIVO_PROMOTION_KEY:32"

all=" $(echo $GENERATED) "  # one line
rotate=" "
if [ "${1:-}" = "--rotate" ]; then
    shift
    for name in "$@"; do
        case "$all" in
            *" $name:"*) rotate="$rotate$name " ;;
            *) echo "secrets.sh: no secret $name (one of:$(echo "$all" | sed 's/:[a-z0-9]*//g'))" >&2
               exit 2 ;;
        esac
    done
elif [ $# -gt 0 ]; then
    echo "usage: deploy/compose/secrets.sh [--rotate NAME...]" >&2
    exit 2
fi

random() {  # random KIND
    case "$1" in
        fernet) head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n' ;;
        *) od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n' ;;
    esac
}

umask 077
tmp="$env_file.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
    echo "# docker-compose.yaml's secrets, written by deploy/compose/secrets.sh: keep this file private (0600), out"
    echo "# of git and backed up; losing it locks you out of the databases and MinIO initialised with it."
    if [ -f "$env_file" ]; then
        # every line but the header and the rotated names, as it was (values and settings of your own)
        grep -v '^# docker-compose.yaml.s secrets\|^# of git and backed up' "$env_file" | while IFS= read -r line; do
            case "$rotate" in *" ${line%%=*} "*) continue ;; esac
            printf '%s\n' "$line"
        done
    fi
} > "$tmp"
for entry in $GENERATED; do
    name=${entry%%:*}
    kind=${entry#*:}
    if ! grep -q "^$name=" "$tmp"; then
        printf '%s=%s\n' "$name" "$(random "$kind")" >> "$tmp"
    fi
done
chmod 600 "$tmp"
mv "$tmp" "$env_file"
trap - EXIT
echo "docker-compose.yaml's secrets are in $env_file (mode 0600)"
[ "$rotate" = " " ] || echo "new values for:$rotate"
