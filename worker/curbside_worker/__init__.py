"""The Curbside worker: the container beside ``tritonserver`` in an inference pod.

It leases work units from the operator's dispatcher, runs them through Triton over gRPC and
commits the results (``runner``); ``dispatcher`` and ``triton`` are its two connections and
``cli`` its command line. Only numpy, httpx and tritonclient: no torch in the worker.
"""
