"""Rollouts of the demo app for the tests under load: one per strategy, with pauses that wait for
a promote (the tests promote once the load generator has counted enough answers) rather than
for a time, and no analysis unless a test wants one."""

from __future__ import annotations


def _rollout(
    name: str, version: str, strategy: str, *, replicas: int = 2, latency_ms: int = 0, error_rate: float = 0.0
) -> str:
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: {replicas}
  process:
    command: [rollwise-demo]
    env:
      DEMO_VERSION: "{version}"
      DEMO_LATENCY_MS: "{latency_ms}"
      DEMO_ERROR_RATE: "{error_rate}"
    terminationGracePeriodSeconds: 5
  strategy:
{strategy}
"""


def recreate(name: str, version: str) -> str:
    return _rollout(name, version, "    recreate: {}")


def rolling(name: str, version: str) -> str:
    strategy = """    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0"""
    return _rollout(name, version, strategy, replicas=3)


def blue_green(name: str, version: str) -> str:
    strategy = """    blueGreen:
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 2"""
    return _rollout(name, version, strategy)


def canary(name: str, version: str, weights: tuple[int, ...] = (20, 50), *, scale_down_delay: int | None = None) -> str:
    steps = "".join(f"\n        - setWeight: {w}\n        - pause: {{}}" for w in weights)
    strategy = f"""    canary:
      trafficRouting:
        local: {{}}
      steps:{steps}"""
    if scale_down_delay is not None:
        strategy += f"""
      scaleDownDelaySeconds: {scale_down_delay}"""
    return _rollout(name, version, strategy)


def shadow(
    name: str,
    version: str,
    *,
    percent: int,
    latency_ms: int = 0,
    error_rate: float = 0.0,
    duration: str = "10m",
    compare: bool = True,
    analysis: str | None = None,
) -> str:
    strategy = f"""    shadow:
      trafficRouting:
        local: {{}}
      mirrorPercent: {percent}
      duration: {duration}"""
    if compare:
        strategy += """
      compare:
        headers: [Content-Type]
        ignoreBodyPaths: [$.version]"""
    if analysis is not None:
        strategy += f"""
      analysis:
        templates: [{{templateName: {analysis}}}]"""
    return _rollout(name, version, strategy, latency_ms=latency_ms, error_rate=error_rate)


def shadow_health(name: str) -> str:
    """Builtin metrics of the shadow's own answers (the mirrored requests): it serves no user."""
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: {name}
spec:
  metrics:
    - name: success-rate
      provider:
        builtin: {{metric: success-rate, revision: canary, window: 3s}}
      initialDelay: 1s
      interval: 1s
      successCondition: result >= 0.95
      failureLimit: 1
      consecutiveErrorLimit: 10
    - name: latency-p99
      provider:
        builtin: {{metric: latency-p99, revision: canary, window: 3s}}
      initialDelay: 1s
      interval: 1s
      successCondition: result <= 1000
      consecutiveErrorLimit: 10
"""


# Requests with this header go to the candidate, whatever the weights.
AB_HEADER = ("x-variant", "candidate")


def ab_test(name: str, version: str, *, weight: int = 30) -> str:
    strategy = f"""    abTest:
      trafficRouting:
        local: {{}}
      duration: 10m
      stickyBy:
        cookie: load-variant
      variants:
        - name: control
          role: control
        - name: candidate
          role: candidate
          weight: {weight}
          match:
            - headers:
                - name: {AB_HEADER[0]}
                  exact: {AB_HEADER[1]}"""
    return _rollout(name, version, strategy)


def dynamic_canary(name: str, version: str, *, latency_ms: int = 0) -> str:
    strategy = """    canary:
      trafficRouting:
        local: {}
      dynamic:
        startWeight: 20
        minStepWeight: 10
        maxStepWeight: 20
        maxWeight: 100
        interval: 5s
        minSamples: 200"""
    return _rollout(name, version, strategy, latency_ms=latency_ms)
