"""Housekeeping of the background job queue (procrastinate): finished jobs do not pile up in the database."""
