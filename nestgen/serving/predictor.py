"""The app's models: every checkpoint loaded once, every model function jitted once and warmed up at start.

`Predictor.load` takes checkpoint directories (None: the shipped ones) and holds one service per role
(`classifier_service`, `generator_service`, `discriminator_service`). A shipped model that is missing is not
replaced by an untrained one: its role records the message naming the command that trains it; the UI shows that
message instead of the tab's controls, and `Predictor.need` raises it as `ModelMissing`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from nestgen.convert.checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_checkpoint_config
from nestgen.explain.gradcat import DEFAULT_SCORE
from nestgen.serving.classifier_service import ClassifierService
from nestgen.serving.discriminator_service import DiscriminatorService
from nestgen.serving.generator_service import GeneratorService
from nestgen.serving.inputs import Limits
from nestgen.serving.warmup import WarmUp


class ModelMissing(LookupError):
    """A request needs a model that is not loaded; the message names the command that trains one."""


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

    def need(self, role: str, progress=None, step: str | None = None):
        """The loaded service of `role` ("classifier", "generator", "discriminator"), once its warm-up step
        (`step`, default: the role's name) has compiled; progress(0, desc=...) hears what the request waits for.
        ModelMissing (naming the command that trains one) when the role has no model."""
        service = getattr(self, role)
        if service is None:
            raise ModelMissing(self.missing.get(role, f"no {role} is loaded"))
        self.warmth.wait(step or role, progress)
        return service

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
