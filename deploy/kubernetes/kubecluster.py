"""Start the DaskCluster of daskcluster.yaml from Python and run a pipeline on it.

Needs the dask-kubernetes operator on the Kubernetes cluster, ``pip install dask-kubernetes``
here, a kubeconfig, and the openautoglm image where the nodes can pull it::

    python deploy/kubernetes/kubecluster.py

``KubeCluster`` creates the ``DaskCluster`` resource from the same manifest as ``kubectl apply``
would, port-forwards the scheduler, and deletes the resource when the ``with`` block ends.
"""
from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).with_name("daskcluster.yaml")


def cluster_spec(n_workers: int = 2) -> dict:
    """The DaskCluster resource of daskcluster.yaml, with ``n_workers`` workers."""
    spec = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    spec["spec"]["worker"]["replicas"] = n_workers
    return spec


def main() -> None:
    from dask_kubernetes.operator import KubeCluster

    import openautoglm as oag
    from openautoglm import demo

    with KubeCluster(custom_cluster_spec=cluster_spec()) as cluster:
        cluster.wait_for_workers(2)
        with oag.Engine(cluster.scheduler_address) as engine:
            result = engine.run(demo.build_pipeline(), policy="heft",
                                inputs={"raw_text": demo.DEMO_TEXT})
            print(result.makespan, result.to_dataframe()[["task", "worker", "start"]])


if __name__ == "__main__":
    main()
