"""Imported once by the local executor's fork server, before it forks workers.

Triggers pyarrow's lazy pandas import (the first ``pa.array`` call imports pandas, about 0.3 s) so that no
worker pays for it again. The caller names its own modules to preload too (the runner passes
``curate.runner``: pyarrow, pydantic, the stage base), so executors know nothing of the runner.
"""

import pyarrow as pa

pa.array(["warm"], pa.string())
