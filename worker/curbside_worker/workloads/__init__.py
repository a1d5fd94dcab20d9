"""The example workloads and how Triton serves them.

- ``seti`` / ``seti_detector``: seti-spike-search (generator with ground truth / torch detector);
- ``minilm``: minilm-embed (sentence generator, all-MiniLM-L6-v2 embeddings);
- ``workloads``: the worker's side of each model (lease input to tensors, outputs to result);
- ``serve``: PyTriton serving both (test bed, demo, benchmark);
- ``repository/``: the Triton model repository for real cars (Python backend).

torch and transformers load only where a model runs (``seti_detector``, ``minilm.MiniLM``,
``serve``), never in the worker.
"""
