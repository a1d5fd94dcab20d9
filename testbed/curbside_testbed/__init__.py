"""Fleet in a box: a real local Kubernetes control plane with simulated car nodes.

Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and helm
from pinned Go modules (``build``), then runs named, isolated test beds (``bed``).
"""
