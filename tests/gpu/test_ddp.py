"""nnU-Net's ``-num_gpus N`` path: RWKVSSS under DistributedDataParallel (gloo, 2 CPU processes)
gives the gradients of one process on the same global batch."""

from __future__ import annotations

import pytest

from sss_nnunet.gpucheck import ddp


@pytest.mark.slow
def test_ddp_gradients_equal_single_process_on_the_global_batch():
    res = ddp.compare(world=2, per_rank=2, dims=3, backend="gloo")
    assert res["n_params"] > 50
    assert res["grad_rel_diff"] < 1e-4, res  # averaged over ranks = mean over the global batch
    assert res["rank_state_diff"] == 0.0, res  # every rank holds the same weights after 2 steps
    assert res["state_rel_diff"] < 1e-4, res


@pytest.mark.slow
def test_a_parameter_without_gradient_is_detected():
    """The check can fail: a parameter that no forward uses makes DDP's second step raise."""
    with pytest.raises(Exception, match="(?i)did not receive grad|unused|reduction"):
        ddp.ddp_run(world=2, per_rank=1, dims=2, backend="gloo", unused_parameter=True)
