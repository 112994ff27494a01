"""Planning: the jobs of a campaign with their keys (`planner`), what a build would do
with each and why (`assess`)."""

from .assess import Assessment, assess, assess_one
from .jobs import Job, Selection, output_path
from .planner import Plan, code_digest, design_for, job_context, plan

__all__ = ["Assessment", "Job", "Plan", "Selection", "assess", "assess_one", "code_digest",
           "design_for", "job_context", "output_path", "plan"]
