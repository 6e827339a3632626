"""Developer tooling for Pigeonhole: model building, the local runtime and the CLI. Never ships to Lambda."""
