#!/usr/bin/env bash
# End-to-end test of Rollwise on a real cluster: kind, Istio (with its Prometheus add-on), the
# Gateway API CRDs and ingress-nginx (with its Prometheus); the controller image built here and
# loaded into kind; `rollwise install --print | kubectl apply`; then every example in
# examples/kubernetes/ in a namespace of its own: applied, Healthy, updated to a new revision,
# promoted and Healthy again on that revision. The cluster is deleted at the end (KEEP=1 keeps it).
#
# Not run in this project's CI: the machines it runs on have no container engine. Run it on a
# machine with Docker, kind, kubectl, istioctl and a `rollwise` on PATH (pip install '.[kubernetes]'):
#   hack/e2e-kind.sh
# Settings (environment): CLUSTER, IMAGE, KEEP, TIMEOUT (seconds per wait), EXAMPLES (files),
# GATEWAY_API_VERSION, INGRESS_NGINX_VERSION, ISTIO_ADDONS_BRANCH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-rollwise-e2e}"
CONTEXT="kind-${CLUSTER}"
IMAGE="${IMAGE:-rollwise:e2e}"
KEEP="${KEEP:-0}"
TIMEOUT="${TIMEOUT:-300}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.2.1}"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.12.0}"
ISTIO_ADDONS_BRANCH="${ISTIO_ADDONS_BRANCH:-release-1.24}"
if [[ -n "${EXAMPLES:-}" ]]; then
    read -r -a EXAMPLE_FILES <<< "${EXAMPLES}"
else
    EXAMPLE_FILES=("${ROOT}"/examples/kubernetes/*.yaml)
fi

log() { printf '\n== %s\n' "$*" >&2; }
fail() { printf 'e2e: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required on PATH"; }
k() { kubectl --context "${CONTEXT}" "$@"; }
rw() { rollwise "$@" --context "${CONTEXT}"; }

for tool in docker kind kubectl istioctl rollwise; do need "${tool}"; done

cleanup() {
    local status=$?
    if [[ "${status}" -ne 0 ]]; then
        log "failed; controller log:"
        k -n rollwise-system logs deploy/rollwise-controller --tail=200 2>/dev/null || true
    fi
    if [[ "${KEEP}" == "1" ]]; then
        log "keeping cluster ${CLUSTER} (kind delete cluster --name ${CLUSTER})"
    else
        kind delete cluster --name "${CLUSTER}" >/dev/null 2>&1 || true
    fi
    exit "${status}"
}
trap cleanup EXIT

# Wait until `$1` (a command printing a value) prints `$2`, or fail after TIMEOUT seconds.
wait_for() {
    local what="$1" want="$2" deadline=$((SECONDS + TIMEOUT)) got=""
    while (( SECONDS < deadline )); do
        got="$(eval "${what}" 2>/dev/null || true)"
        [[ "${got}" == "${want}" ]] && return 0
        sleep 3
    done
    fail "timed out after ${TIMEOUT}s waiting for '${what}' to be '${want}' (last: '${got}')"
}

log "cluster ${CLUSTER}"
kind create cluster --name "${CLUSTER}" --wait 180s

log "Istio and its Prometheus"
istioctl install -y --context "${CONTEXT}" --set profile=minimal
k apply -f "https://raw.githubusercontent.com/istio/istio/${ISTIO_ADDONS_BRANCH}/samples/addons/prometheus.yaml"
k -n istio-system rollout status deploy/prometheus --timeout="${TIMEOUT}s"

log "Gateway API CRDs"
k apply -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"

log "ingress-nginx and its Prometheus"
k apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
k -n ingress-nginx rollout status deploy/ingress-nginx-controller --timeout="${TIMEOUT}s"
k apply -k "https://github.com/kubernetes/ingress-nginx/deploy/prometheus/?ref=${INGRESS_NGINX_VERSION}"

log "controller image ${IMAGE}"
docker build -t "${IMAGE}" "${ROOT}"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

log "install"
# Server-side: the CRDs are too large for client-side apply's last-applied annotation.
rollwise install --print --image "${IMAGE}" | k apply --server-side -f -
k wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=rollwise
k -n rollwise-system rollout status deploy/rollwise-controller --timeout="${TIMEOUT}s"

phase() { k -n "$1" get "rollouts.rollwise.dev/$2" -o jsonpath='{.status.phase}'; }
field() { k -n "$1" get "rollouts.rollwise.dev/$2" -o jsonpath="{.status.$3}"; }

for file in "${EXAMPLE_FILES[@]}"; do
    name="$(basename "${file}" .yaml)"
    ns="e2e-${name}"
    log "example ${name} in namespace ${ns}"
    k create namespace "${ns}"
    k label namespace "${ns}" istio-injection=enabled
    rw apply -f "${file}" -n "${ns}"
    for rollout in $(k -n "${ns}" get rollouts.rollwise.dev -o jsonpath='{.items[*].metadata.name}'); do
        wait_for "phase ${ns} ${rollout}" Healthy
        first="$(field "${ns}" "${rollout}" stableRevision)"
        # A new revision: a changed pod template. promote --full skips the steps, pauses and
        # analysis (no traffic flows here to measure).
        rw set env "${rollout}" -n "${ns}" "E2E_UPDATE=$(date +%s)"
        wait_for "field ${ns} ${rollout} currentRevision | grep -vx '${first}' >/dev/null && echo changed" changed
        rw promote "${rollout}" --full -n "${ns}" --wait 120
        wait_for "phase ${ns} ${rollout}" Healthy
        second="$(field "${ns}" "${rollout}" stableRevision)"
        [[ "${second}" != "${first}" ]] || fail "${ns}/${rollout}: stable revision still ${first} after promote --full"
        rw status "${rollout}" -n "${ns}"
        rw history "${rollout}" -n "${ns}"
    done
    k delete namespace "${ns}" --wait=false
done

log "all examples passed"
