"""Workers: the Celery app, its tasks, and everything a worker process holds to run a job.

Importing this package is cheap and reads no credential: producers import ``workers.jobstore``
and ``workers.app.create_app`` without loading the provider adapters.
"""
