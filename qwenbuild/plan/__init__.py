"""Planning: the jobs of a campaign with their keys (`planner`), what a build would do
with each and why (`assess`)."""

from .assess import Assessment, OutputLocks, assess, assess_one
from .jobs import Job, Selection, candidate_of, candidate_path, output_path
from .planner import Plan, code_digest, design_for, job_context, plan

__all__ = ["Assessment", "Job", "OutputLocks", "Plan", "Selection", "assess", "assess_one",
           "candidate_of", "candidate_path", "code_digest", "design_for", "job_context",
           "output_path", "plan"]
