"""Sample a trained generator: seeds → w → images, truncation toward the tracked mean of w, interpolation in w space
and level mixing (coarse levels from one seed, finer levels from another). Pictures (grids, labelled tables, GIFs,
MP4s) are made in nestgen/drawing/pictures.py; grid, save_png and save_gif are re-exported here.

Image i of a request depends only on its seed, class and ψ: z = normal(key(seed)), and every batch runs padded
to one fixed size through one compiled function, so the same seed gives the same image bit for bit on a machine.
Seeds are whole numbers in [0, MAX_SEED] = [0, 2**32 - 1] at every entry point (scripts, FID, the app): there
jax.random.key(seed) is one distinct key per seed, with or without x64; beyond, it would wrap (2**32 + 7 ≡ 7).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nestgen.convert.checkpoint import W_AVG_KEY as W_AVG_KEY
from nestgen.convert.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from nestgen.data.classes import ClassError, resolve_class
from nestgen.drawing.pictures import grid as grid
from nestgen.drawing.pictures import save_gif as save_gif
from nestgen.drawing.pictures import save_png as save_png
from nestgen.models.generator import mix_levels as mix_levels_w

MAX_SEED = 2**32 - 1  # the largest seed: jax.random.key wraps larger ones (in 32-bit mode) onto smaller ones


def check_seeds(first: int, count: int = 1, flag: str = "seed") -> None:
    """Refuse seeds first … first + count - 1 unless they all lie in [0, MAX_SEED]: one-line ValueError."""
    last = first + count - 1
    if 0 <= first and last <= MAX_SEED:
        return
    allowed = f"seeds are whole numbers from 0 to {MAX_SEED:,} (2**32 - 1)"
    if not 0 <= first <= MAX_SEED:
        raise ValueError(f"{flag} {first} is out of range: {allowed}")
    raise ValueError(f"{flag} {first} with {count} images needs seeds up to {last}, past {MAX_SEED:,}: {allowed}; "
                     f"lower {flag} to at most {MAX_SEED - count + 1} or ask for fewer images")


def _seed(value) -> int:
    """One seed as an int in [0, MAX_SEED] (a numpy integer is fine), or ValueError naming it and the range."""
    try:
        seed = operator.index(value)
    except TypeError as error:
        raise ValueError(f"a seed must be a whole number from 0 to {MAX_SEED:,}, got {value!r}") from error
    check_seeds(seed)
    return seed


def latents(seeds: Sequence[int], latent_dim: int) -> np.ndarray:
    """z of every seed, (B, Z) float32: a standard normal drawn from jax.random.key(seed), seed in [0, MAX_SEED]."""
    seeds = [_seed(s) for s in seeds]
    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds]) if seeds else None
    if keys is None:
        return np.zeros((0, latent_dim), np.float32)
    draw = jax.vmap(lambda k: jax.random.normal(jax.random.wrap_key_data(k), (latent_dim,)))
    return np.asarray(draw(keys), np.float32)


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] → uint8 [0, 255] (rounded, clipped)."""
    return np.asarray(np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255), np.uint8)


@functools.lru_cache(maxsize=8)
def _programs(config, dtype: str):
    """The jitted mapping and synthesis of one generator architecture, the weights an argument: every sampler of
    that architecture (a training run's periodic FD_NesT makes one per evaluation) reuses the compiled programs,
    where weights baked in as constants would compile them again for each."""
    model = config.build(jnp.dtype(dtype))
    conditional = config.conditional

    def map_fn(params, z, y):  # (B, Z), (B,) → (B, W)
        return model.apply({"params": params}, z, y if conditional else None, method="map")

    def synthesize(params, w):  # (B, W) or (B, L, W) → (B, H, W, 3) in [-1, 1]
        return model.apply({"params": params}, w, method="synthesize")

    return jax.jit(map_fn), jax.jit(synthesize)


class GeneratorSampler:
    """A generator checkpoint loaded once, with jitted mapping and synthesis at a fixed batch size."""

    def __init__(self, checkpoint: Checkpoint, *, batch_size: int = 16, dtype=jnp.float32):
        if checkpoint.config.kind != "generator":
            raise CheckpointError(f"{checkpoint.path} holds a {checkpoint.config.kind}, not a generator")
        self.checkpoint, self.config, self.batch_size = checkpoint, checkpoint.config, batch_size
        map_fn, synthesize = _programs(checkpoint.config, jnp.dtype(dtype).name)
        params = jax.device_put(checkpoint.params)
        self._map = functools.partial(map_fn, params)
        self._synthesize = functools.partial(synthesize, params)
        w_avg = checkpoint.metadata.get(W_AVG_KEY)
        self.w_avg = np.asarray(w_avg, np.float32) if w_avg is not None else None

    @classmethod
    def from_directory(cls, directory: str | Path, **kwargs) -> GeneratorSampler:
        return cls(load_checkpoint(directory), **kwargs)

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    def class_index(self, name_or_index: str | int | None) -> int | None:
        """A class (name, `#index`, or a whole number no class is named: `nestgen.data.classes.resolve_class`) →
        its index; None for 'any class'. ClassError (a ValueError) for an unknown class or an unconditional model."""
        if name_or_index is None:
            return None
        if not self.config.conditional:
            raise ClassError("this generator is unconditional: it takes no class")
        return resolve_class(name_or_index, self.class_names)

    def labels_for(self, seeds: Sequence[int], class_index: int | None) -> np.ndarray:
        """One label per seed: the given class, or (for 'any') a class drawn from the seed, uniformly."""
        if not self.config.conditional:
            return np.zeros(len(seeds), np.int32)
        if class_index is not None:
            return np.full(len(seeds), class_index, np.int32)
        return np.asarray([np.random.default_rng(int(s)).integers(self.config.num_classes) for s in seeds], np.int32)

    def _chunks(self, fn, *arrays):
        out = []
        for start in range(0, len(arrays[0]), self.batch_size):
            chunk = [a[start:start + self.batch_size] for a in arrays]
            n = len(chunk[0])
            padded = [np.concatenate([c, np.zeros((self.batch_size - n,) + c.shape[1:], c.dtype)]) for c in chunk]
            out.append(np.asarray(fn(*padded))[:n])
        return np.concatenate(out)

    def mapping(self, z: np.ndarray, labels: np.ndarray, truncation: float = 1.0) -> np.ndarray:
        """z (B, Z), labels (B,) → w (B, W), pulled toward the mean w by ψ = truncation (1 = no truncation)."""
        self.check_truncation(truncation)
        w = self._chunks(self._map, np.asarray(z, np.float32), np.asarray(labels, np.int32))
        if truncation == 1.0:
            return w
        center = self.w_avg[labels if len(self.w_avg) > 1 else np.zeros_like(labels)]  # (B, W)
        return center + truncation * (w - center)

    def check_truncation(self, truncation: float) -> None:
        """ValueError unless ψ = truncation is in (0, 1] and, below 1, this checkpoint tracks the mean of w."""
        if not 0.0 < truncation <= 1.0:
            raise ValueError(f"truncation ψ must be in (0, 1], got {truncation}")
        if truncation < 1.0 and self.w_avg is None:
            raise ValueError(f"{self.checkpoint.path} has no tracked mean of w ('{W_AVG_KEY}' in config.json "
                             "metadata): sample with truncation 1")

    def synthesize(self, w: np.ndarray) -> np.ndarray:
        """w (B, W) → uint8 images (B, H, W, 3)."""
        return to_uint8(self._chunks(self._synthesize, np.asarray(w, np.float32)))

    def synthesize_levels(self, w_levels: np.ndarray) -> np.ndarray:
        """Per-level w (B, L, W) float32, index 0 the finest level → uint8 images (B, H, W, 3): level mixing.

        Padded to the batch size like `synthesize`, so one compiled shape serves every request."""
        w_levels = np.asarray(w_levels, np.float32)
        if w_levels.ndim != 3 or w_levels.shape[1:] != (self.config.num_levels, self.config.w_dim):
            raise ValueError(f"per-level w must be (B, {self.config.num_levels}, {self.config.w_dim}), "
                             f"got {w_levels.shape}")
        return to_uint8(self._chunks(self._synthesize, w_levels))

    def _w(self, seeds: Sequence[int], labels: np.ndarray, truncation: float) -> np.ndarray:
        """w (B, W) float32 of seeds (B,) with the given labels (B,), pulled toward the mean by ψ = truncation."""
        if not len(seeds):
            return np.zeros((0, self.config.w_dim), np.float32)
        return self.mapping(latents(seeds, self.config.latent_dim), labels, truncation)

    def w_of(self, seeds: Sequence[int], class_index: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """w (B, W) float32 that `sample` renders for these seeds: the given class, or each seed's own drawn class
        (`labels_for`), pulled toward the tracked mean of w by ψ = truncation."""
        seeds = [_seed(s) for s in seeds]
        return self._w(seeds, self.labels_for(seeds, class_index), truncation)

    def sample(self, seeds: Sequence[int], class_index: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """uint8 images (B, H, W, 3), one per seed, of the given class (or a per-seed random class)."""
        return self.synthesize(self.w_of(seeds, class_index, truncation))

    def interpolate_w(self, w_a: np.ndarray, w_b: np.ndarray, frames: int) -> np.ndarray:
        """uint8 images (F, H, W, 3): `frames` evenly spaced points of the straight line from w_a (W,) to w_b (W,),
        both ends included."""
        if frames < 2:
            raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
        w_a, w_b = np.asarray(w_a, np.float32), np.asarray(w_b, np.float32)
        if w_a.shape != (self.config.w_dim,) or w_b.shape != (self.config.w_dim,):
            raise ValueError(f"interpolate_w takes two w of shape ({self.config.w_dim},), got {w_a.shape} and "
                             f"{w_b.shape}")
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]  # (F, 1)
        return self.synthesize(w_a[None] + t * (w_b - w_a)[None])  # (F, W) → (F, H, W, 3)

    def interpolate(self, seed_a: int, seed_b: int, frames: int, class_a: int | None = None,
                    class_b: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """`frames` images (F, H, W, 3) uint8 on the straight line in w space from (seed_a, class_a) to
        (seed_b, class_b)."""
        if frames < 2:
            raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
        seeds = [_seed(seed_a), _seed(seed_b)]
        labels = np.concatenate([self.labels_for(seeds[:1], class_a), self.labels_for(seeds[1:], class_b)])
        w_a, w_b = self._w(seeds, labels, truncation)  # one mapping batch: (2, W)
        return self.interpolate_w(w_a, w_b, frames)

    def mix_levels(self, seeds_coarse: Sequence[int], seeds_fine: Sequence[int], crossover: int,
                   class_index: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """Level mixing grid, uint8 (A, B, H, W, 3) for A coarse and B fine seeds: image [i, j] takes levels
        ≥ crossover (the coarse ones, root included) from seeds_coarse[i] and levels < crossover from
        seeds_fine[j]. Levels are numbered 0 = finest … L-1 = root; crossover must be in 1 … L-1."""
        levels = self.config.num_levels
        if isinstance(crossover, bool) or not isinstance(crossover, int | np.integer) or not 1 <= crossover < levels:
            raise ValueError(f"crossover must be a level from 1 to {levels - 1} (this generator has {levels} levels, "
                             f"0 = finest, {levels - 1} = root), got {crossover!r}")
        if not len(seeds_coarse) or not len(seeds_fine):
            raise ValueError("level mixing needs at least one coarse seed and one fine seed")
        w_coarse = self.w_of(seeds_coarse, class_index, truncation)  # (A, W)
        w_fine = self.w_of(seeds_fine, class_index, truncation)  # (B, W)
        a, b = len(w_coarse), len(w_fine)
        pairs_coarse = np.repeat(w_coarse, b, axis=0)  # (A·B, W): row i·B + j holds w_coarse[i]
        pairs_fine = np.tile(w_fine, (a, 1))  # (A·B, W): row i·B + j holds w_fine[j]
        w_levels = np.asarray(mix_levels_w(pairs_coarse, pairs_fine, int(crossover), levels))  # (A·B, L, W)
        images = self.synthesize_levels(w_levels)  # (A·B, H, W, 3)
        return images.reshape(a, b, *images.shape[1:])  # (A, B, H, W, 3)


def level_mixing_effect(sampler: GeneratorSampler, crossover: int = 1, seeds: Sequence[int] = range(8)) -> dict:
    """How much each side of a level-mixing grid moves the picture, per class, in 0–255 pixel levels.

    For every class (or once, unconditional), the grid of `seeds` × `seeds` at `crossover`: "coarse" is the mean
    absolute pixel difference between two rows (another coarse seed, the same fine seed), "fine" between two columns.
    Returns {"crossover", "coarse", "fine"} (floats, averaged over classes and pairs). A generator whose coarse
    levels ignore the seed has "coarse" ≈ 0: the README's Level mixing row and issue 24 ask for ≥ 10."""
    classes = range(sampler.config.num_classes) if sampler.config.conditional else [None]
    coarse, fine = [], []
    for class_index in classes:
        images = sampler.mix_levels(seeds, seeds, crossover, class_index).astype(np.float32)  # (A, A, H, W, 3)
        rows = np.abs(images[:, None] - images[None, :]).mean(axis=(2, 3, 4, 5))  # (A, A): row i vs row k
        columns = np.abs(images[:, :, None] - images[:, None, :]).mean(axis=(0, 3, 4, 5))  # (A, A)
        off = ~np.eye(len(seeds), dtype=bool)
        coarse.append(rows[off].mean())
        fine.append(columns[off].mean())
    return {"crossover": int(crossover), "coarse": float(np.mean(coarse)), "fine": float(np.mean(fine))}
