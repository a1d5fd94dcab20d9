"""``curbside bench``: Curbside against plain Kubernetes, side by side on one test bed.

Why this exists: a fleet operator picks Curbside over a Deployment with node affinity and
Kubernetes' own eviction only if the numbers say so. Each scenario is one module
(``departure``, ``mass``, ``placement``, ``footprint``, ``churn``, ``inference``) that
measures Curbside and its Kubernetes baseline in the same run, on the same test bed, and
returns figures and table rows; ``stats`` and ``results`` are the pure parts (percentiles,
the results' schema, the markdown table), ``plots`` draws them, ``cli`` runs it all.

Like the rest of the test bed's tooling it never imports the operator or the agent: the
operator runs as its own process, cars are scripted over the API, the inference comparison
runs ``bench/triton_vs_torch.py`` as a child process.
"""
