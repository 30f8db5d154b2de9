"""Pseudo-label filters: decide which unlabelled images and pixels may teach.

Filters decide; the fused op (:func:`s4seg.ops.confidence_masked_cross_entropy`,
called by :class:`s4seg.losses.SelfTrainingLoss`) does the per-pixel work once. A
filter returns a :class:`FilterDecision`: a per-image keep mask, a threshold on
each pixel's max softmax probability and, for some filters, a per-pixel keep mask.

Two different things get thresholded, in two different units, and every filter says
which in its ``thresholds`` text:

* image gates (``...Gate``) score **one value per image**: :class:`DiscriminatorGate`
  (the S4GAN rule, a fixed threshold on the discriminator's probability) and
  :class:`TargetRateGate` (the top fraction of each batch by that probability);
* pixel filters (``...Filter``, and the adaptive thresholds) score **one value per
  pixel**, the largest softmax probability: :class:`PixelConfidenceFilter` (fixed),
  :class:`SelfAdaptiveThreshold` (FreeMatch), :class:`ClasswiseThreshold` (FlexMatch)
  and :class:`TargetRateFilter` (the top fraction of the batch's pixels);
  other per-pixel scores give a per-pixel keep mask instead:
  :class:`ConfidenceMapFilter` (AdvSemiSeg, the discriminator's confidence map) and
  :class:`EntropyPercentileFilter` (U2PL, drops the highest-entropy pixels).

:class:`DistributionAlignment` is not a filter but goes with one: it shifts the class
probabilities that make the pseudo-labels so that their class mix matches the labelled
data's (a model that under-segments a rare class otherwise teaches itself to miss it).

:class:`AndFilter` combines an image gate with a pixel filter. Stateful filters
(the adaptive and class-wise thresholds) have ``state_dict``/``load_state_dict``, so
the trainer's checkpoints keep them and a resumed run stays exact.
"""

from __future__ import annotations

from s4seg.filters.adaptive import SelfAdaptiveThreshold
from s4seg.filters.alignment import DistributionAlignment
from s4seg.filters.base import FilterDecision, PseudoLabelFilter, filter_stats
from s4seg.filters.classwise import ClasswiseThreshold
from s4seg.filters.confidence_map import ConfidenceMapFilter
from s4seg.filters.entropy import EntropyPercentileFilter
from s4seg.filters.gates import AndFilter, DiscriminatorGate, PixelConfidenceFilter
from s4seg.filters.target_rate import TargetRateFilter, TargetRateGate

__all__ = [
    "AndFilter",
    "ClasswiseThreshold",
    "ConfidenceMapFilter",
    "DiscriminatorGate",
    "DistributionAlignment",
    "EntropyPercentileFilter",
    "FilterDecision",
    "PixelConfidenceFilter",
    "PseudoLabelFilter",
    "SelfAdaptiveThreshold",
    "TargetRateFilter",
    "TargetRateGate",
    "filter_stats",
]
