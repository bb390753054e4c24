"""The golden integer training loop (pruning.integer_training)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pruning import golden
from pruning.fixedpoint import from_fixed
from pruning.integer_training import (LAYERS, PARAMETERS, IntegerCNNTrainer, TrainingMismatch,
                                      TrainingSettings, _max_pool, _max_pool_backward,
                                      first_difference, golden_backend, narrow, train_lockstep)

SMALL = TrainingSettings(channels=(2, 4, 4), batch=4)


@pytest.mark.parametrize("field,value,error", [
    ("channels", (8, 16), TypeError), ("channels", (8, 0, 16), ValueError),
    ("batch", 0, ValueError), ("batch", 2.0, TypeError), ("p", 1.0, ValueError),
    ("lr_shift", -1, ValueError), ("momentum_shift", 17, ValueError),
    ("data_width", 64, ValueError), ("weight_frac_bits", 40, ValueError),
    ("seed", -1, ValueError),
])
def test_settings_are_checked(field, value, error):
    with pytest.raises(error, match=field if field != "p" else "p must"):
        TrainingSettings(**{field: value})


def test_settings_rates():
    settings = TrainingSettings(lr_shift=3, momentum_shift=1)
    assert settings.learning_rate == 0.125 and settings.momentum == 0.5
    assert TrainingSettings(momentum_shift=0).momentum == 0.0


def test_narrow_keeps_what_fits_and_rounds_half_to_even():
    values = torch.tensor([3, -5, 7])
    assert narrow(values, 4, 16)[0].tolist() == [3, -5, 7]     # fits: unchanged scale
    assert narrow(values, 4, 16)[1] == 4
    # 17 bits of magnitude into 8 bits: shift by 10 (65535 -> 63.99 -> 64 > 127? no)
    big = torch.tensor([1 << 16, (1 << 16) + (1 << 9), -(3 << 9), 5 << 9])
    result, frac = narrow(big, 20, 8)
    assert frac == 10 and result.abs().max() <= 127
    # 2**16 / 2**10 = 64; (2**16 + 2**9) / 2**10 = 64.5 -> 64 (even); -1.5 -> -2; 2.5 -> 2
    assert result.tolist() == [64, 64, -2, 2]
    assert narrow(torch.zeros(3, dtype=torch.int64), 7, 16)[1] == 7


def test_max_pool_matches_torch_and_routes_to_the_first_maximum():
    rng = np.random.default_rng(1)
    values = torch.from_numpy(rng.integers(-3, 4, size=(2, 3, 4, 6)))
    pooled, argmax = _max_pool(values)
    expected = F.max_pool2d(values.double(), 2)
    assert torch.equal(pooled.double(), expected)
    grad = torch.from_numpy(rng.integers(-9, 10, size=pooled.shape))
    routed = _max_pool_backward(grad, argmax)
    assert routed.shape == values.shape
    windows = values.reshape(2, 3, 2, 2, 3, 2).permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 2, 3, 4)
    routed_windows = routed.reshape(2, 3, 2, 2, 3, 2).permute(0, 1, 2, 4, 3, 5) \
        .reshape(2, 3, 2, 3, 4)
    for index in np.ndindex(2, 3, 2, 3):
        first = int(torch.nonzero(windows[index] == windows[index].max())[0])
        wanted = torch.zeros(4, dtype=torch.int64)
        wanted[first] = grad[index]
        assert torch.equal(routed_windows[index], wanted)


def test_runs_are_deterministic_and_seeded():
    first, second = IntegerCNNTrainer(SMALL), IntegerCNNTrainer(SMALL)
    other = IntegerCNNTrainer(TrainingSettings(channels=(2, 4, 4), batch=4, seed=1))
    for _ in range(3):
        losses = first.step().loss, second.step().loss
        assert losses[0] == losses[1]
        other.step()
    assert first_difference(first.state, second.state) is None
    assert first_difference(first.state, other.state) is not None


def test_two_workers_give_the_same_run():
    with IntegerCNNTrainer(SMALL, workers=2) as parallel:
        serial = IntegerCNNTrainer(SMALL)
        for _ in range(2):
            record = parallel.step()
            serial.step()
        assert set(record.convolutions) == {(layer, phase) for layer in LAYERS
                                            for phase in ("ff", "wg", "bp")} - {("conv1", "bp")}
    assert first_difference(parallel.state, serial.state) is None


def test_the_golden_loop_learns_the_digits():
    """The default run of ``make train-rtl``, golden only: 50 steps must teach it."""
    trainer = IntegerCNNTrainer(TrainingSettings())
    before = trainer.accuracy()
    losses = [trainer.step().loss for _ in range(50)]
    after = trainer.accuracy()
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert before < 0.2 and after > 0.6
    for name, values in trainer.state.weights.items():
        assert values.abs().max() < (1 << 31) - 1, name


def test_integer_gradients_follow_autograd():
    """With p = 0, no momentum and learning rate 1, one step moves each weight by its
    gradient; the integer pipeline (16-bit operands, requantized activations)
    must give PyTorch's float gradients to within the quantization error."""
    settings = TrainingSettings(channels=(4, 8, 8), batch=8, p=0.0, lr_shift=0,
                                momentum_shift=0, seed=3)
    trainer = IntegerCNNTrainer(settings)
    before = {name: value.clone() for name, value in trainer.state.weights.items()}
    weights = {name: from_fixed(*narrow(value, settings.weight_frac_bits, 16))
               .float().requires_grad_() for name, value in before.items()}
    batch = torch.randint(len(trainer.train_labels), (settings.batch,),
                          generator=torch.Generator().manual_seed(settings.seed + 1))
    trainer.step()
    x = from_fixed(trainer.train_images[batch], trainer.input_format.frac_bits).float()
    x = F.relu(F.conv2d(x, weights["conv1"], padding=1))
    x = F.max_pool2d(F.relu(F.conv2d(x, weights["conv2"], padding=1)), 2)
    x = F.max_pool2d(F.relu(F.conv2d(x, weights["conv3"], padding=1)), 2)
    loss = F.cross_entropy(x.flatten(1) @ weights["fc"].T, trainer.train_labels[batch])
    loss.backward()
    for name in PARAMETERS:
        moved = from_fixed(before[name] - trainer.state.weights[name], settings.weight_frac_bits)
        reference = weights[name].grad.double()
        error = float((moved - reference).norm() / reference.norm())
        assert error < 0.02, (name, error)


def _corrupting_backend(step, layer, phase):
    def backend(phase_, *, label, **operands):
        result, report = golden_backend(phase_, label=label, **operands)
        if label == f"step {step} {layer} {phase}":
            # A difference the weights can show: as large as the result's
            # largest value (a difference below the master weights'
            # resolution rounds away; the RTL back end compares every
            # result bit for bit itself).
            result = result.copy()
            result.flat[int(np.argmax(np.abs(result)))] += int(np.abs(result).max()) + 1
        return result, report
    return backend


def test_lockstep_passes_on_the_golden_backend():
    trainer, records = train_lockstep(SMALL, 2, golden_backend)
    assert [r.step for r in records] == [1, 2] and trainer.state.steps == 2


@pytest.mark.parametrize("phase", ["wg", "bp", "ff"])
def test_lockstep_stops_at_the_first_difference(phase):
    seen = []
    with pytest.raises(TrainingMismatch, match="after step 2 the backend's"):
        train_lockstep(SMALL, 4, _corrupting_backend(2, "conv2", phase),
                       on_step=lambda record: seen.append(record.step))
    assert seen == [1]


def test_a_backend_result_of_the_wrong_shape_is_refused():
    def backend(phase, *, label, **operands):
        result, report = golden_backend(phase, label=label, **operands)
        return result[:, :1], report
    with pytest.raises(ValueError, match=r"step 1 conv1 ff: the backend returned int64 "
                                         r"\(4, 1, 8, 8\), not integers of shape \(4, 2, 8, 8\)"):
        IntegerCNNTrainer(SMALL, backend=backend).step()


def test_the_trainer_checks_its_arguments():
    with pytest.raises(TypeError, match="settings"):
        IntegerCNNTrainer({"batch": 4})
    with pytest.raises(TypeError, match="backend"):
        IntegerCNNTrainer(SMALL, backend="rtl")
    with pytest.raises(ValueError, match="workers"):
        IntegerCNNTrainer(SMALL, workers=3)
    with pytest.raises(ValueError, match="steps"):
        train_lockstep(SMALL, 0, golden_backend)


def test_golden_backend_is_the_reference_convolution():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=(2, 3, 5, 5))
    w = rng.integers(-5, 6, size=(4, 3, 3, 3))
    result, report = golden_backend("ff", label="t", x=x, w=w, stride=1, pad=1, kernel=(3, 3))
    assert report == {} and np.array_equal(result, golden.conv_ff(x, w, 1, 1))
