"""secretKeyRef on the local platform: the control plane reads a Secret key from
<state dir>/secrets/<name>/<key>, here the bearer token of a real webhook that checks it; a
missing key errs the analysis with a message naming Secret, key and file, and the rollout waits
(never promoted without evidence)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from tests.analysis.servers import json_reply, serve
from tests.local.plane import Plane

TOKEN = "hook-t0ken"


def template(port: int) -> str:
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
spec:
  metrics:
    - name: smoke
      provider:
        webhook:
          url: http://127.0.0.1:{port}/smoke
          jsonPath: $.ok
          retries: 0
          auth:
            bearer:
              secretKeyRef: {{name: hooks, key: token}}
      successCondition: result == true
      consecutiveErrorLimit: 0
"""


def rollout(version: str) -> str:
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 1
  process:
    command: [rollwise-demo]
    env:
      DEMO_VERSION: "{version}"
    terminationGracePeriodSeconds: 5
  strategy:
    canary:
      trafficRouting:
        local: {{}}
      steps:
        - setWeight: 50
        - analysis:
            templates: [{{templateName: smoke}}]
"""


def test_a_secret_file_authenticates_the_analysis_and_a_missing_one_is_named(plane: Plane) -> None:
    seen: list[str | None] = []

    def handle(req: BaseHTTPRequestHandler, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        seen.append(req.headers.get("Authorization"))
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_reply(401, {"error": "unauthorized"})
        return json_reply(200, {"ok": True})

    secret = plane.dir / "secrets" / "hooks" / "token"
    secret.parent.mkdir(parents=True)
    secret.write_text(TOKEN + "\n")
    with serve(handle) as port:
        plane.apply(template(port) + "---" + rollout("v1"))
        plane.wait("web", lambda s: s["phase"] == "Healthy", "v1 healthy")

        plane.apply(rollout("v2"))
        v2 = plane.summary("web")["currentRevision"]
        plane.wait("web", lambda s: s["phase"] == "Healthy" and s["stableRevision"] == v2, "v2 promoted")
        assert f"Bearer {TOKEN}" in seen

        secret.unlink()
        plane.apply(rollout("v3"))
        v3 = plane.summary("web")["currentRevision"]
        waiting = plane.wait("web", lambda s: s["phase"] == "Paused", "v3 paused by the analysis error")
        assert waiting["stableRevision"] == v2 and waiting["currentRevision"] == v3
        (run,) = [r for r in plane.rollout("web")["analysis"] if r["revision"] == v3]
        assert run["phase"] == "Error", run
        expected = f"Secret 'hooks' has no key 'token': no file {secret} (keys: none)"
        assert expected in run["message"], run
        assert TOKEN not in str(plane.rollout("web"))
