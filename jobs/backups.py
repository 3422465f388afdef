"""Background backup ("Back up now" in settings): thin, records the archive it made.

Running it twice makes two archives, which retention later thins out: no harm.
"""

from __future__ import annotations

from domain.backup import create_backup
from jobs.queue import finish_job, set_progress


def backup_job(job_id: str) -> str:
    """Back up into the default folder, reporting progress in files written."""
    result = create_backup(progress=lambda done, total: set_progress(job_id, done, total))
    finish_job(job_id, str(result.path), result.path.name)
    return str(result.path)
