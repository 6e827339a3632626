"""The CodeDeploy pre-traffic hook: the new classifier version must pass the golden set before traffic."""
