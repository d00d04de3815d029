"""The floor under the profiler: what ``python -c "import distributed"`` does."""

import distributed  # noqa: F401
