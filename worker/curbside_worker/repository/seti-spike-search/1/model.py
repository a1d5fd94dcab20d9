"""Triton Python backend for seti-spike-search.

Delegates to curbside_worker.workloads.backend: the same code PyTriton serves in the test bed.
"""

import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from curbside_worker.workloads import backend


class TritonPythonModel:
    def initialize(self, args):  # type: ignore[no-untyped-def]
        self.model = backend.Model("seti-spike-search", args, pb_utils=pb_utils)

    def execute(self, requests):  # type: ignore[no-untyped-def]
        return self.model.execute(requests)
