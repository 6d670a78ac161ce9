"""Background jobs: the queue interface, the in-process engine and the cleanup of old projects.

The API only talks to :class:`glimpse3d.jobs.base.JobQueue` (made by
:func:`glimpse3d.jobs.base.make_queue`); it never knows which engine runs the pipeline.
"""

from glimpse3d.jobs.base import JobQueue, ProgressCallback, make_queue, validate_job

__all__ = ["JobQueue", "ProgressCallback", "make_queue", "validate_job"]
