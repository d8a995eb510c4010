"""GroupedMixer and factorized prior: layouts, causality, likelihoods."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gmcodec.config import ModelConfig
from gmcodec.entropy import FactorizedPrior, GroupedMixer, GroupLayout
from gmcodec.model import GMModel

SMALL = ModelConfig(
    N=16, M=24, Nz=8, C=16, slices=(4, 8, 12), d_model=16, heads=2, depth=2, window=2
)


@pytest.mark.parametrize("spatial", [1, 4])
def test_group_split_and_merge_are_inverse(spatial):
    layout = GroupLayout((4, 8, 12), spatial)
    y = torch.randn(2, 24, 6, 10)
    groups = layout.split(y)
    assert len(groups) == layout.num_groups == 3 * spatial
    assert torch.equal(layout.merge(groups, 6, 10), y)


@pytest.mark.parametrize("spatial", [1, 4])
def test_parameters_of_a_group_depend_only_on_earlier_groups(spatial):
    torch.manual_seed(0)
    mixer = GroupedMixer(replace(SMALL, spatial_groups=spatial)).eval()
    layout = mixer.layout
    y, psi = torch.randn(1, 24, 6, 10).round(), torch.randn(1, 16, 6, 10)
    mu, sigma = mixer(y, psi)
    for g in range(layout.num_groups):
        changed = layout.split(y)
        changed[g] = changed[g] + 3.0
        mu2, _ = mixer(layout.merge(changed, 6, 10), psi)
        same = [
            torch.allclose(a, b, atol=1e-6)
            for a, b in zip(layout.split(mu), layout.split(mu2), strict=True)
        ]
        assert all(same[: g + 1]), f"group {g} leaked into groups <= {g}"
        if g + 1 < layout.num_groups:
            assert not all(same[g + 1 :]), f"group {g} is not used by any later group"


def test_meanscale_baseline_ignores_the_context():
    mixer = GroupedMixer(replace(SMALL, entropy="meanscale")).eval()
    psi = torch.randn(1, 16, 4, 4)
    a = mixer(torch.zeros(1, 24, 4, 4), psi)[0]
    b = mixer(torch.randn(1, 24, 4, 4).round(), psi)[0]
    assert torch.equal(a, b)


def test_window_attention_handles_grids_that_are_not_window_multiples():
    mixer = GroupedMixer(replace(SMALL, window=4)).eval()
    mu, sigma = mixer(torch.randn(1, 24, 10, 14).round(), torch.randn(1, 16, 10, 14))
    assert mu.shape == sigma.shape == (1, 24, 10, 14)
    assert torch.isfinite(mu).all() and (sigma > 0).all()


def test_factorized_prior_pmf_sums_to_one_and_matches_likelihood():
    prior = FactorizedPrior(3, z_range=20)
    pmf = prior.pmf_table()
    assert pmf.shape == (3, 41)
    assert abs(pmf.sum(1) - 1).max() < 1e-9
    z = torch.tensor([-2.0, 0.0, 5.0]).reshape(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    lik = prior.likelihood(z)[0, :, 0, :].double()
    expected = torch.tensor(pmf)[:, [18, 20, 25]]
    torch.testing.assert_close(lik, expected, rtol=1e-4, atol=1e-6)


def test_config_validation_rejects_bad_values():
    with pytest.raises(ValueError, match="sum to M"):
        ModelConfig(M=10, slices=(4, 4))
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=10, heads=4)
    with pytest.raises(ValueError, match="entropy"):
        ModelConfig(entropy="other")


def test_config_json_round_trip():
    assert ModelConfig.from_dict(__import__("json").loads(SMALL.to_json())) == SMALL


def test_training_pass_returns_finite_bits_for_every_quality():
    model = GMModel(SMALL)
    out = model(torch.rand(3, 3, 64, 64), torch.tensor([0.0, 3.5, 7.0]))
    assert out["x_hat"].shape == (3, 3, 64, 64)
    assert torch.isfinite(out["bits_y"]).all() and (out["bits_z"] > 0).all()
    (out["bits_y"].sum() + out["x_hat"].sum()).backward()
    assert model.log_gain.grad is not None
