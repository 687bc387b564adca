"""Rollouts for the tests: the demo app, short pauses and intervals, builtin analysis."""

from __future__ import annotations

HEALTH = """
apiVersion: rollwise.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: health
spec:
  metrics:
    - name: success-rate
      provider:
        builtin:
          metric: success-rate
          window: 3s
      initialDelay: 1s
      interval: 1s
      successCondition: result >= 0.95
      failureLimit: 1
      consecutiveErrorLimit: 10
"""


def canary(
    version: str,
    *,
    name: str = "web",
    error_rate: float = 0.0,
    replicas: int = 2,
    pause: str = "pause: {duration: 2s}",
    analysis: bool = True,
) -> str:
    background = (
        """
      analysis:
        templates: [{templateName: health}]
        startingStep: 1"""
        if analysis
        else ""
    )
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
      DEMO_ERROR_RATE: "{error_rate}"
    terminationGracePeriodSeconds: 5
  strategy:
    canary:
      trafficRouting:
        local: {{}}{background}
      steps:
        - setWeight: 30
        - {pause}
        - setWeight: 60
        - pause: {{duration: 2s}}
"""


def blue_green(version: str, *, preview_port: int, name: str = "bg") -> str:
    return f"""
apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: 2
  listen:
    previewPort: {preview_port}
  process:
    command: [rollwise-demo]
    env:
      DEMO_VERSION: "{version}"
    terminationGracePeriodSeconds: 5
  strategy:
    blueGreen:
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 5
"""
