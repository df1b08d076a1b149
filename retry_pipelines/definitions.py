"""Entry point of the ``retry_pipelines`` code location: everything under ``defs/``, autoloaded.

``load_from_defs_folder`` imports every module under ``defs/``; the helpers those modules share
live in ``retry_pipelines.lib``, outside it."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
