"""Analysis: turn measurements of a running revision into verdicts.

- `run`: the AnalysisRun state machine (when to measure, what the measurements add up to).
- `args`, `conditions`: `{{args.NAME}}` substitution and CEL success/failure conditions.
- `providers/`: where measurements come from (Prometheus, the router's own counters, a webhook, a job).
- `judge`: canary-vs-baseline comparison of samples, in the spirit of Kayenta.
- `sequential`: the decision policy behind dynamic canary weights.
- `reports`: A/B and shadow summaries.
- `judgements`: the runs judged from traffic counters (a dynamic canary's interval, the A/B
  winner, the shadow comparison), run by both platforms with a `job_env.JobEnv` over
  `counters.ProxyTraffic`; `waiting`: a cancellable wait.

Everything but `providers/`, `measure`, `judgements` and `waiting` is pure: no I/O, no clock;
time is passed in.
"""
