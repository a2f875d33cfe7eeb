"""The generator service: one generator checkpoint, loaded once, turning seeds into images within the app's bounds
(`inputs.Limits`): samples, class × seed grids, interpolations in w, level mixing and projection of an upload.

Bad input raises `InputError` (`inputs.py`) with a one-line reason; nothing here knows about Gradio.
"""

from __future__ import annotations

import functools

import numpy as np

from nestgen.convert.checkpoint import Checkpoint
from nestgen.data.images import resize_and_crop
from nestgen.inference.projection import DEFAULT_LEARNING_RATE, Projection, Projector
from nestgen.inference.sampling import GeneratorSampler
from nestgen.serving.inputs import (
    MAX_SEED,
    InputError,
    Limits,
    WRange,
    check_class,
    check_int,
    check_truncation,
    check_w,
    parse_seeds,
    read_image,
)

ANY_CLASS = "any"  # the class choice that lets each seed draw its own class
W_RANGE_SEEDS = 1024  # mapped seeds whose spread of w bounds the w a client may send (`inputs.WRange`)


class GeneratorService:
    """Seeds → images and interpolations of one generator checkpoint, with the app's bounds. Images are uint8
    (…, S, S, 3); seeds are whole numbers in [0, MAX_SEED]; ψ (truncation) in [limits.min_truncation, 1]."""

    def __init__(self, checkpoint: Checkpoint, limits: Limits, batch_size: int = 16):
        self.checkpoint, self.limits = checkpoint, limits
        self.sampler = GeneratorSampler(checkpoint, batch_size=batch_size)
        self.projector = Projector(self.sampler)

    @property
    def conditional(self) -> bool:
        return bool(self.sampler.config.conditional)

    @property
    def num_levels(self) -> int:
        return self.sampler.config.num_levels

    def class_choices(self) -> list[str]:
        return [ANY_CLASS, *self.sampler.class_names] if self.conditional else [ANY_CLASS]

    def class_index(self, value) -> int | None:
        """'any', empty or None (and every value for an unconditional model) → None; a class → its index."""
        if value is None or value in ("", ANY_CLASS) or not self.conditional:
            return None
        return check_class(value, self.sampler.class_names)

    def class_name(self, label: int) -> str:
        return self.sampler.class_names[label] if self.conditional else ""

    def psi(self, truncation) -> float:
        """ψ within the app's bounds that this checkpoint can apply (below 1 it needs the tracked mean of w)."""
        psi = check_truncation(truncation, self.limits)
        try:
            self.sampler.check_truncation(psi)
        except ValueError as error:
            raise InputError(str(error)) from error
        return psi

    def sample(self, seed, count, class_value=None, truncation=1.0, progress=None):
        """(images (B, S, S, 3) uint8, seeds, labels); seeds are seed, seed+1, …; progress(done, total) per chunk."""
        count = check_int(count, "count", 1, self.limits.max_samples)
        seed = check_int(seed, "seed", 0, MAX_SEED - count + 1)
        psi, index = self.psi(truncation), self.class_index(class_value)
        seeds = list(range(seed, seed + count))
        chunks, step = [], self.sampler.batch_size
        for start in range(0, count, step):
            if progress:
                progress(start, count)
            chunks.append(self.sampler.sample(seeds[start:start + step], index, psi))
        return np.concatenate(chunks), seeds, self.sampler.labels_for(seeds, index)

    def end_w(self, seed, class_value, w, truncation: float, end: str) -> np.ndarray:
        """The w (W,) of one end of an interpolation (`end`: "A" or "B"): the projected w when one is given (its
        seed and class are checked all the same), else the w `sample` renders for (seed, class)."""
        seed = check_int(seed, f"seed {end}", 0, MAX_SEED)
        try:
            index = self.class_index(class_value)
        except InputError as error:  # two classes in one request: say which
            raise InputError(f"class {end}: {error}") from error
        if w is not None:
            return check_w(w, f"w {end}", self.w_range)
        return self.sampler.w_of([seed], index, truncation)[0]

    @functools.cached_property
    def w_range(self) -> WRange:
        """Where a projected w sent back by a client may lie: measured on W_RANGE_SEEDS mapped seeds, each of its
        own class (`inputs.WRange`)."""
        w = self.sampler.w_of(range(W_RANGE_SEEDS))  # (S, W)
        drift = DEFAULT_LEARNING_RATE * self.limits.max_projection_steps  # self.projector's Adam, its most steps
        return WRange(w.mean(0), float(np.sqrt(w.var(0).mean())), W_RANGE_SEEDS, drift)

    def interpolate(self, seed_a, class_a, seed_b, class_b, frames, truncation=1.0, w_a=None, w_b=None
                    ) -> np.ndarray:
        """(F, S, S, 3) uint8 frames on the straight line in w space; an end given as w (a projection) replaces
        its (seed, class)."""
        frames = check_int(frames, "frames", 2, self.limits.max_frames)
        psi = self.psi(truncation)
        ends = [self.end_w(seed_a, class_a, w_a, psi, "A"), self.end_w(seed_b, class_b, w_b, psi, "B")]
        return self.sampler.interpolate_w(*ends, frames)

    def class_grid(self, seed, count, truncation=1.0) -> tuple[np.ndarray, list[int]]:
        """Every class × `count` seeds from `seed`: (K, count, S, S, 3) uint8 images (row k is class k), seeds."""
        if not self.conditional:
            raise InputError("this generator is unconditional: it has no classes to lay out in rows")
        count = check_int(count, "seeds per class", 1, self.limits.max_grid_seeds)
        seed = check_int(seed, "first seed", 0, MAX_SEED - count + 1)
        psi, seeds = self.psi(truncation), list(range(seed, seed + count))
        rows = [self.sampler.sample(seeds, k, psi) for k in range(self.sampler.config.num_classes)]
        return np.stack(rows), seeds  # (K, count, S, S, 3)

    def mix(self, coarse, fine, crossover, class_value=None, truncation=1.0):
        """Level mixing: seeds of the coarse levels (rows) × seeds of the fine levels (columns) → (A, B, S, S, 3)
        uint8, the seeds of both sides and the crossover level (levels ≥ it come from the row's seed)."""
        coarse = parse_seeds(coarse, "coarse seeds", self.limits.max_mix_seeds)
        fine = parse_seeds(fine, "fine seeds", self.limits.max_mix_seeds)
        crossover = check_int(crossover, "crossover level", 1, self.num_levels - 1)
        psi, index = self.psi(truncation), self.class_index(class_value)
        return self.sampler.mix_levels(coarse, fine, crossover, index, psi), coarse, fine, crossover

    def project(self, source, class_value, steps, progress=None) -> tuple[Projection, tuple[int, int]]:
        """An uploaded image → (the `Projection`: the w that reconstructs it best, the upload's (width, height)).
        progress(done, total) after each chunk of optimisation steps."""
        size = self.sampler.config.image_size
        steps = check_int(steps, "steps", 1, self.limits.max_projection_steps)
        image = read_image(source, self.limits, target_size=size)
        pixels = np.asarray(resize_and_crop(image, size), np.uint8)  # (S, S, 3), the evaluation rule
        projection = self.projector.project(pixels, self.class_index(class_value), steps=steps, progress=progress)
        return projection, image.info.get("source_size", image.size)  # the upload's own pixels
