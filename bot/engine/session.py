"""Where one chat is in the conversation. Plain data, serialised to JSON every turn."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import StorageError

__all__ = ["SESSION_FORMAT", "Session"]

#: Bumped when the JSON shape changes; older shapes are migrated in ``from_json``.
SESSION_FORMAT = 1


@dataclass(frozen=True)
class Session:
    language: str | None = None  # None until the person has chosen one
    flow: str | None = None  # flow in progress, None when idle
    step: str | None = None  # the question being waited on
    token: int = 0  # increases with every question asked, to spot taps on old buttons
    #: Answers saved in the current flow (button ids or short typed text). Cleared when
    #: the flow ends, so nothing a person typed outlives the conversation it was for.
    answers: dict[str, str] = field(default_factory=dict)
    started: bool = False  # has this chat seen the first-contact flow
    #: A topic (flow id) the first message named, started once the language is chosen
    #: instead of the main menu. Only a flow id: what the person wrote is not kept.
    pending: str | None = None

    def evolve(self, **changes: Any) -> Session:
        return replace(self, **changes)

    def to_json(self) -> str:
        data: dict[str, Any] = {"v": SESSION_FORMAT, "language": self.language, "flow": self.flow,
                                "step": self.step, "token": self.token, "answers": self.answers,
                                "started": self.started}
        if self.pending is not None:  # rare and short-lived: stored only while it is set
            data["pending"] = self.pending
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Session:
        data = json.loads(text)
        version = data.pop("v", 1)
        if version > SESSION_FORMAT:
            raise StorageError(f"session format {version} is newer than this bot ({SESSION_FORMAT});"
                               " upgrade the bot before using this database")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
