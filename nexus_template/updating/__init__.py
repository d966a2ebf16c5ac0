"""Taking template updates safely: one service, or every service under a folder.

Each service is updated in an isolated copy (`_isolated`), repaired where copier would silently lose
work (`_guard`), checked for conflicts, requirement clashes and answers that no longer fit, and only
then written back to its folder (or, with `plan`, only reported). See docs/updating.md.
"""

from nexus_template.updating._abort import RESTORE, AbortRefused, Undo, abort_update
from nexus_template.updating._exclusive import RepositoryBusy, exclusive
from nexus_template.updating._fleet import commit_update, find_services, update_all
from nexus_template.updating._git import changed_paths
from nexus_template.updating._report import report_json, table
from nexus_template.updating._result import UpdateResult
from nexus_template.updating._service import update_service

__all__ = [
    "RESTORE",
    "AbortRefused",
    "RepositoryBusy",
    "Undo",
    "UpdateResult",
    "abort_update",
    "changed_paths",
    "commit_update",
    "exclusive",
    "find_services",
    "report_json",
    "table",
    "update_all",
    "update_service",
]
