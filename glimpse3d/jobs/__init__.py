"""Background jobs: the queue interface, its two engines, job outcomes and the cleanup.

The API only talks to :class:`glimpse3d.jobs.base.JobQueue` (made by
:func:`glimpse3d.jobs.factory.make_queue`); it never knows which engine runs the pipeline.
``glimpse3d.jobs.outcomes`` records on the project row how each job ended.
"""

from glimpse3d.jobs.base import JobQueue, ProgressCallback, validate_job
from glimpse3d.jobs.factory import make_queue

__all__ = ["JobQueue", "ProgressCallback", "make_queue", "validate_job"]
