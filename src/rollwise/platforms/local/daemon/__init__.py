"""The local control plane (`rollwise up`): it joins the engine, the supervisor, the proxies, the
store and analysis into one level-based loop, and serves the HTTP API of docs/local-api.md.

Processes: this daemon; one proxy process per listener of each rollout (the data plane, which
outlives the daemon); each revision's replicas (started by the supervisor, also outliving it).
`server.run(dir)` is the entry point."""
