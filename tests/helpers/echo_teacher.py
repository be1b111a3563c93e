"""A teacher that is not in lamini_lm, written as a newcomer would: this module plus one config file.

    # conf/teacher/echo.yaml
    _target_: tests.helpers.echo_teacher.EchoTeacher
    model: echo-1
    prefix: "echo: "
    max_tokens: {instructions: 64, responses: 64}
"""

from __future__ import annotations

from dataclasses import dataclass

from lamini_lm.teachers.base import Teacher
from lamini_lm.teachers.progress import Stats
from lamini_lm.teachers.store import Reply


@dataclass(kw_only=True)
class EchoTeacher(Teacher):
    """Answers a request with its last message after `prefix`; refuses one that holds `refuse`."""

    prefix: str
    refuse: str = "REFUSE"

    def run(self, requests, store, desc) -> Stats:
        stats = Stats(self.model, self.prices)
        for req in store.missing(requests):  # only what the store lacks
            stats.sent += 1
            text = req.body["messages"][-1]["content"]
            if self.refuse in text:
                stats.rejected.append((req, "echo refuses this one"))
                continue
            words = len(text.split())
            reply = Reply(self.prefix + text, "stop", {"prompt_tokens": words, "completion_tokens": words}, self.model)
            store.append(req, reply)  # each reply at once
            stats.done += 1
            stats.add_usage(reply.usage)
        return stats
