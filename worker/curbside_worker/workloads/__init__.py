"""The example workloads and how Triton serves them.

- ``seti`` / ``seti_detector``: seti-spike-search (generator with ground truth / torch detector);
- ``minilm``: minilm-embed (sentence generator, all-MiniLM-L6-v2 embeddings);
- ``catalog``: the worker's side of each model (lease input to tensors, outputs to result);
- ``specs``: each model's tensors and the functions behind them, shared by both ways of
  serving them;
- ``backend``: the Triton Python-backend glue behind ``repository/*/1/model.py`` (real cars).

PyTriton serving the same functions in the test bed, the demo and the benchmark is
``curbside_testbed.serve``; checking a job's results against the known answers is
``curbside_testbed.checks``. torch and transformers load only where a model runs
(``seti_detector``, ``minilm.MiniLM``, ``specs``' infer functions), never in the worker.
"""
