"""The build: the executor (`executor.py`: `build`, `build_plan`, `BuildOptions`), what it
reports (`report.py`) and the step interface work after a job plugs into (`steps.py`).

This module exposes the types only, so that steps (the text check, exports, the review
page) can import them without importing the executor, which imports the steps.
"""

from .report import INTERRUPTED, Activity, BuildReport, JobResult
from .steps import BuildContext, Step

__all__ = ["INTERRUPTED", "Activity", "BuildContext", "BuildReport", "JobResult", "Step"]
