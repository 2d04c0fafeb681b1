"""The seeds' training-side problems: normalisation, pooling and backpropagation.

Seed 000, problem 2(a): the normalisation zoo on a random H x W x C x N = 50 x 50 x 20 x 20
    tensor (batch, layer, instance and group norm) against torch's modules and eq. (2).
Seed 001, problem 1: batch norm's output distribution (a), (b) and its closed-form
    back-propagation (5b) as an independent NumPy implementation; problem 3(e)/(f): the
    small CNNs (CONV3-10/POOL2/FC-3 and CONV-ReLU-CONV-ReLU-GAP-FC with circular
    padding), forward and backward against torch autograd, and SGD steps.
Seed 003, Q4/Q5: the weight gradient as unfold(X)^T unfold(dL/dY) and the input gradient
    as fold(W'^T dL/dY); Q11/Q14: global pools of any resolution.
Seed 004, problems 2 and 4: average pooling is a stride-k depthwise convolution with
    weights 1/k^2; max pooling commutes with every nondecreasing activation (hypothesis).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CPU_BACKENDS, assert_close
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastcorr


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """torch's references are tiny: its thread pool only costs time (a lot on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Backends with pooling, normalisation and the convolution gradients, plus 'auto'.
NET_BACKENDS = [b for b in CPU_BACKENDS if b != "scipy"] + ["auto"]
FAST_NET_BACKENDS = [b for b in NET_BACKENDS if b != "naive"]


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _t(x, grad=False):
    tensor = torch.from_numpy(np.array(x, dtype=np.float64))
    return tensor.requires_grad_(True) if grad else tensor


# --------------------------------------------------------------------------------------
# seed 000, problem 2(a): the normalisation zoo


def _zoo_by_definition(x, eps):
    """Eq. (2) of the seed on each method's slices (Fig. 2), in float64."""
    x = x.astype(np.float64)

    def standardise(axes):
        mean = x.mean(axis=axes, keepdims=True)
        return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)

    return {"batch": standardise((0, 2, 3)), "layer": standardise((1, 2, 3)),
            "instance": standardise((2, 3)),
            "group": ((x.reshape(x.shape[0], 5, -1) - x.reshape(x.shape[0], 5, -1)
                       .mean(axis=2, keepdims=True))
                      / np.sqrt(x.reshape(x.shape[0], 5, -1).var(axis=2, keepdims=True) + eps)
                      ).reshape(x.shape)}


def _zoo_by_torch(x, eps):
    """torch's modules with gamma = 1, beta = 0 (their initial values), in float64."""
    xt = _t(x)
    channels = x.shape[1]
    # torch refuses eps = 0 for batch norm in training; the smallest positive float64 is
    # the same thing for variances of order 1 (var + tiny == var)
    batch = torch.nn.BatchNorm2d(channels, eps=eps or float(np.finfo(np.float64).tiny),
                                 dtype=torch.float64)  # training mode
    layer = torch.nn.LayerNorm(x.shape[1:], eps=eps, dtype=torch.float64)
    instance = torch.nn.InstanceNorm2d(channels, eps=eps, dtype=torch.float64)
    group = torch.nn.GroupNorm(5, channels, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        out = {"batch": batch(xt).numpy(), "layer": layer(xt).numpy(),
               "instance": instance(xt).numpy(), "group": group(xt).numpy()}
    return out, (batch.running_mean.numpy(), batch.running_var.numpy())


def _zoo_by_fastcorr(x, eps, backend, running_mean, running_var):
    channels = x.shape[1]
    ones, zeros = np.ones(channels, x.dtype), np.zeros(channels, x.dtype)
    return {
        "batch": fastcorr.batch_norm(x, running_mean, running_var, ones, zeros, training=True,
                                     eps=eps, backend=backend),
        "layer": fastcorr.layer_norm(x, x.shape[1:], np.ones(x.shape[1:], x.dtype),
                                     np.zeros(x.shape[1:], x.dtype), eps, backend=backend),
        "instance": fastcorr.instance_norm(x, None, None, ones, zeros, eps=eps, backend=backend),
        "group": fastcorr.group_norm(x, 5, ones, zeros, eps, backend=backend),
    }


def _check_zoo(hwcn, eps, backend):
    x = hwcn.transpose(3, 2, 0, 1)      # H x W x C x N -> N x C x H x W (a view)
    saved = hwcn.copy()
    running_mean = np.zeros(x.shape[1], x.dtype)
    running_var = np.ones(x.shape[1], x.dtype)
    got = _zoo_by_fastcorr(x, eps, backend, running_mean, running_var)
    ref, (ref_mean, ref_var) = _zoo_by_torch(x, eps)
    by_definition = _zoo_by_definition(x, eps)
    for name in ("batch", "layer", "instance", "group"):
        assert_close(got[name], ref[name], dtype=x.dtype, context=f"{name} norm vs torch")
        assert_close(got[name], by_definition[name], dtype=x.dtype,
                     context=f"{name} norm vs eq. (2)")
        # standardised slices: mean 0, variance 1 (eps = 0) or just below
        assert abs(float(got[name].astype(np.float64).mean())) < 1e-4
    assert_close(running_mean, ref_mean, dtype=x.dtype, context="running_mean")
    assert_close(running_var, ref_var, dtype=x.dtype, context="running_var")
    np.testing.assert_array_equal(hwcn, saved)


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("eps", [1e-5, 0.0])
def test_seed_000_p2a_normalisation_zoo(eps, backend):
    """The seed's size, H x W x C x N = 50 x 50 x 20 x 20, in float32."""
    hwcn = np.random.default_rng(2022).standard_normal((50, 50, 20, 20)).astype(np.float32)
    _check_zoo(hwcn, eps, backend)


@pytest.mark.parametrize("backend", NET_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=_ids)
@pytest.mark.parametrize("eps", [1e-5, 0.0])
def test_seed_000_p2a_normalisation_zoo_small(eps, dtype, backend):
    """The same problem at H x W x C x N = 4 x 5 x 10 x 2, small enough for plain loops."""
    hwcn = np.random.default_rng(4).standard_normal((4, 5, 10, 2)).astype(dtype)
    _check_zoo(hwcn, eps, backend)


# --------------------------------------------------------------------------------------
# seed 001, problem 1: batch norm


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_seed_001_p1a_shift_and_scale(backend):
    """N(1.5, 0.16) through batch norm with beta = 3, gamma = 1: mean 3, std ~1."""
    x = (1.5 + 0.4 * np.random.default_rng(1).standard_normal((4000, 1)))
    y = fastcorr.batch_norm(x, weight=np.ones(1), bias=np.full(1, 3.0), training=True,
                            eps=1e-5, backend=backend)
    var = x.var()
    assert abs(y.mean() - 3.0) < 1e-12
    assert abs(y.var() - var / (var + 1e-5)) < 1e-12


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_seed_001_p1b_two_dimensional_gaussian(backend):
    """Per-feature standardisation: each coordinate gets mean 0 and variance 1, while the
    correlation (the tilt of the contours) is kept."""
    rng = np.random.default_rng(11)
    cov = np.array([[4.0, 1.2], [1.2, 0.5]])
    x = rng.multivariate_normal([2.0, -1.0], cov, size=3000)
    y = fastcorr.batch_norm(x, training=True, eps=0.0, backend=backend)
    assert_close(y.mean(axis=0), np.zeros(2), rtol=1e-12)
    assert_close(y.var(axis=0), np.ones(2), rtol=1e-12)
    assert_close(np.corrcoef(y.T), np.corrcoef(x.T), rtol=1e-12)


def batch_norm_backward_closed_form(dy, x, gamma, eps):
    """Seed 001 5(b): dL/dX of training-time batch norm for x of shape (m, D).

    With xhat = (x - mu) / sqrt(var + eps) over the m rows,
    dx = gamma / (m sqrt(var + eps)) * (m dy - sum(dy) - xhat sum(dy xhat)).
    (The derivation in the seed keeps only the diagonal of the Jacobian and so misses the
    two sums; this is the full gradient.)
    """
    m = x.shape[0]
    mu = x.mean(axis=0)
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    xhat = (x - mu) * inv_std
    dx = gamma * inv_std / m * (m * dy - dy.sum(axis=0) - xhat * (dy * xhat).sum(axis=0))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


@pytest.mark.parametrize("backend", NET_BACKENDS)
@pytest.mark.parametrize("shape", [(16, 3), (1, 3, 4, 5), (3, 2, 4, 4)], ids=_ids)
def test_seed_001_p5b_batch_norm_backward_closed_form(shape, backend):
    """batch_norm_backward against the closed form; spatial batch norm via (N*H*W, C)."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.7, 2.0, shape)
    dy = rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 1.5, shape[1])
    beta = rng.standard_normal(shape[1])
    eps = 1e-3
    got = fastcorr.batch_norm_backward(dy, x, weight=gamma, bias=beta, training=True, eps=eps,
                                       backend=backend)

    def rows(a):  # (N, C, *spatial) -> (N * spatial, C)
        return np.moveaxis(a, 1, -1).reshape(-1, shape[1])

    dx, dgamma, dbeta = batch_norm_backward_closed_form(rows(dy), rows(x), gamma, eps)
    dx = np.moveaxis(dx.reshape((shape[0],) + shape[2:] + (shape[1],)), -1, 1)
    terms = x.size // shape[1]
    assert_close(got[0], dx, terms=terms)
    assert_close(got[1], dgamma, terms=terms)
    assert_close(got[2], dbeta, terms=terms)
    # the seed's diagonal-only derivation is not the gradient: the sums matter
    diagonal = gamma / np.sqrt(rows(x).var(axis=0) + eps) * rows(dy)
    assert np.abs(rows(got[0]) - diagonal).max() > 1e-3


# --------------------------------------------------------------------------------------
# seed 001, problem 3(e)/(f): small CNNs, forward and backward against torch autograd


class SeedNetE:
    """CONV3-10 -> ReLU -> POOL2 -> CONV3-10 -> ReLU -> POOL2 -> FLATTEN -> FC-3 (3(e))."""

    def __init__(self, rng, channels=10, size=28):
        self.params = {
            "w1": rng.normal(0, 0.3, (channels, 1, 3, 3)), "b1": rng.normal(0, 0.1, channels),
            "w2": rng.normal(0, 0.1, (channels, channels, 3, 3)),
            "b2": rng.normal(0, 0.1, channels),
            "fc_w": rng.normal(0, 0.1, (3, channels * (size // 4) ** 2)),
            "fc_b": rng.normal(0, 0.1, 3),
        }

    def loss_and_grads(self, x, target, backend):
        p = self.params
        z1 = fastcorr.conv2d(x, p["w1"], p["b1"], padding=1, backend=backend)
        a1 = np.maximum(z1, 0)
        m1 = fastcorr.max_pool2d(a1, 2, backend=backend)
        z2 = fastcorr.conv2d(m1, p["w2"], p["b2"], padding=1, backend=backend)
        a2 = np.maximum(z2, 0)
        m2 = fastcorr.max_pool2d(a2, 2, backend=backend)
        flat = m2.reshape(m2.shape[0], -1)
        logits = flat @ p["fc_w"].T + p["fc_b"]
        loss = 0.5 * np.sum((logits - target) ** 2)
        # backward
        d_logits = logits - target
        grads = {"fc_w": d_logits.T @ flat, "fc_b": d_logits.sum(axis=0)}
        d_m2 = (d_logits @ p["fc_w"]).reshape(m2.shape)
        d_z2 = fastcorr.max_pool2d_backward(d_m2, a2, 2, backend=backend) * (z2 > 0)
        d_m1, grads["w2"], grads["b2"] = fastcorr.conv2d_backward(d_z2, m1, p["w2"], padding=1,
                                                                  backend=backend)
        d_z1 = fastcorr.max_pool2d_backward(d_m1, a1, 2, backend=backend) * (z1 > 0)
        d_x, grads["w1"], grads["b1"] = fastcorr.conv2d_backward(d_z1, x, p["w1"], padding=1,
                                                                 backend=backend)
        return loss, grads, d_x, m2.shape

    def torch_loss(self, xt, target, params):
        a1 = F.max_pool2d(F.relu(F.conv2d(xt, params["w1"], params["b1"], padding=1)), 2)
        a2 = F.max_pool2d(F.relu(F.conv2d(a1, params["w2"], params["b2"], padding=1)), 2)
        logits = a2.flatten(1) @ params["fc_w"].T + params["fc_b"]
        return 0.5 * ((logits - _t(target)) ** 2).sum()


class SeedNetF:
    """CONV2-3 -> ReLU -> CONV2-3 -> ReLU -> GAP -> FC-3, circular padding 1 (3(f))."""

    def __init__(self, rng, kernel=2):
        self.kernel = kernel
        self.params = {
            "w1": rng.normal(0, 0.5, (3, 1, kernel, kernel)), "b1": rng.normal(0, 0.1, 3),
            "w2": rng.normal(0, 0.5, (3, 3, kernel, kernel)), "b2": rng.normal(0, 0.1, 3),
            "fc_w": rng.normal(0, 0.5, (3, 3)), "fc_b": rng.normal(0, 0.1, 3),
        }

    def features(self, x, backend):
        p = self.params
        conv = dict(padding=1, padding_mode="circular", backend=backend)
        a1 = np.maximum(fastcorr.conv2d(x, p["w1"], p["b1"], **conv), 0)
        a2 = np.maximum(fastcorr.conv2d(a1, p["w2"], p["b2"], **conv), 0)
        return fastcorr.global_avg_pool2d(a2, backend=backend)

    def loss_and_grads(self, x, target, backend):
        p = self.params
        conv = dict(padding=1, padding_mode="circular", backend=backend)
        z1 = fastcorr.conv2d(x, p["w1"], p["b1"], **conv)
        a1 = np.maximum(z1, 0)
        z2 = fastcorr.conv2d(a1, p["w2"], p["b2"], **conv)
        a2 = np.maximum(z2, 0)
        g = fastcorr.global_avg_pool2d(a2, backend=backend)
        logits = g @ p["fc_w"].T + p["fc_b"]
        loss = 0.5 * np.sum((logits - target) ** 2)
        d_logits = logits - target
        grads = {"fc_w": d_logits.T @ g, "fc_b": d_logits.sum(axis=0)}
        d_g = d_logits @ p["fc_w"]
        # GAP's gradient is an average pool's over the whole plane
        d_a2 = fastcorr.avg_pool2d_backward(d_g[:, :, None, None], a2, a2.shape[2:],
                                            backend=backend)
        d_a1, grads["w2"], grads["b2"] = fastcorr.conv2d_backward(d_a2 * (z2 > 0), a1, p["w2"],
                                                                  **conv)
        d_x, grads["w1"], grads["b1"] = fastcorr.conv2d_backward(d_a1 * (z1 > 0), x, p["w1"],
                                                                 **conv)
        return loss, grads, d_x, g.shape

    def torch_loss(self, xt, target, params):
        def conv(inp, w, b):
            return F.conv2d(F.pad(inp, (1, 1, 1, 1), mode="circular"), w, b)

        a2 = F.relu(conv(F.relu(conv(xt, params["w1"], params["b1"])), params["w2"], params["b2"]))
        logits = a2.mean((2, 3)) @ params["fc_w"].T + params["fc_b"]
        return 0.5 * ((logits - _t(target)) ** 2).sum()


def _check_network(net, x, target, backend, steps=3, lr=0.05):
    """Gradients of every parameter and of x vs torch autograd, then SGD steps in lockstep."""
    params_t = {k: _t(v, True) for k, v in net.params.items()}
    optimizer = torch.optim.SGD(list(params_t.values()), lr=lr)
    for step in range(steps):
        xt = _t(x, True)
        optimizer.zero_grad()
        loss_t = net.torch_loss(xt, target, params_t)
        loss_t.backward()
        loss, grads, d_x, _ = net.loss_and_grads(x, target, backend)
        context = f"{type(net).__name__} step {step}"
        assert_close(np.array(loss), loss_t.detach().numpy(), rtol=1e-10, context=context)
        assert_close(d_x, xt.grad.numpy(), rtol=1e-10, context=f"{context} dL/dx")
        for name, grad in grads.items():
            assert_close(grad, params_t[name].grad.numpy(), rtol=1e-10,
                         context=f"{context} dL/d{name}")
        optimizer.step()
        for name, grad in grads.items():  # the same SGD step on our side
            net.params[name] = net.params[name] - lr * grad
        for name, value in net.params.items():
            assert_close(value, params_t[name].detach().numpy(), rtol=1e-10,
                         context=f"{context} {name} after the step")


@pytest.mark.parametrize("backend", FAST_NET_BACKENDS)
def test_seed_001_p3e_cnn_backprop_and_sgd(backend):
    """The 3(e) network on a 28 x 28 x 1 input: activations 28-14-14-7-490-3."""
    rng = np.random.default_rng(3)
    net = SeedNetE(rng)
    x = rng.standard_normal((2, 1, 28, 28))
    *_, pooled_shape = net.loss_and_grads(x, np.zeros((2, 3)), backend)
    assert pooled_shape == (2, 10, 7, 7)
    _check_network(net, x, rng.standard_normal((2, 3)), backend, steps=2)


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_seed_001_p3e_cnn_backprop_small(backend):
    """The same network at 8 x 8 with 3 channels, for every backend (plain loops too)."""
    rng = np.random.default_rng(4)
    net = SeedNetE(rng, channels=3, size=8)
    _check_network(net, rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((2, 3)), backend,
                   steps=2)


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_seed_001_p3f_circular_cnn_backprop_and_sgd(backend):
    rng = np.random.default_rng(6)
    net = SeedNetF(rng)
    x = np.zeros((2, 1, 8, 8))
    x[0, 0, 1, :] = 1.0            # x1: a horizontal edge
    x[1, 0, :, 1] = 1.0            # x2: a vertical edge
    x += 0.1 * rng.standard_normal(x.shape)
    *_, features_shape = net.loss_and_grads(x, np.zeros((2, 3)), backend)
    assert features_shape == (2, 3)
    _check_network(net, x, rng.standard_normal((2, 3)), backend)


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_seed_001_p3f_circular_padding_makes_gap_shift_invariant(backend):
    """x3 (x2 shifted) gives x2's features, x4 (x1 shifted) x1's.

    Exact with an odd kernel: with the seed's 2 x 2 kernel and padding 1 each layer's
    output is 9 x 9, one wrapped row and column more than the torus, so the invariance is
    only approximate there.
    """
    net = SeedNetF(np.random.default_rng(8), kernel=3)
    edges = np.zeros((4, 1, 8, 8))
    edges[0, 0, 1, :] = 1.0        # x1
    edges[1, 0, :, 1] = 1.0        # x2
    edges[2, 0, :, 6] = 1.0        # x3
    edges[3, 0, 5, :] = 1.0        # x4
    g = net.features(edges, backend)
    assert_close(g[2], g[1], rtol=1e-12)
    assert_close(g[3], g[0], rtol=1e-12)
    noise = np.random.default_rng(9).standard_normal((1, 1, 8, 8))
    shifted = np.roll(noise, (3, -2), axis=(2, 3))
    assert_close(net.features(shifted, backend), net.features(noise, backend), rtol=1e-12)


# --------------------------------------------------------------------------------------
# seed 003: the gradients through unfold / fold, and global pools


def _unfold(x, kernel, stride, padding, dilation):
    return F.unfold(_t(x), kernel, dilation, padding, stride).numpy()   # (N, C*kh*kw, L)


@pytest.mark.parametrize("backend", NET_BACKENDS)
@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), ((1, 2), (2, 1), (2, 1), 1), (1, 1, 1, 3), (2, 0, 2, 3)],
    ids=_ids)
def test_seed_003_q4_q5_gradients_through_unfold(stride, padding, dilation, groups, backend):
    """Q4: W-grad = (unfold(X) @ dY.reshape(F, L)^T)^T reshaped, per group and summed over
    the batch; Q5: X-grad = fold(W'^T dY) (fold adds the overlaps and drops the padding)."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 6, 7, 8))
    filters, kernel = 6, (3, 2)
    weight = rng.standard_normal((filters, 6 // groups) + kernel)
    out = fastcorr.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation,
                          groups=groups, backend="numpy")
    dy = rng.standard_normal(out.shape)
    grad_input, grad_weight, _ = fastcorr.conv2d_backward(dy, x, weight, stride, padding,
                                                          dilation, groups, backend=backend)
    per_group_in, per_group_out = 6 // groups, filters // groups
    expected_w = np.empty_like(weight)
    expected_x = np.zeros_like(x)
    for g in range(groups):
        channels = slice(g * per_group_in, (g + 1) * per_group_in)
        outs = slice(g * per_group_out, (g + 1) * per_group_out)
        cols = _unfold(x[:, channels], kernel, stride, padding, dilation)      # (N, Ck, L)
        delta = dy[:, outs].reshape(dy.shape[0], per_group_out, -1)            # (N, F, L)
        expected_w[outs] = np.einsum("nfl,nkl->fk", delta, cols).reshape(
            (per_group_out, per_group_in) + kernel)
        w_cols = weight[outs].reshape(per_group_out, -1)                       # (F, Ck)
        expected_x[:, channels] = F.fold(_t(np.einsum("fk,nfl->nkl", w_cols, delta)),
                                         x.shape[2:], kernel, dilation, padding,
                                         stride).numpy()
    assert_close(grad_weight, expected_w, terms=2 * dy[0, 0].size)
    assert_close(grad_input, expected_x, terms=filters * 6)


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_seed_003_q4_worked_example(backend):
    """Eq. (1.9)-(1.12): M-grad[a, b] = sum_ij delta_ij A_{i+a, j+b} for a 3x3 A, 2x2 M."""
    rng = np.random.default_rng(14)
    A = rng.standard_normal((3, 3))
    delta = rng.standard_normal((2, 2))
    _, grad_m, grad_b = fastcorr.conv2d_backward(delta[None, None], A[None, None],
                                                 np.zeros((1, 1, 2, 2)), backend=backend)
    expected = np.array([[np.sum(delta * A[a:a + 2, b:b + 2]) for b in range(2)]
                         for a in range(2)])
    assert_close(grad_m[0, 0], expected, terms=4)
    assert_close(grad_b, np.array([delta.sum()]), terms=4)


@pytest.mark.parametrize("backend", NET_BACKENDS)
@pytest.mark.parametrize("resolution", [(28, 28), (5, 7), (1, 1), (13, 4)], ids=_ids)
def test_seed_003_q11_q14_global_pools_any_resolution(resolution, backend):
    """(b, c, h, w) -> (b, c) for every resolution: torch.amax / torch.mean over (2, 3)."""
    x = np.random.default_rng(15).standard_normal((2, 3) + resolution).astype(np.float32)
    got_max = fastcorr.global_max_pool2d(x, backend=backend)
    got_mean = fastcorr.global_avg_pool2d(x, backend=backend)
    xt = torch.from_numpy(x.astype(np.float64))
    assert_close(got_max, torch.amax(xt, (3, 2)).numpy(), dtype=np.float32, rtol=0.0)
    assert_close(got_mean, torch.mean(xt, (3, 2)).numpy(), dtype=np.float32,
                 terms=resolution[0] * resolution[1])


# --------------------------------------------------------------------------------------
# seed 004, problem 2: average pooling as a convolution


@pytest.mark.parametrize("backend", NET_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=_ids)
@pytest.mark.parametrize("k,m,n", [(1, 3, 4), (2, 4, 6), (3, 6, 9), (2, 5, 7), (3, 8, 7)],
                         ids=_ids)
def test_seed_004_p2_avg_pool_is_a_depthwise_conv(k, m, n, dtype, backend):
    """avg_pool2d(X, k) == conv2d(X, 1/k^2, stride=k, groups=C), sizes divisible or not
    (both drop the remainder); and so are their gradients."""
    rng = np.random.default_rng(16)
    channels = 3
    x = rng.standard_normal((2, channels, m, n)).astype(dtype)
    weight = np.full((channels, 1, k, k), 1.0 / k ** 2, dtype=dtype)
    pooled = fastcorr.avg_pool2d(x, k, backend=backend)
    conv = fastcorr.conv2d(x, weight, stride=k, groups=channels, backend=backend)
    assert pooled.shape == (2, channels, m // k, n // k)
    assert_close(pooled, conv, dtype=dtype, terms=k * k)
    dy = rng.standard_normal(pooled.shape).astype(dtype)
    grad_pool = fastcorr.avg_pool2d_backward(dy, x, k, backend=backend)
    grad_conv = fastcorr.conv2d_backward(dy, x, weight, stride=k, groups=channels,
                                         output_mask=(True, False, False), backend=backend)[0]
    assert_close(grad_pool, grad_conv, dtype=dtype, terms=k * k)


# --------------------------------------------------------------------------------------
# seed 004, problem 4: max pooling commutes with a nondecreasing activation

ACTIVATIONS = {
    "relu": lambda v: np.maximum(v, 0),
    "tanh": np.tanh,
    "step": lambda v: (v > 0).astype(v.dtype),
    "floor": np.floor,
    "clip": lambda v: np.clip(v, -0.25, 0.5),
    "cube": lambda v: v ** 3,
}


@st.composite
def max_pool_problems(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)),
             draw(st.integers(1, 8)))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    assume(all(d * (k - 1) + 1 <= n + 2 * p
               for n, k, p, d in zip(shape[2:], kernel, padding, dilation)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    x = (2 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                  ceil_mode=draw(st.booleans()))
    # the seed's proof is about finite sets: every window must hold an element of x (a
    # dilated window can fall wholly in the padding; that case is test_pool's)
    assume(not torch.isinf(F.max_pool2d(_t(x), **kwargs)).any())
    return x, kwargs


@pytest.mark.parametrize("backend", NET_BACKENDS)
@settings(max_examples=30, deadline=None, derandomize=True)
@given(problem=max_pool_problems(), activation=st.sampled_from(sorted(ACTIVATIONS)))
def test_seed_004_p4_max_pool_commutes_with_nondecreasing_activations(backend, problem,
                                                                      activation):
    x, kwargs = problem
    sigma = ACTIVATIONS[activation]
    left = sigma(fastcorr.max_pool2d(x, backend=backend, **kwargs))
    right = fastcorr.max_pool2d(sigma(x), backend=backend, **kwargs)
    assert_close(right, left, dtype=x.dtype, rtol=0.0, context=f"{activation} {kwargs}")
