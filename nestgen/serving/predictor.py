"""The app's predictor: every checkpoint loaded once, every model function jitted once and warmed up at start.

`Predictor.load` takes checkpoint directories (None: the shipped ones). A shipped model that is missing is not
replaced by an untrained one: its role records the message naming the command that trains it, and the UI shows
that message instead of the tab's controls.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
from PIL import Image

from nestgen.convert.checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_checkpoint_config
from nestgen.data.images import preprocess, resize_and_crop, source_box
from nestgen.explain.gradcat import DEFAULT_SCORE, Explanation, GradCAT, grad_cam
from nestgen.inference.predict import ClassifierPredictor
from nestgen.inference.projection import DEFAULT_LEARNING_RATE, Projector
from nestgen.inference.sampling import GeneratorSampler
from nestgen.serving.discriminator import DiscriminatorService
from nestgen.serving.inputs import (
    MAX_SEED,
    InputError,
    Limits,
    WRange,
    check_int,
    check_truncation,
    check_w,
    parse_seeds,
    read_image,
)
from nestgen.serving.warmup import WarmUp

ANY_CLASS = "any"
PREDICTED = "(predicted)"
W_RANGE_SEEDS = 1024  # mapped seeds whose spread of w bounds the w a client may send (`inputs.WRange`)


@dataclasses.dataclass
class Classification:
    """One classified image: what the model saw, its top-k, the GradCAT explanation and Grad-CAM of the target."""

    image: Image.Image  # the S×S input as the model saw it (denormalised)
    top_k: list[tuple[str, int, float]]
    explanation: Explanation
    gradcam: np.ndarray  # (H_l, W_l)
    predicted: bool  # the explained class is the predicted one
    source_size: tuple[int, int]  # (width, height) of the image as uploaded
    warnings: list[str] = dataclasses.field(default_factory=list)  # why the answer may mean little
    crop_pct: float = 1.0  # the preprocessing's centre crop, to map boxes back onto the upload

    def source_box(self, box) -> tuple[int, int, int, int]:
        """A box (top, left, bottom, right) of the S×S input → the same region in the uploaded image's pixels."""
        return source_box(box, self.source_size, self.image.width, self.crop_pct)


FLAT_STD = 3.0  # pixel standard deviation (0-255) below which an input is called one flat colour


def input_warnings(source_size: tuple[int, int], shown: np.ndarray, image_size: int) -> list[str]:
    """Warnings for inputs a classifier answers anyway but whose answer says little: images much smaller than its
    input (a 1×1 upload is enlarged to S×S) and (nearly) flat images. `shown` is the uint8 (S, S, 3) input."""
    warnings, (width, height) = [], source_size
    if min(width, height) < image_size / 2:
        warnings.append(f"the image is only {width}×{height} pixels: it was enlarged to {image_size}×{image_size}, "
                        "so there is little for the classifier to see")
    if float(shown.reshape(-1, 3).std(axis=0).max()) < FLAT_STD:  # every channel (nearly) constant
        warnings.append("the image is (nearly) one flat colour: there is nothing to recognise, whatever the "
                        "scores say")
    return warnings


class ClassifierService:
    """Top-k classification, GradCAT and Grad-CAM of one classifier checkpoint, at batch 1."""

    def __init__(self, checkpoint: Checkpoint, limits: Limits, score: str = DEFAULT_SCORE):
        self.checkpoint, self.limits, self.score = checkpoint, limits, score
        self.image_size = int(checkpoint.preprocess["image_size"])
        self.predictor = ClassifierPredictor(checkpoint, batch_size=1)
        self.model = checkpoint.build()
        self.explainer = GradCAT(self.model, checkpoint.params, checkpoint.class_names, self.image_size, score)

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    def target_index(self, target) -> int | None:
        """'(predicted)', empty or None → None; a class name or index → its index; InputError otherwise."""
        if target is None or target in ("", PREDICTED):
            return None
        try:
            return self.explainer.resolve_class(target)
        except ValueError as error:
            raise InputError(str(error)) from error

    def classify(self, source, target=None, top_k: int = 5) -> Classification:
        target = self.target_index(target)
        picture = read_image(source, self.limits, target_size=self.image_size)
        spec = self.checkpoint.preprocess
        x = preprocess(picture, spec)[None]  # (1, S, S, 3)
        shown = np.clip((x[0] * np.asarray(spec["std"]) + np.asarray(spec["mean"])) * 255, 0, 255)
        shown = shown.round().astype(np.uint8)  # (S, S, 3): what the model saw
        prediction = self.predictor.predict(x, top_k)[0]
        index = prediction.top_k[0][1] if target is None else target
        explanation = self.explainer.explain(x, target=index)[0][0]
        cam = grad_cam(self.model, self.checkpoint.params, x, [index], level=0)[0]  # (H_0, W_0)
        size = picture.info.get("source_size", picture.size)  # the upload's own pixels (not a reduced JPEG decode)
        return Classification(Image.fromarray(shown), prediction.top_k, explanation, cam,
                              target is None or target == prediction.top_k[0][1], size,
                              input_warnings(size, shown, self.image_size), float(spec.get("crop_pct", 1.0)))


class GeneratorService:
    """Seeds → images and interpolations of one generator checkpoint, with the app's bounds."""

    def __init__(self, checkpoint: Checkpoint, limits: Limits, batch_size: int = 16):
        self.checkpoint, self.limits = checkpoint, limits
        self.sampler = GeneratorSampler(checkpoint, batch_size=batch_size)
        self.projector = Projector(self.sampler)

    @property
    def conditional(self) -> bool:
        return bool(self.sampler.config.conditional)

    def class_choices(self) -> list[str]:
        return [ANY_CLASS, *self.sampler.class_names] if self.conditional else [ANY_CLASS]

    def class_index(self, value) -> int | None:
        if value is None or value in ("", ANY_CLASS) or not self.conditional:
            return None
        try:
            return self.sampler.class_index(value)
        except ValueError as error:
            raise InputError(str(error)) from error

    def class_name(self, label: int) -> str:
        return self.sampler.class_names[label] if self.conditional else ""

    def sample(self, seed, count, class_value=None, truncation=1.0, progress=None):
        """(images (B, H, W, 3) uint8, seeds, labels); seeds are seed, seed+1, …; progress(done, total) per chunk."""
        count = check_int(count, "count", 1, self.limits.max_samples)
        seed = check_int(seed, "seed", 0, MAX_SEED - count + 1)
        psi, index = check_truncation(truncation, self.limits), self.class_index(class_value)
        seeds = list(range(seed, seed + count))
        chunks, step = [], self.sampler.batch_size
        for start in range(0, count, step):
            if progress:
                progress(start, count)
            chunks.append(self._run(self.sampler.sample, seeds[start:start + step], index, psi))
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
        return self._run(self.sampler.w_of, [seed], index, truncation)[0]

    @functools.cached_property
    def w_range(self) -> WRange:
        """Where a projected w sent back by a client may lie: measured on W_RANGE_SEEDS mapped seeds, each of its
        own class (`inputs.WRange`)."""
        w = self._run(self.sampler.w_of, range(W_RANGE_SEEDS))  # (S, W)
        drift = DEFAULT_LEARNING_RATE * self.limits.max_projection_steps  # self.projector's Adam, its most steps
        return WRange(w.mean(0), float(np.sqrt(w.var(0).mean())), W_RANGE_SEEDS, drift)

    def interpolate(self, seed_a, class_a, seed_b, class_b, frames, truncation=1.0, w_a=None, w_b=None
                    ) -> np.ndarray:
        """(F, H, W, 3) uint8 frames on the straight line in w space; an end given as w (a projection) replaces
        its (seed, class)."""
        frames = check_int(frames, "frames", 2, self.limits.max_frames)
        psi = check_truncation(truncation, self.limits)
        ends = [self.end_w(seed_a, class_a, w_a, psi, "A"), self.end_w(seed_b, class_b, w_b, psi, "B")]
        return self._run(self.sampler.interpolate_w, *ends, frames)

    def class_grid(self, seed, count, truncation=1.0) -> tuple[np.ndarray, list[int]]:
        """Every class × `count` seeds from `seed`: (K, count, H, W, 3) uint8 images (row k is class k), seeds."""
        if not self.conditional:
            raise InputError("this generator is unconditional: it has no classes to lay out in rows")
        count = check_int(count, "seeds per class", 1, self.limits.max_grid_seeds)
        seed = check_int(seed, "first seed", 0, MAX_SEED - count + 1)
        psi, seeds = check_truncation(truncation, self.limits), list(range(seed, seed + count))
        rows = [self._run(self.sampler.sample, seeds, k, psi) for k in range(self.sampler.config.num_classes)]
        return np.stack(rows), seeds  # (K, count, H, W, 3)

    @property
    def num_levels(self) -> int:
        return self.sampler.config.num_levels

    def mix(self, coarse, fine, crossover, class_value=None, truncation=1.0):
        """Level mixing: seeds of the coarse levels (rows) × seeds of the fine levels (columns) → (A, B, H, W, 3)
        uint8, the seeds of both sides and the crossover level (levels ≥ it come from the row's seed)."""
        coarse = parse_seeds(coarse, "coarse seeds", self.limits.max_mix_seeds)
        fine = parse_seeds(fine, "fine seeds", self.limits.max_mix_seeds)
        crossover = check_int(crossover, "crossover level", 1, self.num_levels - 1)
        psi, index = check_truncation(truncation, self.limits), self.class_index(class_value)
        return self._run(self.sampler.mix_levels, coarse, fine, crossover, index, psi), coarse, fine, crossover

    def project(self, source, class_value, steps, progress=None):
        """An uploaded image → `nestgen.inference.projection.Projection` (the w that reconstructs it best)."""
        size = self.sampler.config.image_size
        steps = check_int(steps, "steps", 1, self.limits.max_projection_steps)
        image = read_image(source, self.limits, target_size=size)
        pixels = np.asarray(resize_and_crop(image, size), np.uint8)  # (S, S, 3), the evaluation rule
        return self._run(self.projector.project, pixels, self.class_index(class_value), steps=steps,
                         progress=progress), image.info.get("source_size", image.size)  # the upload's own pixels

    @staticmethod
    def _run(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as error:  # e.g. ψ < 1 on a checkpoint without the mean of w
            raise InputError(str(error)) from error


@dataclasses.dataclass
class Predictor:
    """The loaded models (any may be None), the reasons the missing ones are missing, and the request bounds."""

    classifier: ClassifierService | None = None
    generator: GeneratorService | None = None
    discriminator: DiscriminatorService | None = None
    missing: dict[str, str] = dataclasses.field(default_factory=dict)
    limits: Limits = dataclasses.field(default_factory=Limits)
    warmth: WarmUp = dataclasses.field(default_factory=WarmUp)  # the warm-up's progress (requests wait on it)

    @classmethod
    def load(cls, classifier: str | Path | None = None, generator: str | Path | None = None,
             discriminator: str | Path | None = None, limits: Limits | None = None,
             score: str = DEFAULT_SCORE) -> Predictor:
        """Load the given checkpoint directories, or the shipped ones for None. Bad explicit paths raise
        CheckpointError; a missing shipped model is recorded in `missing` with the command that trains it.
        `score` is the classifier's GradCAT block score (`nestgen.explain.gradcat.SCORES`)."""
        from nestgen import shipped

        limits = limits or Limits()
        found, missing = {}, {}
        for role, given, default in (("classifier", classifier, shipped.default_classifier),
                                     ("generator", generator, shipped.default_generator)):
            try:
                found[role] = load_checkpoint(given) if given else load_checkpoint(default())
            except FileNotFoundError as error:  # the shipped model is absent: say how to make one
                missing[role] = str(error).replace("--checkpoint DIR", f"--{role} DIR")
            _check_kind(found.get(role), role)
        predictor = cls(missing=missing, limits=limits)
        if "classifier" in found:
            predictor.classifier = ClassifierService(found["classifier"], limits, score)
        if "generator" in found:
            predictor.generator = GeneratorService(found["generator"], limits)
        d_dir = discriminator or (_beside(found["generator"].path) if "generator" in found else None)
        if d_dir:
            d_ckpt = load_checkpoint(d_dir)
            _check_kind(d_ckpt, "nest_discriminator")
            predictor.discriminator = DiscriminatorService(d_ckpt, limits, found.get("generator"))
        return predictor

    def warm_steps(self) -> list[tuple[str, object]]:
        """(step name, call) for every model function of the loaded models, in the order the first clicks need
        them (the page's first view generates samples); each call compiles its function (`warmup.WarmUp`)."""
        blank = Image.new("RGB", (8, 8), (127, 127, 127))
        g, c, d = self.generator, self.classifier, self.discriminator
        steps = [("generator", g and (lambda: g.sample(0, 1))), ("classifier", c and (lambda: c.classify(blank))),
                 ("level mixing", g and (lambda: g.mix("0", "1", 1))),
                 ("projection", g and (lambda: g.projector.warm_up())), ("range of w", g and (lambda: g.w_range)),
                 ("discriminator", d and (lambda: d.explain(blank, d.class_names[0])))]
        return [(name, call) for name, call in steps if call]

    def warm_up(self, report=None) -> dict[str, float]:
        """Run every model function once (compiling it), so the first click is as fast as the next → seconds per
        step. Requests that arrive meanwhile wait for the step they need (`self.warmth`); report(name, seconds,
        error or None) after each step (app.py prints it)."""
        steps = self.warm_steps()
        if not self.warmth.planned:
            self.warmth.plan([name for name, _ in steps])
        return self.warmth.run(steps, report)

    def checkpoints(self) -> list[tuple[str, Checkpoint]]:
        services = (("Classifier", self.classifier), ("Generator", self.generator),
                    ("NesT discriminator", self.discriminator))
        return [(role, service.checkpoint) for role, service in services if service is not None]


def _check_kind(checkpoint: Checkpoint | None, kind: str) -> None:
    if checkpoint is not None and checkpoint.config.kind != kind:
        hint = " (GradCAT explains NesT discriminators only)" if kind == "nest_discriminator" else ""
        raise CheckpointError(f"{checkpoint.path} holds a {checkpoint.config.kind}, not a {kind}{hint}")


def _beside(generator_dir: Path | None) -> Path | None:
    """The NesT discriminator the GAN trainer exported next to a generator (`export` → `export_discriminator`,
    or a `discriminator/` folder inside it), if there is one."""
    if generator_dir is None:
        return None
    for candidate in (generator_dir.with_name(generator_dir.name + "_discriminator"), generator_dir / "discriminator"):
        try:
            if read_checkpoint_config(candidate)["model"].get("kind") == "nest_discriminator":
                return candidate
        except CheckpointError:
            continue
    return None
