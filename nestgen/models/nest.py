"""The shared NesT vocabulary: blocks, local attention, transformer layers, aggregation, levels.

Every NesT network in nestgen (classifier, generator, discriminator) is assembled from these modules, so
GradCAT and checkpoint conversion see one parameter layout. Tensors inside a level are `(B, T, N, C)`:
batch, blocks, tokens per block, channels; images are NHWC. A block is an S×S square of tokens, blocks are
numbered in raster order on a √T×√T grid, tokens in raster order inside their block.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
# Compute dtypes by name (configs, command lines); parameters always stay float32.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

LAYER_NORM_EPSILON = 1e-6
kernel_init = nn.initializers.truncated_normal(stddev=0.02)  # truncated at ±2 std, as the official code
LayerNorm = partial(nn.LayerNorm, epsilon=LAYER_NORM_EPSILON)

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu_tanh": partial(nn.gelu, approximate=True),  # Flax's default `nn.gelu`: the official NesT code
    "gelu": partial(nn.gelu, approximate=False),  # exact erf GELU: timm's NesT
}
ATTENTION_KINDS = ("multi_head", "multi_query")
POOL_PADDINGS = ("same", "symmetric")


class ConfigRecord:
    """to_dict / from_dict for the frozen config dataclasses of every network (the `model` entry of config.json)."""

    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v
                                      for k, v in dataclasses.asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = {k: v for k, v in data.items() if k != "kind"}
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.kind} config fields: {sorted(unknown)}")
        return cls(**data)


def _square_root(value: int, what: str) -> int:
    root = math.isqrt(value)
    if root * root != value:
        raise ValueError(f"{what} must be a square number, got {value}")
    return root


def blockify(x: jax.Array, block_size: int) -> jax.Array:
    """Cut an image plane into non-overlapping `block_size`² blocks: (B, H, W, C) → (B, T, N, C)."""
    b, h, w, c = x.shape
    if h % block_size or w % block_size:
        raise ValueError(f"block size {block_size} does not divide the {h}x{w} grid")
    gh, gw = h // block_size, w // block_size
    x = x.reshape(b, gh, block_size, gw, block_size, c)  # (B, gh, S, gw, S, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, gh, gw, S, S, C)
    return x.reshape(b, gh * gw, block_size * block_size, c)  # (B, T, N, C)


def unblockify(x: jax.Array) -> jax.Array:
    """Put blocks back on the image plane: (B, T, N, C) → (B, H, W, C), the inverse of `blockify`."""
    b, t, n, c = x.shape
    grid, block_size = _square_root(t, "number of blocks T"), _square_root(n, "tokens per block N")
    x = x.reshape(b, grid, grid, block_size, block_size, c)  # (B, g, g, S, S, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, g, S, g, S, C)
    return x.reshape(b, grid * block_size, grid * block_size, c)  # (B, H, W, C)


class PatchEmbedding(nn.Module):
    """Embed every k×k pixel patch as one token with a k×k stride-k convolution: (B, H, W, 3) → (B, H/k, W/k, C)."""

    dim: int
    patch_size: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        _, h, w, _ = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"patch size {self.patch_size} does not divide the {h}x{w} image")
        k = (self.patch_size, self.patch_size)
        return nn.Conv(self.dim, k, strides=k, padding="VALID", dtype=self.dtype, kernel_init=kernel_init,
                       name="proj")(images)


class LocalAttention(nn.Module):
    """Self-attention inside each block only; one set of weights shared by all blocks of a level.

    `num_kv_heads == num_heads` is multi-head attention, `num_kv_heads == 1` multi-query attention (one key and
    value head shared by all query heads, as the official CIFAR variants). Head size is C / num_heads.
    `fused=True` computes the same function with `jax.nn.dot_product_attention`: cuDNN's fused (flash) attention
    on GPUs in bfloat16/float16 (its `implementation="cudnn"`; JAX's automatic choice is XLA's), XLA's elsewhere.
    """

    num_heads: int
    num_kv_heads: int
    dtype: Dtype = jnp.float32
    fused: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, n, c = x.shape
        h, g = self.num_heads, self.num_kv_heads
        if c % h or h % g:
            raise ValueError(f"{c} channels, {h} heads and {g} key/value heads do not divide evenly")
        d = c // h
        dense = partial(nn.DenseGeneral, dtype=self.dtype, kernel_init=kernel_init)
        q = dense((h, d), name="query")(x) * (d**-0.5)  # (B, T, N, h, d)
        kv = dense((2, g, d), name="key_value")(x)  # (B, T, N, 2, g, d)
        k, v = kv[..., 0, :, :], kv[..., 1, :, :]  # (B, T, N, g, d) each
        if self.fused:  # blocks become the batch: (B·T, N, heads, d); g key/value heads serve h/g query heads each
            cudnn = jax.default_backend() == "gpu" and jnp.dtype(self.dtype) in (jnp.bfloat16, jnp.float16)
            out = jax.nn.dot_product_attention(q.reshape(b * t, n, h, d), k.reshape(b * t, n, g, d),
                                               v.reshape(b * t, n, g, d), scale=1.0,
                                               implementation="cudnn" if cudnn else None)  # (B·T, N, h, d)
            return dense(c, axis=(-2, -1), name="out")(out.reshape(b, t, n, h, d))  # (B, T, N, C)
        if g == 1:  # multi-query: (token, head) pairs are the query rows of one matmul per block, no transposes
            q = q.reshape(b, t, n * h, d)  # (B, T, N·h, d)
            k, v = k[..., 0, :], v[..., 0, :]  # (B, T, N, d)
            logits = jnp.einsum("btqd,btkd->btqk", q, k)  # (B, T, N·h, N)
        else:
            q = q.reshape(b, t, n, g, h // g, d)  # (B, T, N, g, h/g, d)
            logits = jnp.einsum("btqgrd,btkgd->btgrqk", q, k)  # (B, T, g, h/g, N, N)
        softmax_dtype = jnp.promote_types(self.dtype, jnp.float32)  # at least float32, also under bfloat16
        weights = jax.nn.softmax(logits.astype(softmax_dtype), axis=-1).astype(self.dtype)
        if g == 1:
            out = jnp.einsum("btqk,btkd->btqd", weights, v)  # (B, T, N·h, d)
        else:
            out = jnp.einsum("btgrqk,btkgd->btqgrd", weights, v)  # (B, T, N, g, h/g, d)
        out = out.reshape(b, t, n, h, d)  # (B, T, N, h, d)
        return dense(c, axis=(-2, -1), name="out")(out)  # (B, T, N, C)


class Mlp(nn.Module):
    """Two dense layers with an activation in between: C → hidden → C."""

    hidden_dim: int
    activation: str = "gelu_tanh"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dense = partial(nn.Dense, dtype=self.dtype, kernel_init=kernel_init)
        y = ACTIVATIONS[self.activation](dense(self.hidden_dim, name="fc1")(x))
        return dense(x.shape[-1], name="fc2")(y)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per example with probability `rate` (rng 'dropout')."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if not train or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class TransformerLayer(nn.Module):
    """Pre-LN transformer layer on blocked tokens: x + attn(norm1(x)), then x + mlp(norm2(x)).

    `norm` builds the two normalisation layers. The classifier uses plain LayerNorm; a network whose norms are
    conditioned (the generator's LayerNorms modulated by w) passes its own module and the condition `cond`,
    which is handed to each norm as a second argument.
    """

    num_heads: int
    num_kv_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    activation: str = "gelu_tanh"
    norm: Callable[..., nn.Module] = LayerNorm
    dtype: Dtype = jnp.float32
    fused_attention: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array | None = None, train: bool = False) -> jax.Array:
        def normalise(name: str, y: jax.Array) -> jax.Array:
            layer = self.norm(name=name, dtype=self.dtype)
            return layer(y) if cond is None else layer(y, cond)

        y = LocalAttention(self.num_heads, self.num_kv_heads, self.dtype, self.fused_attention,
                           name="attn")(normalise("norm1", x))
        x = x + DropPath(self.drop_path, name="drop_path1")(y, train=train)
        y = Mlp(int(x.shape[-1] * self.mlp_ratio), self.activation, dtype=self.dtype,
                name="mlp")(normalise("norm2", x))
        return x + DropPath(self.drop_path, name="drop_path2")(y, train=train)


_CONV_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3×3 SAME convolution, stride 1: (B, H, W, Cin) * (3, 3, Cin, Cout) → (B, H, W, Cout)."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_CONV_DIMS)


@jax.custom_vjp
def conv3x3_cpu(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`_conv3x3` with a backward pass that XLA:CPU runs 2× faster (same values).

    XLA:CPU computes the kernel gradient of a convolution at a fraction of its matmul speed; here it is 9 matmuls,
    one per tap: dK[i, j] = x_pad[:, i:i+H, j:j+W]ᵀ · dY over all pixels. The input gradient is the convolution
    of dY with the flipped, transposed kernel, as XLA computes it.
    """
    return _conv3x3(x, kernel)


def _conv3x3_fwd(x, kernel):
    return _conv3x3(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, dy):
    x, kernel = residuals
    dx = _conv3x3(dy, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))  # (B, H, W, Cin)
    _, h, w, cin = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # (B, H+2, W+2, Cin)
    dy_rows = dy.reshape(-1, dy.shape[-1])  # (B·H·W, Cout)
    taps = [padded[:, i:i + h, j:j + w].reshape(-1, cin).T @ dy_rows for i in range(3) for j in range(3)]
    return dx, jnp.stack(taps).reshape(kernel.shape)  # (3, 3, Cin, Cout)


conv3x3_cpu.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
    """`nn.Conv(features, (3, 3), padding="SAME")` with the same parameters ("kernel", "bias") and values; on CPU
    its backward pass is `conv3x3_cpu`'s (GPU and TPU keep XLA's own)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", kernel_init, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
        conv = conv3x3_cpu if jax.default_backend() == "cpu" else _conv3x3
        return conv(x, kernel) + bias


class BlockAggregation(nn.Module):
    """Merge every 2×2 group of blocks into one: (B, T, N, C) → (B, T/4, N, C').

    unblockify → conv 3×3 → LayerNorm → max-pool 3×3 stride 2 → blockify. This is the only place where
    neighbouring blocks of the encoder exchange information. `padding` of the pool is "same" (TF/Flax SAME,
    the official code and timm's `*_jx` models) or "symmetric" (one pixel each side, timm's own NesT).
    """

    dim: int
    padding: str = "same"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        t, n = x.shape[1], x.shape[2]
        if t < 4:
            raise ValueError(f"aggregation needs at least 4 blocks, got {t}")
        block_size = _square_root(n, "tokens per block N")
        x = unblockify(x)  # (B, H, W, C)
        x = Conv3x3(self.dim, dtype=self.dtype, name="conv")(x)
        x = LayerNorm(dtype=self.dtype, name="norm")(x)  # (B, H, W, C')
        pool_padding = "SAME" if self.padding == "same" else ((1, 1), (1, 1))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pool_padding)  # (B, H/2, W/2, C')
        return blockify(x, block_size)  # (B, T/4, N, C')


def pixel_shuffle(x: jax.Array, factor: int = 2) -> jax.Array:
    """Depth-to-space: (B, H, W, C) → (B, fH, fW, C/f²); each pixel's channels become an f×f patch."""
    b, h, w, c = x.shape
    if c % (factor * factor):
        raise ValueError(f"pixel shuffle x{factor} needs channels divisible by {factor * factor}, got {c}")
    x = x.reshape(b, h, w, factor, factor, c // factor**2)  # (B, H, W, f, f, C/f²)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H, f, W, f, C/f²)
    return x.reshape(b, h * factor, w * factor, c // factor**2)  # (B, fH, fW, C/f²)


class BlockDeAggregation(nn.Module):
    """Expand each block into its 4 children (the mirror of `BlockAggregation`): (B, T, N, C) → (B, 4T, N, C').

    unblockify → pixel shuffle ×2 → conv 3×3 → LayerNorm → blockify. Child (2i+a, 2j+b) of block (i, j) covers
    the quarter (a, b) of its parent's pixels, the same parent/child relation GradCAT walks in the encoder. The
    conv lets neighbouring blocks exchange information; without it block seams appear.
    """

    dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        block_size = _square_root(x.shape[2], "tokens per block N")
        x = pixel_shuffle(unblockify(x), 2)  # (B, 2H, 2W, C/4)
        x = Conv3x3(self.dim, dtype=self.dtype, name="conv")(x)
        x = LayerNorm(dtype=self.dtype, name="norm")(x)  # (B, 2H, 2W, C')
        return blockify(x, block_size)  # (B, 4T, N, C')


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a network computes, not what: the compute dtype's companions. Parameters and outputs do not change.

    fused_attention: `jax.nn.dot_product_attention` in every LocalAttention (cuDNN flash attention on GPUs).
    remat: recompute each transformer layer's activations in the backward pass instead of keeping them
    (`nn.remat`): less memory for about one more forward pass of compute.
    """

    fused_attention: bool = False
    remat: bool = False


DEFAULT_EXECUTION = Execution()


class Level(nn.Module):
    """One level of the hierarchy: a learned position embedding (1, T, N, C), then `depth` transformer layers.

    `positions` (the generator's option; spec.md §3 has "absolute"): "absolute" (1, T, N, C); "in_block" one
    (1, 1, N, C) shared by the level's T blocks (a token knows where it sits inside its block, not where the block
    sits); "none" no embedding (where a token sits comes only from its input)."""

    depth: int
    num_heads: int
    num_kv_heads: int
    drop_path: tuple[float, ...] = ()
    mlp_ratio: float = 4.0
    activation: str = "gelu_tanh"
    norm: Callable[..., nn.Module] = LayerNorm
    dtype: Dtype = jnp.float32
    execution: Execution = DEFAULT_EXECUTION
    positions: str = "absolute"

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array | None = None, *, train: bool = False) -> jax.Array:
        if self.positions not in ("absolute", "in_block", "none"):
            raise ValueError(f"positions must be absolute, in_block or none, got {self.positions!r}")
        if self.positions != "none":
            blocks = 1 if self.positions == "in_block" else x.shape[1]
            pos_embed = self.param("pos_embed", kernel_init, (1, blocks) + x.shape[2:])  # (1, T or 1, N, C)
            x = x + pos_embed.astype(self.dtype)
        rates = self.drop_path or (0.0,) * self.depth
        # nn.remat keeps the parameter names; `train` (argument 3, counting the module) switches Python control flow.
        layer = nn.remat(TransformerLayer, static_argnums=(3,)) if self.execution.remat else TransformerLayer
        for i in range(self.depth):
            x = layer(self.num_heads, self.num_kv_heads, self.mlp_ratio, rates[i], self.activation, self.norm,
                      self.dtype, self.execution.fused_attention, name=f"layer_{i}")(x, cond, train)
        return x  # (B, T, N, C)
