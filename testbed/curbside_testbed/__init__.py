"""Fleet in a box: a real local Kubernetes control plane with simulated car nodes, and the
tooling that runs Curbside's processes against it. Ships in no image.

- ``build`` / ``prombuild``: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
  kubectl, kwok and helm (and prometheus, promtool) from pinned Go modules, cached per machine;
- ``bed``, ``components``, ``pki``, ``guard``: named, isolated test beds, their processes and
  certificates, and the refusal to touch anything else;
- ``fleet``, ``identity``: car Nodes by the thousand, and a car's certificate, kubeconfig and
  RBAC;
- ``operator``, ``audit``: the operator as a child process, and API writes counted from the
  audit log;
- ``procs``: child processes in their own process group, stopped with everything they started;
- ``serve``: PyTriton serving the workloads; ``checks``: a job's results against the known
  answers;
- ``demo``, ``demo_run``: ``make demo``.

The benchmark (``curbside_bench``) and the fleet simulator (``curbside_sim``) build on it.
"""
