"""The pipeline: the steps that Celery tasks and workers call (durable write, closing,
aggregation, replay, reconciliation, Redis loss, status). Core logic over stores.
"""
