#!/bin/sh
# Managed by nexus-template: `copier update` replaces this file.
# Builds the service's image as CI does (.github/workflows/ci.yml): tagged nexus/echo-service:<SERVICE_VERSION>
# and labelled with release/service.env as the platform reads it (`python -m nexus_platform facts`, the
# parser the app and the Dockerfile's check use), with the commit and the build time.
#   image/build-like-ci.sh [more build options, e.g. --build-arg BASE_IMAGE=... or --network host]
# Environment: CONTAINER_ENGINE (docker or podman; default: whichever is installed), PYTHON (one with
# nexus-ai-platform installed; default: .venv/bin/python, else python3), GIT_SHA (default: the checked-out
# commit), PIP_FIND_LINKS (where no index has this nexus-ai-platform release: its wheel is copied into
# wheels/, as README.md "Setup" says).
set -eu
cd "$(dirname "$0")/.."

python="${PYTHON:-}"
if [ -z "${python}" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
engine="${CONTAINER_ENGINE:-}"
if [ -z "${engine}" ]; then
    for candidate in docker podman; do
        if command -v "${candidate}" >/dev/null 2>&1; then engine="${candidate}"; break; fi
    done
fi
if [ -z "${engine}" ]; then
    echo "image/build-like-ci.sh: no docker or podman found (set CONTAINER_ENGINE)" >&2
    exit 1
fi

# SERVICE_VERSION=..., SERVICE_DESCRIPTION=..., SERVICE_OWNER=...: one line each, values as read
facts="$("${python}" -m nexus_platform facts)"
while IFS= read -r fact; do
    set -- "$@" --build-arg "${fact}"
done <<FACTS
${facts}
FACTS
version="$(printf '%s\n' "${facts}" | sed -n 's/^SERVICE_VERSION=//p')"

platform="$(grep -E '^nexus-ai-platform' requirements.txt)"
wheel="nexus_ai_platform-${platform##*==}-py3-none-any.whl"
if [ -n "${PIP_FIND_LINKS:-}" ] && [ ! -f "wheels/${wheel}" ]; then
    python3 -m pip download --no-deps --dest wheels "${platform}"
fi

sha="${GIT_SHA:-$(git rev-parse HEAD 2>/dev/null || true)}"
tag="nexus/echo-service:${version}"
"${engine}" build "$@" --build-arg "GIT_SHA=${sha}" \
    --build-arg "BUILD_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --tag "${tag}" .
echo "built ${tag}"
