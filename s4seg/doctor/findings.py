"""A finding of the training doctor: what was seen, why, and what to change."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SEVERITIES", "Finding"]

SEVERITIES = ("info", "warning", "critical")


@dataclass
class Finding:
    """One problem of a run, stated so that it can be acted on.

    Attributes:
        code: stable identifier of the kind of problem, e.g. ``"st_starved"``.
        severity: ``"info"``, ``"warning"`` or ``"critical"`` (critical: the run
            is losing quality now; :class:`s4seg.doctor.Doctor` can stop on it).
        title: one line.
        seen: what the logs show, with numbers and steps.
        cause: the likely cause, with the evidence for it.
        remedies: concrete s4seg settings, each with why, e.g.
            ``"TrainerConfig(lr_d=2.5e-05): ..."``.
        first_step: step of the first log record that shows it.
        last_step: step of the last log record that shows it.
        evidence: the key numbers behind ``seen`` and ``cause`` (for tests and tools).
        confidence: how sure the monitor is, and on what evidence: ``"high: ..."``,
            ``"medium: ..."`` or ``"low: ..."`` (how many log windows, evaluations or
            validation images show it); empty for a finding of an older run.
    """

    code: str
    severity: str
    title: str
    seen: str
    cause: str
    remedies: list[str]
    first_step: int
    last_step: int
    evidence: dict[str, Any] = field(default_factory=dict)
    confidence: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def key(self) -> tuple[str, int]:
        """Identity across checks: the same problem keeps its code and first step."""
        return (self.code, self.first_step)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (extra keys such as ``"kind"`` are ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def steps(self) -> str:
        """``"step 1000"`` or ``"steps 1600-2000"``."""
        if self.first_step == self.last_step:
            return f"step {self.first_step}"
        return f"steps {self.first_step}-{self.last_step}"

    def format(self) -> str:
        """Several readable lines for a terminal or a log."""
        lines = [
            f"[{self.severity.upper()}] {self.code}: {self.title} ({self.steps()})",
            f"  seen:  {self.seen}",
            f"  cause: {self.cause}",
            *([f"  how sure: {self.confidence}"] if self.confidence else []),
            "  remedies:",
            *(f"    - {r}" for r in self.remedies),
        ]
        return "\n".join(lines)

    def markdown(self) -> str:
        """A markdown section for the report."""
        remedies = "\n".join(f"- {_code_first(r)}" for r in self.remedies)
        return (
            f"### {self.severity.upper()} `{self.code}`: {self.title} ({self.steps()})\n\n"
            f"**Seen.** {self.seen}\n\n**Likely cause.** {self.cause}\n\n"
            + (f"**How sure.** {self.confidence}\n\n" if self.confidence else "")
            + f"**Remedies.**\n\n{remedies}\n"
        )


def _code_first(remedy: str) -> str:
    """Put the setting of ``"Setting(...): why"`` in backticks."""
    code, sep, why = remedy.partition(": ")
    return f"`{code}`: {why}" if sep else f"`{remedy}`"
