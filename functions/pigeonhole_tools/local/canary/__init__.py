"""`pigeonhole local canary`: two classifier versions side by side in the local runtime, judged like a canary."""

from pigeonhole_tools.local.canary.run import CanaryOptions, CanaryReport, Outcome, render_report, run_canary

__all__ = ["CanaryOptions", "CanaryReport", "Outcome", "render_report", "run_canary"]
