"""The local platform: a control plane for one machine, with its own proxy as the data plane."""
