"""A small CNN trained with fastcorr's forward and backward functions and plain NumPy SGD.

conv 3x3 (1 -> 16 channels) -> batch norm -> ReLU -> max-pool 2x2 -> linear (16*4*4 -> 10),
softmax cross-entropy, on scikit-learn's bundled 8x8 digits (no download).

    python examples/digits_cnn.py            # ~99% test accuracy; 20 s on 2 cores, 3 s cached
    python examples/digits_cnn.py --small --out /tmp     # 30 steps, for a smoke test

It writes its loss curve to docs/img/digits_cnn.png (or to --out). The first run takes longer
because numba compiles fastcorr's kernels; later runs load them from numba's cache.

Every gradient comes from fastcorr: conv2d_backward, batch_norm_backward and
max_pool2d_backward; the linear layer and the loss are a few lines of NumPy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _figure import DEFAULT_OUT, plt, save

import fastcorr


def load_data(seed=0):
    """Digits scaled to [0, 1] as (N, 1, 8, 8) float32, split 75/25."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, np.newaxis]
    order = np.random.default_rng(seed).permutation(len(images))
    split = len(images) * 3 // 4
    train, test = order[:split], order[split:]
    return images[train], digits.target[train], images[test], digits.target[test]


class SmallCNN:
    """Parameters, running statistics and the forward/backward passes of the network."""

    def __init__(self, channels=16, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "conv_w": (rng.standard_normal((channels, 1, 3, 3)) / 3.0).astype(np.float32),
            "conv_b": np.zeros(channels, np.float32),
            "bn_w": np.ones(channels, np.float32),
            "bn_b": np.zeros(channels, np.float32),
            "fc_w": (rng.standard_normal((10, channels * 16)) / np.sqrt(channels * 16))
            .astype(np.float32),
            "fc_b": np.zeros(10, np.float32),
        }
        self.running_mean = np.zeros(channels, np.float32)
        self.running_var = np.ones(channels, np.float32)

    def forward(self, x, training):
        p = self.params
        conv = fastcorr.conv2d(x, p["conv_w"], p["conv_b"], padding=1)
        normed = fastcorr.batch_norm(conv, self.running_mean, self.running_var, p["bn_w"],
                                     p["bn_b"], training=training)
        relu = np.maximum(normed, 0)
        pooled = fastcorr.max_pool2d(relu, 2)
        logits = pooled.reshape(len(x), -1) @ p["fc_w"].T + p["fc_b"]
        return logits, (x, conv, normed, relu, pooled)

    def backward(self, grad_logits, cache):
        x, conv, normed, relu, pooled = cache
        p = self.params
        grads = {"fc_w": grad_logits.T @ pooled.reshape(len(x), -1),
                 "fc_b": grad_logits.sum(0)}
        grad_pooled = (grad_logits @ p["fc_w"]).reshape(pooled.shape)
        grad_relu = fastcorr.max_pool2d_backward(grad_pooled, relu, 2)
        grad_normed = grad_relu * (normed > 0)
        grad_conv, grads["bn_w"], grads["bn_b"] = fastcorr.batch_norm_backward(
            grad_normed, conv, weight=p["bn_w"], bias=p["bn_b"], training=True)
        _, grads["conv_w"], grads["conv_b"] = fastcorr.conv2d_backward(
            grad_conv, x, p["conv_w"], padding=1, output_mask=(False, True, True))
        return grads


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    loss = -log_probs[np.arange(len(labels)), labels].mean()
    grad = np.exp(log_probs)
    grad[np.arange(len(labels)), labels] -= 1
    return float(loss), (grad / len(labels)).astype(np.float32)


def train(epochs=8, batch_size=32, learning_rate=0.1, max_steps=None, seed=0):
    """Train with SGD; returns the per-step losses and the test accuracy."""
    x_train, y_train, x_test, y_test = load_data(seed)
    model = SmallCNN(seed=seed)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = order[start:start + batch_size]
            logits, cache = model.forward(x_train[batch], training=True)
            loss, grad_logits = cross_entropy(logits, y_train[batch])
            for name, grad in model.backward(grad_logits, cache).items():
                model.params[name] -= learning_rate * grad
            losses.append(loss)
            if max_steps is not None and len(losses) >= max_steps:
                break
        if max_steps is not None and len(losses) >= max_steps:
            break
    logits, _ = model.forward(x_test, training=False)
    accuracy = float((logits.argmax(1) == y_test).mean())
    return losses, accuracy


def run(out_dir: Path = DEFAULT_OUT, small: bool = False, epochs: int = 8) -> dict:
    """Train, draw the loss curve into ``out_dir/digits_cnn.png``, return the figures."""
    losses, accuracy = train(epochs=1, max_steps=30) if small else train(epochs=epochs)
    numbers = {"steps": len(losses), "losses": losses, "accuracy": accuracy}
    numbers["png"] = draw(losses, accuracy, Path(out_dir) / "digits_cnn.png")
    return numbers


def draw(losses, accuracy, path: Path) -> Path:
    window = max(1, min(20, len(losses) // 10))
    smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(losses, lw=0.6, color="0.7", label="per step (batch of 32)")
    ax.plot(np.arange(window - 1, len(losses)), smoothed, lw=1.5, color="C0",
            label=f"mean of {window} steps")
    ax.set(xlabel="SGD step", ylabel="cross-entropy loss", yscale="log",
           title=f"digits CNN on fastcorr kernels: test accuracy {accuracy:.1%}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return save(fig, path, dpi=90)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for digits_cnn.png (default: docs/img)")
    parser.add_argument("--small", action="store_true",
                        help="30 SGD steps instead of --epochs, for a smoke test")
    args = parser.parse_args(argv)
    numbers = run(args.out, args.small, args.epochs)
    print(f"{numbers['steps']} steps, final loss {np.mean(numbers['losses'][-20:]):.3f}, "
          f"test accuracy {numbers['accuracy']:.3f}; wrote {numbers['png']}")
    return numbers


if __name__ == "__main__":
    main()
