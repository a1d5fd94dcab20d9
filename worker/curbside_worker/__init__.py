"""The Curbside worker: the container beside ``tritonserver`` in an inference pod.

The worker image runs it as ``curbside-worker``. It leases work units from the operator's
dispatcher, runs them through Triton over gRPC and commits the results (``runner``);
``dispatcher`` and ``triton`` are its two connections (``shm``: large inputs through shared
memory), ``token`` its rotating bearer token, ``metrics`` what it exports and ``cli`` its
command line. ``workloads`` holds the example workloads and ``repository/`` the Triton model
repository the pod's ``tritonserver`` loads. Only numpy, httpx and tritonclient in the worker
itself: torch and transformers load only where a model runs.
"""
