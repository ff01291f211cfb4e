"""The CNNT network: shapes, mixing over frames, determinism and config validation."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from livedenoise.model import CNNTConfig, ModelConfigError, build_model, preset


@pytest.fixture(scope="module", params=["small", "fast"])
def two_channel_model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return build_model(preset(request.param, channels=2), seed=0).eval()


def test_output_shape_equals_input_shape_at_odd_sizes(two_channel_model: torch.nn.Module) -> None:
    x = torch.rand(1, 3, 2, 300, 517)
    with torch.no_grad():
        y = two_channel_model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("shape", [(2, 1, 2, 1, 1), (1, 1, 2, 5, 7), (1, 20, 2, 9, 16)])
def test_any_frame_count_and_tiny_frames(two_channel_model: torch.nn.Module, shape: tuple) -> None:
    with torch.no_grad():
        assert two_channel_model(torch.rand(*shape)).shape == shape


def test_attention_mixes_frames(two_channel_model: torch.nn.Module) -> None:
    x = torch.rand(1, 4, 2, 32, 40)
    changed = x.clone()
    changed[:, 0] = torch.rand_like(changed[:, 0])
    with torch.no_grad():
        y, y_changed = two_channel_model(x), two_channel_model(changed)
    # Frames 1..3 are identical inputs; only attention over T can carry frame 0's change to them.
    assert (y[:, 1:] - y_changed[:, 1:]).abs().max() > 1e-4


def test_frames_do_not_leak_across_batch(two_channel_model: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 2, 24, 24)
    changed = x.clone()
    changed[0] = torch.rand_like(changed[0])
    with torch.no_grad():
        assert torch.equal(two_channel_model(x)[1], two_channel_model(changed)[1])


def test_eval_mode_is_deterministic() -> None:
    model = build_model(preset("small", dropout=0.2), seed=3).eval()
    x = torch.rand(1, 2, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_same_seed_same_weights_and_presets_differ_in_size() -> None:
    a, b = build_model(preset("small"), seed=7), build_model(preset("small"), seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    n_small = sum(p.numel() for p in a.parameters())
    n_paper = sum(p.numel() for p in build_model(preset("paper")).parameters())
    assert n_paper > 20 * n_small


def test_invalid_config_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="multiple of heads"):
        CNNTConfig(block_channels=(30, 64, 128), heads=8)
    with pytest.raises(
        ModelConfigError, match="unknown preset 'huge'; choose one of paper, small, fast"
    ):
        preset("huge")
    with pytest.raises(ModelConfigError, match=r"cells_per_block: .* greater than or equal to 1"):
        preset("small", cells_per_block=0)
