"""The `rollwise` command line (also installed as the kubectl plugin `kubectl-rollwise`)."""
