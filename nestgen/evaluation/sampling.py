"""Sample a trained generator: seeds → images, truncation toward the tracked mean of w, interpolation, grids, GIFs.

Image i of a request depends only on its seed, class and ψ: z = normal(key(seed)), and every batch runs padded
to one fixed size through one compiled function, so the same seed gives the same image bit for bit on a machine.
Seeds are whole numbers in [0, MAX_SEED] = [0, 2**32 - 1] at every entry point (scripts, FID, the app): there
jax.random.key(seed) is one distinct key per seed, with or without x64; beyond, it would wrap (2**32 + 7 ≡ 7).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nestgen.convert.checkpoint import Checkpoint, CheckpointError, load_checkpoint

W_AVG_KEY = "w_avg"  # checkpoint metadata: the tracked mean of w, (num_classes or 1, w_dim) as nested lists


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


class GeneratorSampler:
    """A generator checkpoint loaded once, with jitted mapping and synthesis at a fixed batch size."""

    def __init__(self, checkpoint: Checkpoint, *, batch_size: int = 16, dtype=jnp.float32):
        if checkpoint.config.kind != "generator":
            raise CheckpointError(f"{checkpoint.path} holds a {checkpoint.config.kind}, not a generator")
        self.checkpoint, self.config, self.batch_size = checkpoint, checkpoint.config, batch_size
        model = checkpoint.build(dtype)
        params = {"params": checkpoint.params}
        self._map = jax.jit(lambda z, y: model.apply(params, z, y if self.config.conditional else None,
                                                     method="map"))
        self._synthesize = jax.jit(lambda w: model.apply(params, w, method="synthesize"))
        w_avg = checkpoint.metadata.get(W_AVG_KEY)
        self.w_avg = np.asarray(w_avg, np.float32) if w_avg is not None else None

    @classmethod
    def from_directory(cls, directory: str | Path, **kwargs) -> GeneratorSampler:
        return cls(load_checkpoint(directory), **kwargs)

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    def class_index(self, name_or_index: str | int | None) -> int | None:
        """A class name (or index) → its index; None for 'any class'. Clear errors for unknown classes."""
        if name_or_index is None:
            return None
        if not self.config.conditional:
            raise ValueError("this generator is unconditional: it takes no class")
        if isinstance(name_or_index, int) or str(name_or_index).isdigit():
            index = int(name_or_index)
            if not 0 <= index < self.config.num_classes:
                raise ValueError(f"class index {index} is out of range 0…{self.config.num_classes - 1}")
            return index
        if name_or_index not in self.class_names:
            raise ValueError(f"unknown class {name_or_index!r}; this generator knows: {', '.join(self.class_names)}")
        return self.class_names.index(name_or_index)

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
        if not 0.0 < truncation <= 1.0:
            raise ValueError(f"truncation ψ must be in (0, 1], got {truncation}")
        w = self._chunks(self._map, np.asarray(z, np.float32), np.asarray(labels, np.int32))
        if truncation == 1.0:
            return w
        if self.w_avg is None:
            raise ValueError(f"{self.checkpoint.path} has no tracked mean of w ('{W_AVG_KEY}' in config.json "
                             "metadata): sample with truncation 1")
        center = self.w_avg[labels if len(self.w_avg) > 1 else np.zeros_like(labels)]  # (B, W)
        return center + truncation * (w - center)

    def synthesize(self, w: np.ndarray) -> np.ndarray:
        """w (B, W) → uint8 images (B, H, W, 3)."""
        return to_uint8(self._chunks(self._synthesize, np.asarray(w, np.float32)))

    def sample(self, seeds: Sequence[int], class_index: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """uint8 images (B, H, W, 3), one per seed, of the given class (or a per-seed random class)."""
        seeds = [int(s) for s in seeds]
        z = latents(seeds, self.config.latent_dim)
        return self.synthesize(self.mapping(z, self.labels_for(seeds, class_index), truncation))

    def interpolate(self, seed_a: int, seed_b: int, frames: int, class_a: int | None = None,
                    class_b: int | None = None, truncation: float = 1.0) -> np.ndarray:
        """`frames` images on the straight line in w space from (seed_a, class_a) to (seed_b, class_b)."""
        if frames < 2:
            raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
        z = latents([seed_a, seed_b], self.config.latent_dim)
        labels = np.concatenate([self.labels_for([seed_a], class_a), self.labels_for([seed_b], class_b)])
        w_a, w_b = self.mapping(z, labels, truncation)
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]  # (F, 1)
        return self.synthesize(w_a[None] + t * (w_b - w_a)[None])  # (F, H, W, 3)


def grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 images (B, H, W, 3) → one uint8 grid image, row-major, `padding` black pixels between cells."""
    b, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(b)))
    rows = int(np.ceil(b / columns))
    canvas = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        canvas[top:top + h, left:left + w] = image
    return canvas


def save_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def save_gif(frames: np.ndarray, path: str | Path, *, frame_ms: int = 80, scale: int = 1) -> Path:
    """An animated GIF that plays forward then back (a seamless loop), frames enlarged `scale`× (nearest)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sequence = list(frames) + list(frames[-2:0:-1])
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in sequence]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path
