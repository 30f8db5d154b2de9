"""Training methods: what a step adds to the labelled cross-entropy.

The :class:`s4seg.training.Trainer` runs one loop for all of them; a method is a small
object composed of the library's parts, and it reaches the loop only through the
public :class:`StepContext` (see :mod:`s4seg.methods.base`):

* :class:`Supervised`: labelled cross-entropy only, the baseline;
* :class:`S4GAN`: feature matching and discriminator-gated self-training (Mittal
  et al., TPAMI 2019), with options that keep the discriminator honest;
* :class:`AdvSemiSeg`: a pixel-level discriminator, adversarial loss and
  self-training on its confidence map (Hung et al., BMVC 2018);
* :class:`MeanTeacher`: self-training on an EMA teacher's confident pseudo-labels
  (Tarvainen and Valpola, 2017);
* :class:`FixMatch`: the same teacher on a weak view, the student on a strong view
  with CutMix (Sohn et al., 2020);
* :class:`UniMatch`: the model teaches itself from its weak view, through two strong
  views with their own CutMix and a feature-perturbed stream (Yang et al., CVPR 2023).

:class:`MLMT` adds S4GAN's image-level classifier branch to any of them.

Shared parts: :class:`~s4seg.methods.adversarial.AdversarialMethod` (a
discriminator, its optimizer and update) and
:class:`~s4seg.methods.self_training.SelfTraining` (a filter, the loss,
``start_step``, ``lambda_st``).
"""

from __future__ import annotations

import difflib

from s4seg.methods.adversarial import AdversarialMethod
from s4seg.methods.advsemiseg import AdvSemiSeg
from s4seg.methods.base import Method, StepContext, StepOutput
from s4seg.methods.mean_teacher import FixMatch, MeanTeacher
from s4seg.methods.mlmt import MLMT
from s4seg.methods.s4gan import S4GAN
from s4seg.methods.self_training import SelfTraining
from s4seg.methods.supervised import Supervised
from s4seg.methods.teacher import EMATeacher
from s4seg.methods.unimatch import UniMatch

__all__ = [
    "METHODS",
    "MLMT",
    "S4GAN",
    "AdvSemiSeg",
    "AdversarialMethod",
    "EMATeacher",
    "FixMatch",
    "MeanTeacher",
    "Method",
    "SelfTraining",
    "StepContext",
    "StepOutput",
    "Supervised",
    "UniMatch",
    "build_method",
]

METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (S4GAN, Supervised, AdvSemiSeg, MeanTeacher, FixMatch, UniMatch)
}


def build_method(name: str) -> Method:
    """The method that ``TrainerConfig.method`` names, with its default settings."""
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), METHODS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown method {name!r}{hint}; known: {sorted(METHODS)}")
    return METHODS[name]()
