"""Imported once by the local executor's fork server, before it forks workers.

Imports the runner (pyarrow, pydantic, the stage base) and triggers pyarrow's lazy pandas import (the
first ``pa.array`` call imports pandas, about 0.3 s) so that no worker pays for them again.
"""

import pyarrow as pa

import curate.runner  # noqa: F401

pa.array(["warm"], pa.string())
